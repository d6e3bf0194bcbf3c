#!/usr/bin/env bash
# Measures, on the local control plane (hack/local-up.sh with NODES fake
# nodes), how fast cosched and a stock kube-scheduler bind one burst of pods
# at each client QPS/burst setting: the numbers in the shipped
# clientConnection come from this (docs/performance.md, "Client QPS").
#
# For each setting in QPS_SETTINGS, one after the other, with the other
# scheduler stopped:
#   stock    kube-scheduler v1.37 (built by local-up from the pinned k8s.io/kubernetes),
#            default profile, GANGS*GANG_SIZE plain pods
#   cosched  the shipped configuration (manifests/cosched/config.yaml) with
#            only qps/burst replaced: GANGS gangs of GANG_SIZE, then the same
#            pods without groups
# With WITHOUT_NOMINATIONS=1, cosched's gangs run once more with the
# scheduler feature NominatedNodeNameForExpectation off (no nominatedNodeName
# written for members waiting at Permit), to show what those writes cost.
# All run as the ServiceAccount cosched-system/cosched (the same API
# priority and fairness flow) with --v=2. hack/qps sends the pods and reads
# each scheduler's client metrics (writes per pod, time spent throttled).
#
# Environment: QPS_SETTINGS="50:100 100:200 200:400 400:800" NODES=500
# GANGS=1000 GANG_SIZE=3 OUT=_output/bench-qps RUNS=1 (runs of each setting)
# WITHOUT_NOMINATIONS=0.
# A control plane that was running before is left running, with NODES nodes
# and cosched as shipped; one this script started is stopped at the end
# (KEEP_UP=1 keeps it). make bench-smoke runs it with 5 gangs on 6 nodes, so CI proves it runs.
set -euo pipefail

LOG_PREFIX=bench-qps
# shellcheck source=hack/lib/local.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/local.sh"

QPS_SETTINGS="${QPS_SETTINGS:-50:100 100:200 200:400 400:800}"
NODES="${NODES:-500}"
GANGS="${GANGS:-1000}"
GANG_SIZE="${GANG_SIZE:-3}"
RUNS="${RUNS:-1}"
WITHOUT_NOMINATIONS="${WITHOUT_NOMINATIONS:-0}"
OUT="${OUT:-${REPO_ROOT}/_output/bench-qps}"
export GOWORK=off OUT NODES

# cosched_configmap QPS BURST: the shipped ConfigMap with only the client
# settings replaced.
cosched_configmap() {
  local f="${OUT}/cosched-config-$1-$2.yaml"
  awk -v qps="$1" -v burst="$2" '
    /^ *clientConnection:/ { in_cc = 1; print; next }
    in_cc && /^ *qps:/     { sub(/qps: .*/, "qps: " qps); print; next }
    in_cc && /^ *burst:/   { sub(/burst: .*/, "burst: " burst); in_cc = 0; print; next }
    { print }' "${REPO_ROOT}/manifests/cosched/config.yaml" >"${f}"
  grep -q "qps: $1\$" "${f}" && grep -q "burst: $2\$" "${f}" || die "could not set qps/burst in ${f}"
  echo "${f}"
}

# start_stock QPS BURST: a stock kube-scheduler with the same identity and
# client settings as cosched.
start_stock() {
  local cfg="${OUT}/stock-config-$1-$2.yaml" kc="${KUBECONFIG_DIR}/cosched.kubeconfig" i
  cat >"${cfg}" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: ${kc}
  qps: $1
  burst: $2
leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
EOF
  launch_component kube-scheduler --config="${cfg}" --authentication-kubeconfig="${kc}" \
    --authorization-kubeconfig="${kc}" --bind-address=127.0.0.1 --secure-port="${STOCK_SCHEDULER_PORT}" \
    --cert-dir="${LOCAL_DIR}/kube-scheduler/certs" --v=2 || die "kube-scheduler exited at once; see $(log_file kube-scheduler)"
  for ((i = 0; i < 300; i++)); do
    curl -fsSk --max-time 2 "https://127.0.0.1:${STOCK_SCHEDULER_PORT}/healthz" 2>/dev/null | grep -qx ok && return 0
    sleep 0.2
  done
  die "kube-scheduler did not become healthy; see $(log_file kube-scheduler)"
}

# start_cosched QPS BURST [FLAGS]: cosched as shipped but for its client
# settings (and FLAGS), through local-up (which leaves everything else running
# as it is).
start_cosched() {
  SKIP_COSCHED_BUILD=1 NODES="${NODES}" COSCHED_CONFIGMAP="$(cosched_configmap "$1" "$2")" COSCHED_EXTRA_ARGS="${3:-}" \
    "${REPO_ROOT}/hack/local-up.sh" >>"${OUT}/local-up.log" 2>&1 || die "starting cosched failed (log ${OUT}/local-up.log)"
}

# start_cosched_without_nominations QPS BURST: as start_cosched, with the
# nominations of pods waiting at Permit off; fails unless cosched says so
# (kubernetes_feature_enabled), so the batch cannot measure the shipped
# profile by mistake.
start_cosched_without_nominations() {
  local metrics
  start_cosched "$1" "$2" --feature-gates=NominatedNodeNameForExpectation=false
  metrics="$(cosched_metrics)" || die "reading cosched's /metrics failed"
  grep -q '^kubernetes_feature_enabled{name="NominatedNodeNameForExpectation",[^}]*} 0$' <<<"${metrics}" \
    || die "cosched does not report NominatedNodeNameForExpectation as off"
}

# hack/qps runs "$0 start WHICH QPS BURST" once the pods exist.
if [[ "${1:-}" == "start" ]]; then
  case "${2:-}" in
    stock) start_stock "$3" "$4" ;;
    cosched) start_cosched "$3" "$4" ;;
    cosched-without-nominations) start_cosched_without_nominations "$3" "$4" ;;
    *) die "usage: $0 start stock|cosched|cosched-without-nominations QPS BURST" ;;
  esac
  exit 0
fi

mkdir -p "${OUT}" "${BIN_DIR}"
RESULTS="${OUT}/results.jsonl"
: >"${RESULTS}"

cd "${REPO_ROOT}"
info "building hack/qps"
go build -trimpath -o "${BIN_DIR}/cosched-qps" ./hack/qps

# The control plane with NODES nodes and cosched as shipped.
was_up=0
component_running kube-apiserver && was_up=1
if [[ "${was_up}" == 0 && "${KEEP_UP:-0}" != 1 ]]; then
  trap '"${REPO_ROOT}/hack/local-down.sh" >/dev/null || true' EXIT
else
  trap 'stop_component kube-scheduler' EXIT
fi
info "starting the local control plane with ${NODES} nodes (log ${OUT}/local-up.log)"
NODES="${NODES}" "${REPO_ROOT}/hack/local-up.sh" >"${OUT}/local-up.log" 2>&1 \
  || { tail -n 30 "${OUT}/local-up.log" >&2; die "hack/local-up.sh failed (log ${OUT}/local-up.log)"; }

# send LABEL SCHEDULER WHICH QPS BURST ARGS...: one batch through hack/qps,
# created while no scheduler runs; WHICH (stock, cosched or
# cosched-without-nominations) is then started
# with QPS/BURST.
send() {
  local label="$1" scheduler="$2" which="$3" qps="$4" burst="$5" port="${COSCHED_PORT}"
  shift 5
  [[ "${which}" != stock ]] || port="${STOCK_SCHEDULER_PORT}"
  stop_component cosched
  stop_component kube-scheduler
  info "${label}: ${scheduler}${*:+ ($*)}"
  "${BIN_DIR}/cosched-qps" -kubeconfig "${ADMIN_KUBECONFIG}" -scheduler "${scheduler}" \
    -groups "${GANGS}" -size "${GANG_SIZE}" -label "${label}" -out "${RESULTS}" \
    -metrics-url "https://127.0.0.1:${port}/metrics" \
    -start-cmd "$(printf '%q ' "${BASH_SOURCE[0]}" start "${which}" "${qps}" "${burst}")" "$@"
}

for ((run = 1; run <= RUNS; run++)); do
  for setting in ${QPS_SETTINGS}; do
    qps="${setting%%:*}" burst="${setting##*:}"
    [[ "${qps}" =~ ^[0-9]+$ && "${burst}" =~ ^[0-9]+$ ]] || die "QPS_SETTINGS: '${setting}' is not QPS:BURST"
    label="qps ${qps}/${burst} run ${run}"
    send "${label}" default-scheduler stock "${qps}" "${burst}" -plain
    send "${label}" cosched cosched "${qps}" "${burst}"
    send "${label}" cosched cosched "${qps}" "${burst}" -plain
    if [[ "${WITHOUT_NOMINATIONS}" == 1 ]]; then
      send "${label}" cosched cosched-without-nominations "${qps}" "${burst}" -variant "NominatedNodeNameForExpectation off"
    fi
  done
done

# Back to cosched as shipped.
stop_component kube-scheduler
NODES="${NODES}" SKIP_COSCHED_BUILD=1 "${REPO_ROOT}/hack/local-up.sh" >>"${OUT}/local-up.log" 2>&1 \
  || die "restarting cosched as shipped failed (log ${OUT}/local-up.log)"

"${BIN_DIR}/cosched-qps" -report "${RESULTS}" | tee "${OUT}/results.md"
