#!/usr/bin/env bash
# Builds helm into _output/bin/helm from the pinned tool module hack/tools/helm
# (helm.sh/helm/v4/cmd/helm at the version its go.mod requires), with the
# version stamped in the way helm's own Makefile does, so `helm version`
# reports it. make verify lints and renders charts/cosched with it; the e2e
# suite installs the chart with it.
#
# Idempotent: when _output/bin/helm exists and reports the pinned version,
# nothing is built (this check takes a few milliseconds). FORCE=1 rebuilds.
# A cold build compiles helm and its Kubernetes libraries (several minutes on
# 2 cores); on a shared machine run it under the heavy-command lock.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
TOOL_DIR="${REPO_ROOT}/hack/tools/helm"
OUT_DIR="${REPO_ROOT}/_output/bin"
HELM_BIN="${OUT_DIR}/helm"

die() {
  echo "build-helm: ERROR: $*" >&2
  exit 1
}

[[ -f "${TOOL_DIR}/go.mod" ]] || die "missing ${TOOL_DIR}/go.mod (the helm tool module)"
HELM_VERSION="$(awk '$1 == "helm.sh/helm/v4" {print $2; exit}' "${TOOL_DIR}/go.mod")"
[[ "${HELM_VERSION}" == v4.* ]] || die "cannot find the helm.sh/helm/v4 version in ${TOOL_DIR}/go.mod"

# installed_version prints what an existing binary reports, or nothing.
installed_version() {
  [[ -x "${HELM_BIN}" ]] || return 0
  "${HELM_BIN}" version --template '{{.Version}}' 2>/dev/null || true
}

if [[ "${FORCE:-0}" != "1" ]]; then
  have="$(installed_version)"
  if [[ "${have}" == "${HELM_VERSION}" ]]; then
    [[ -n "${QUIET:-}" ]] || echo "build-helm: ${HELM_BIN} is already helm ${HELM_VERSION}, skipping build"
    exit 0
  fi
  [[ -z "${have}" ]] || echo "build-helm: ${HELM_BIN} reports '${have}', want ${HELM_VERSION}; rebuilding"
fi

command -v go >/dev/null 2>&1 || die "'go' not found in PATH; a Go toolchain is required to build helm from source"
mkdir -p "${OUT_DIR}"
echo "build-helm: building helm ${HELM_VERSION} into ${HELM_BIN} (a cold build takes several minutes)"
t0="$(date +%s)"
# Build to a temporary name and move it into place, so an interrupted build
# never leaves a half-written binary that looks installed.
tmp_bin="${HELM_BIN}.tmp.$$"
trap 'rm -f "${tmp_bin}"' EXIT
(
  cd "${TOOL_DIR}"
  GOWORK=off CGO_ENABLED=0 nice -n 10 go build -trimpath -mod=readonly -o "${tmp_bin}" \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    helm.sh/helm/v4/cmd/helm
) || die "go build of helm.sh/helm/v4/cmd/helm in ${TOOL_DIR} failed (see the output above)"
mv -f "${tmp_bin}" "${HELM_BIN}"
trap - EXIT

have="$(installed_version)"
[[ "${have}" == "${HELM_VERSION}" ]] || die "built ${HELM_BIN} but it reports version '${have:-<none>}', expected ${HELM_VERSION}"
echo "build-helm: OK: helm ${have} in $(($(date +%s) - t0))s"
