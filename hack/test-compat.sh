#!/usr/bin/env bash
# The compatibility matrix: cosched (built on the main module's Kubernetes,
# 1.37) against the kube-apiserver and kube-controller-manager of older
# releases. For each VERSION argument (default: every release with a tool
# module, 1.34.4 1.35.4 1.36.3):
#
#   1. hack/build-kube.sh VERSION builds the two servers (cached by version
#      under _output/kube-VERSION; a binary that reports VERSION is reused);
#   2. hack/local-up.sh brings the local control plane up with them
#      (KUBE_VERSION=VERSION), with cosched started without any version flag:
#      it must pick the server's release itself and become ready (take its
#      Lease, which kube-scheduler only does once every cache has synced);
#   3. hack/test-e2e.sh runs the gang essentials of test/e2e against it
#      (COMPAT_RUN), then the control plane is torn down.
#
# The table of what ran lands in _output/compat/summary.md. Every version is
# tried even when one fails; the exit code is non-zero if any failed. Run it
# when no local control plane is up (make local-down); on a shared machine,
# under the heavy-command lock.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
LOG_PREFIX=test-compat
# shellcheck source=hack/lib/local.sh
source "${SCRIPT_DIR}/lib/local.sh"

# A gang bound whole, a gang that does not fit holds nothing, gangs that
# compete, preemption as a unit, the status writer, and the chart's config.
COMPAT_RUN="${COMPAT_RUN:-^(TestJobGangRuns|TestGangOneShortNeverBinds|TestGangsCompeteWithoutDeadlock|TestGangPreemptsAsUnit|TestStatusAsUsersSeeIt|TestHelmInstall)\$}"
OUT_DIR="${REPO_ROOT}/_output/compat"

versions=("$@")
if ((${#versions[@]} == 0)); then
  for dir in "${REPO_ROOT}"/hack/tools/kube-1.*; do
    versions+=("$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {sub(/^v/, "", $3); print $3}' "${dir}/go.mod")")
  done
fi

if component_running kube-apiserver || component_running cosched; then
  die "a local control plane is running; stop it first (make local-down): each version needs a fresh one"
fi
mkdir -p "${OUT_DIR}"

# ready_seconds LOG: seconds from cosched's first log line to its Lease
# cosched-system/cosched taken (kube-scheduler campaigns only once its caches
# have synced).
ready_seconds() {
  awk '
    function secs(ts) { split(ts, a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
    NR == 1 && $1 ~ /^[IWE][0-9][0-9][0-9][0-9]$/ { start = secs($2) }
    tolower($0) ~ /successfully acquired lease/ && /cosched-system\/cosched"/ && start != "" { printf "%.1f", secs($2) - start; exit }
  ' "$1"
}

summary="${OUT_DIR}/summary.md"
{
  echo "| kube-apiserver / kcm | cosched emulates | ready (s) | build (s) | e2e essentials | e2e (s) |"
  echo "|---|---|---|---|---|---|"
} >"${summary}"
failed=()
for v in "${versions[@]}"; do
  info "=== Kubernetes ${v} ==="
  t0="$(date +%s)"
  "${SCRIPT_DIR}/build-kube.sh" "${v}" >/dev/null || {
    failed+=("${v} (build)")
    continue
  }
  built="$(($(date +%s) - t0))"
  result=pass
  # local-up starts cosched without version flags; test-e2e sees the control
  # plane up and leaves the teardown to us, so the log can be read first.
  if ! KUBE_VERSION="${v}" "${SCRIPT_DIR}/local-up.sh" >"${OUT_DIR}/local-up-${v}.log" 2>&1; then
    tail -30 "${OUT_DIR}/local-up-${v}.log" >&2
    result="local-up failed"
  fi
  cp -f "$(log_file cosched)" "${OUT_DIR}/cosched-${v}.log" 2>/dev/null || true
  emulated="$(grep -o 'emulatedVersion="[0-9.]*"' "${OUT_DIR}/cosched-${v}.log" 2>/dev/null | head -1 | cut -d'"' -f2 || true)"
  ready="$(ready_seconds "${OUT_DIR}/cosched-${v}.log" 2>/dev/null || true)"
  if [[ "${result}" == pass && "${emulated}" != "$(cut -d. -f1,2 <<<"${v}")" ]]; then
    result="cosched emulates '${emulated}', want $(cut -d. -f1,2 <<<"${v}")"
  fi
  e2e_start="$(date +%s)"
  if [[ "${result}" == pass ]]; then
    KUBE_VERSION="${v}" "${SCRIPT_DIR}/test-e2e.sh" -run "${COMPAT_RUN}" -v 2>&1 | tee "${OUT_DIR}/e2e-${v}.log" |
      grep -E '^(--- |=== RUN|ok|FAIL|PASS)' || true
    if ! grep -q '^ok' "${OUT_DIR}/e2e-${v}.log" || grep -q '^--- FAIL' "${OUT_DIR}/e2e-${v}.log"; then
      result="e2e failed (see ${OUT_DIR}/e2e-${v}.log)"
    fi
  fi
  e2e_took="$(($(date +%s) - e2e_start))"
  cp -f "$(log_file cosched)" "${OUT_DIR}/cosched-${v}.log" 2>/dev/null || true
  "${SCRIPT_DIR}/local-down.sh" >/dev/null || warn "local-down after ${v} failed"
  echo "| v${v} | ${emulated:--} | ${ready:--} | ${built} | ${result} | ${e2e_took} |" >>"${summary}"
  [[ "${result}" == pass ]] || failed+=("${v}: ${result}")
done
cat "${summary}"
if ((${#failed[@]} > 0)); then
  die "failed: ${failed[*]}"
fi
info "all passed: ${versions[*]}"
