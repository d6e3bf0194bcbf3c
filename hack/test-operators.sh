#!/usr/bin/env bash
# Runs real operators against cosched on the local control plane and the suite
# test/operators against them:
#
#   hack/build-operators.sh            kuberay-operator, training-operator into _output/bin (once)
#   hack/local-up.sh                   etcd, kube-apiserver, kube-controller-manager, KWOK, cosched
#                                      (with NODES=0 when this script starts it: every test
#                                      creates its own fake nodes)
#   CRDs                               KubeRay's (config/crd/bases, server-side: > 256 KiB) and
#                                      training-operator's PyTorchJob and MPIJob, from the module cache
#   identities                         one ServiceAccount per operator in the namespace
#                                      cosched-operators, bound to the ClusterRole the operator
#                                      ships (hack/tools/<operator>/rbac.yaml); each runs with a
#                                      kubeconfig holding a token of its ServiceAccount
#   kuberay-operator                   --batch-scheduler=scheduler-plugins (pods get the scheduler
#                                      name scheduler-plugins-scheduler: cosched's alias profile)
#   training-operator                  --gang-scheduler-name=cosched, PyTorchJob and MPIJob
#   go test ./test/operators/...       through KUBECONFIG (admin)
#
# then stops the operators and, unless it was running before, the control
# plane. Arguments go to go test (for example -run 'Ray' -v); OPERATORS_TIMEOUT
# (default 20m) is its -timeout.
#
# Both operators are plain processes on 127.0.0.1 with leader election off.
# Their metrics and health ports are moved off the defaults (8080/8081/8082):
#   KUBERAY_METRICS_PORT=18180 KUBERAY_PROBE_PORT=18181
#   TRAINING_METRICS_PORT=18280 TRAINING_PROBE_PORT=18281 TRAINING_WEBHOOK_PORT=18243
# training-operator v1.8.1 has no flag for the address of its webhook server;
# hack/build-operators.sh builds it against a controller-runtime whose webhook
# server defaults to 127.0.0.1, so it too listens on loopback only. No webhook
# configuration points at it, so the API server never calls it.
#
# training-operator's certificate rotator must finish before it starts its
# controllers: the Secret cosched-operators/training-operator-webhook-cert is
# created first, and once the rotator has written the certificate there it is
# copied to /tmp/k8s-webhook-server/serving-certs (the path the rotator and
# the webhook server read; in a cluster it is the Secret's volume mount).
#
# Other commands (the suite uses "start" to restart an operator it killed):
#   hack/test-operators.sh up            everything above but the tests; leaves it running
#   hack/test-operators.sh start NAME    start operator NAME (kuberay-operator|training-operator)
#   hack/test-operators.sh stop [NAME]   stop one or both operators
# Logs: _output/operators/logs/<operator>.log.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
LOG_PREFIX=test-operators
# shellcheck source=hack/lib/local.sh
source "${SCRIPT_DIR}/lib/local.sh"
export GOWORK=off

OPERATORS=(kuberay-operator training-operator)
OPS_DIR="${REPO_ROOT}/_output/operators"
OPS_PID_DIR="${OPS_DIR}/pids"
OPS_LOG_DIR="${OPS_DIR}/logs"
OPS_KUBECONFIG_DIR="${OPS_DIR}/kubeconfig"
OPS_NAMESPACE=cosched-operators
WEBHOOK_CERT_DIR=/tmp/k8s-webhook-server/serving-certs
WEBHOOK_SECRET=training-operator-webhook-cert

KUBERAY_METRICS_PORT="${KUBERAY_METRICS_PORT:-18180}"
KUBERAY_PROBE_PORT="${KUBERAY_PROBE_PORT:-18181}"
TRAINING_METRICS_PORT="${TRAINING_METRICS_PORT:-18280}"
TRAINING_PROBE_PORT="${TRAINING_PROBE_PORT:-18281}"
TRAINING_WEBHOOK_PORT="${TRAINING_WEBHOOK_PORT:-18243}"
OPERATOR_WAIT_TIMEOUT="${OPERATOR_WAIT_TIMEOUT:-120}"

kubectl_admin() { "${KUBECTL}" --kubeconfig="${ADMIN_KUBECONFIG}" "$@"; }

# module_dir TOOL MODULE: where the tool module's copy of MODULE is in the
# module cache (downloaded when missing).
module_dir() {
  local dir
  dir="$(cd "${REPO_ROOT}/hack/tools/$1" && go list -m -f '{{.Dir}}' "$2" 2>/dev/null || true)"
  if [[ -z "${dir}" || ! -d "${dir}" ]]; then
    (cd "${REPO_ROOT}/hack/tools/$1" && go mod download "$2") || die "cannot download $2 (module hack/tools/$1)"
    dir="$(cd "${REPO_ROOT}/hack/tools/$1" && go list -m -f '{{.Dir}}' "$2")"
  fi
  echo "${dir}"
}
kuberay_dir() { module_dir kuberay github.com/ray-project/kuberay/ray-operator; }
training_dir() { module_dir training-operator github.com/kubeflow/training-operator; }

# --- operator processes ------------------------------------------------------------
op_bin() { echo "${BIN_DIR}/$1"; }
op_pid_file() { echo "${OPS_PID_DIR}/$1.pid"; }
op_log() { echo "${OPS_LOG_DIR}/$1.log"; }

# op_pid NAME: the PID of the running operator (the recorded process, still
# alive and running the operator's binary); returns 1 otherwise.
op_pid() {
  local pf pid exe
  pf="$(op_pid_file "$1")"
  [[ -f "${pf}" ]] || return 1
  pid="$(head -n1 "${pf}" 2>/dev/null || true)"
  [[ "${pid}" =~ ^[0-9]+$ && -d "/proc/${pid}" ]] || return 1
  exe="$(readlink "/proc/${pid}/exe" 2>/dev/null || true)"
  [[ "${exe% (deleted)}" == "$(op_bin "$1")" ]] || return 1
  [[ "$(awk '{print $3}' "/proc/${pid}/stat" 2>/dev/null)" != "Z" ]] || return 1
  echo "${pid}"
}

stop_operator() {
  local name="$1" pid i
  if ! pid="$(op_pid "${name}")"; then
    rm -f "$(op_pid_file "${name}")"
    return 0
  fi
  info "stopping ${name} (pid ${pid})"
  kill -TERM "${pid}" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    op_pid "${name}" >/dev/null || break
    sleep 0.1
  done
  if op_pid "${name}" >/dev/null; then
    warn "${name} (pid ${pid}) did not exit within 15s, sending SIGKILL"
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "$(op_pid_file "${name}")"
}

fail_operator() {
  echo "${LOG_PREFIX}: ERROR: $1 $2; last lines of $(op_log "$1"):" >&2
  tail -n 30 "$(op_log "$1")" >&2 || true
  exit 1
}

# ready URL: the health endpoint answers ok.
ready() { [[ "$(curl -fsS --max-time 2 "$1" 2>/dev/null)" == "ok" ]]; }

# sync_webhook_cert: copies the certificate training-operator's rotator wrote
# into its Secret to where the rotator and the webhook server read it. Returns
# 1 while the Secret has none.
sync_webhook_cert() {
  local crt key
  crt="$(kubectl_admin -n "${OPS_NAMESPACE}" get secret "${WEBHOOK_SECRET}" -o jsonpath='{.data.tls\.crt}' 2>/dev/null || true)"
  key="$(kubectl_admin -n "${OPS_NAMESPACE}" get secret "${WEBHOOK_SECRET}" -o jsonpath='{.data.tls\.key}' 2>/dev/null || true)"
  [[ -n "${crt}" && -n "${key}" ]] || return 1
  mkdir -p "${WEBHOOK_CERT_DIR}"
  chmod 700 "${WEBHOOK_CERT_DIR}"
  # key first: the rotator waits for tls.crt, the webhook server reads both.
  base64 -d <<<"${key}" >"${WEBHOOK_CERT_DIR}/tls.key.tmp" && mv -f "${WEBHOOK_CERT_DIR}/tls.key.tmp" "${WEBHOOK_CERT_DIR}/tls.key"
  base64 -d <<<"${crt}" >"${WEBHOOK_CERT_DIR}/tls.crt.tmp" && mv -f "${WEBHOOK_CERT_DIR}/tls.crt.tmp" "${WEBHOOK_CERT_DIR}/tls.crt"
}

# start_operator NAME: starts the operator unless it runs, and waits until its
# /readyz answers ok.
start_operator() {
  local name="$1" pid args=() envs=() probe deadline synced=0
  [[ -x "$(op_bin "${name}")" ]] || die "$(op_bin "${name}") is missing: run hack/build-operators.sh"
  [[ -f "${OPS_KUBECONFIG_DIR}/${name}.kubeconfig" ]] || die "no kubeconfig for ${name}: run hack/test-operators.sh up"
  if pid="$(op_pid "${name}")"; then
    info "${name} is already running (pid ${pid})"
    return 0
  fi
  case "${name}" in
    kuberay-operator)
      probe="http://127.0.0.1:${KUBERAY_PROBE_PORT}/readyz"
      require_port_free "${KUBERAY_METRICS_PORT}" KUBERAY_METRICS_PORT "kuberay-operator metrics" 10
      require_port_free "${KUBERAY_PROBE_PORT}" KUBERAY_PROBE_PORT "kuberay-operator health probes" 10
      args=(
        --batch-scheduler=scheduler-plugins
        --enable-leader-election=false
        --metrics-addr="127.0.0.1:${KUBERAY_METRICS_PORT}"
        --health-probe-bind-address="127.0.0.1:${KUBERAY_PROBE_PORT}"
        --log-stdout-encoder=console
      )
      ;;
    training-operator)
      probe="http://127.0.0.1:${TRAINING_PROBE_PORT}/readyz"
      require_port_free "${TRAINING_METRICS_PORT}" TRAINING_METRICS_PORT "training-operator metrics" 10
      require_port_free "${TRAINING_PROBE_PORT}" TRAINING_PROBE_PORT "training-operator health probes" 10
      require_port_free "${TRAINING_WEBHOOK_PORT}" TRAINING_WEBHOOK_PORT "training-operator webhook server" 10
      # The rotator keeps its certificate in MY_POD_NAMESPACE; TMPDIR=/tmp
      # keeps the webhook server's certificate directory where the rotator
      # looks (both default to /tmp/k8s-webhook-server/serving-certs).
      envs=(MY_POD_NAMESPACE="${OPS_NAMESPACE}" TMPDIR=/tmp)
      args=(
        --gang-scheduler-name=cosched
        --enable-scheme=pytorchjob
        --enable-scheme=mpijob
        --leader-elect=false
        --metrics-bind-address="127.0.0.1:${TRAINING_METRICS_PORT}"
        --health-probe-bind-address="127.0.0.1:${TRAINING_PROBE_PORT}"
        --webhook-server-port="${TRAINING_WEBHOOK_PORT}"
      )
      ;;
    *) die "unknown operator '${name}' (known: ${OPERATORS[*]})" ;;
  esac
  mkdir -p "${OPS_PID_DIR}" "${OPS_LOG_DIR}"
  info "starting ${name}"
  echo "--- $(date -u +%FT%TZ) ${name} ${args[*]}" >>"$(op_log "${name}")"
  env "${envs[@]}" KUBECONFIG="${OPS_KUBECONFIG_DIR}/${name}.kubeconfig" \
    setsid "$(op_bin "${name}")" "${args[@]}" </dev/null >>"$(op_log "${name}")" 2>&1 &
  echo "$!" >"$(op_pid_file "${name}")"
  # Not a job of this shell: the suite kills it on purpose, quietly.
  disown "$!"
  deadline=$(($(date +%s) + OPERATOR_WAIT_TIMEOUT))
  until ready "${probe}"; do
    op_pid "${name}" >/dev/null || fail_operator "${name}" "exited while starting"
    if [[ "${name}" == training-operator && "${synced}" == 0 ]] && sync_webhook_cert; then
      synced=1
      info "copied the webhook certificate from ${OPS_NAMESPACE}/${WEBHOOK_SECRET} to ${WEBHOOK_CERT_DIR}"
    fi
    (($(date +%s) < deadline)) || fail_operator "${name}" "was not ready (${probe}) within ${OPERATOR_WAIT_TIMEOUT}s"
    sleep 0.5
  done
  info "${name} is ready (pid $(op_pid "${name}"))"
}

# --- cluster setup -----------------------------------------------------------------------
install_crds() {
  local kr to
  kr="$(kuberay_dir)"
  to="$(training_dir)"
  info "applying KubeRay's CRDs (${kr#"${HOME}/"}/config/crd/bases, server-side) and training-operator's PyTorchJob and MPIJob CRDs"
  kubectl_admin apply --server-side --force-conflicts --field-manager=cosched-test-operators \
    -f "${kr}/config/crd/bases/ray.io_rayclusters.yaml" \
    -f "${kr}/config/crd/bases/ray.io_rayjobs.yaml" \
    -f "${kr}/config/crd/bases/ray.io_rayservices.yaml" \
    -f "${to}/manifests/base/crds/kubeflow.org_pytorchjobs.yaml" \
    -f "${to}/manifests/base/crds/kubeflow.org_mpijobs.yaml" >/dev/null || die "applying the operators' CRDs failed"
  kubectl_admin wait --for=condition=Established --timeout=60s \
    crd/rayclusters.ray.io crd/rayjobs.ray.io crd/rayservices.ray.io \
    crd/pytorchjobs.kubeflow.org crd/mpijobs.kubeflow.org >/dev/null || die "the operators' CRDs did not become Established"
}

# write_kubeconfig NAME: a kubeconfig for the ServiceAccount
# cosched-operators/NAME with a token from the TokenRequest API.
write_kubeconfig() {
  local name="$1" token file
  token="$(kubectl_admin -n "${OPS_NAMESPACE}" create token "${name}" --duration=12h)" || die "requesting a token for ${OPS_NAMESPACE}/${name} failed"
  file="${OPS_KUBECONFIG_DIR}/${name}.kubeconfig"
  rm -f "${file}"
  (
    umask 077
    "${KUBECTL}" config --kubeconfig="${file}" set-cluster local --server="https://127.0.0.1:${APISERVER_PORT}" \
      --certificate-authority="${PKI_DIR}/ca.crt" --embed-certs=true >/dev/null
    "${KUBECTL}" config --kubeconfig="${file}" set-credentials "${name}" --token="${token}" >/dev/null
    "${KUBECTL}" config --kubeconfig="${file}" set-context local --cluster=local --user="${name}" >/dev/null
    "${KUBECTL}" config --kubeconfig="${file}" use-context local >/dev/null
  )
}

setup_identities() {
  local kr to
  kr="$(kuberay_dir)"
  to="$(training_dir)"
  info "creating the operators' ServiceAccounts and RBAC in ${OPS_NAMESPACE}"
  kubectl_admin create namespace "${OPS_NAMESPACE}" --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null
  kubectl_admin apply -f "${kr}/config/rbac/role.yaml" -f "${REPO_ROOT}/hack/tools/kuberay/rbac.yaml" \
    -f "${to}/manifests/base/rbac/role.yaml" -f "${REPO_ROOT}/hack/tools/training-operator/rbac.yaml" >/dev/null \
    || die "applying the operators' RBAC failed"
  mkdir -p "${OPS_KUBECONFIG_DIR}"
  chmod 700 "${OPS_KUBECONFIG_DIR}"
  for name in "${OPERATORS[@]}"; do
    write_kubeconfig "${name}"
  done
}

up() {
  "${SCRIPT_DIR}/build-operators.sh"
  if component_running cosched; then
    "${SCRIPT_DIR}/local-up.sh"
  else
    # Every test creates its own fake nodes; nodes of the default pool would
    # only add room the tests do not count on.
    NODES="${NODES:-0}" "${SCRIPT_DIR}/local-up.sh"
  fi
  install_crds
  setup_identities
  if ! op_pid training-operator >/dev/null; then
    # A certificate left from an earlier run would satisfy the rotator before
    # it has written the current one.
    rm -f "${WEBHOOK_CERT_DIR}/tls.crt" "${WEBHOOK_CERT_DIR}/tls.key"
  fi
  for name in "${OPERATORS[@]}"; do
    start_operator "${name}"
  done
}

stop_all() {
  for name in "${OPERATORS[@]}"; do
    stop_operator "${name}"
  done
}

case "${1:-}" in
  up)
    up
    exit 0
    ;;
  start)
    [[ $# == 2 ]] || die "usage: $0 start NAME"
    start_operator "$2"
    exit 0
    ;;
  stop)
    if [[ $# == 2 ]]; then stop_operator "$2"; else stop_all; fi
    exit 0
    ;;
esac

was_running=0
component_running cosched && was_running=1
if [[ "${was_running}" == 0 ]]; then
  trap 'stop_all; "${SCRIPT_DIR}/local-down.sh" || true' EXIT
else
  trap 'stop_all' EXIT
fi
started_at="$(date +%s)"
up
up_at="$(date +%s)"
info "set up in $((up_at - started_at))s; running test/operators"

cd "${REPO_ROOT}"
set +e
KUBECONFIG="${ADMIN_KUBECONFIG}" \
  COSCHED_METRICS_URL="https://127.0.0.1:${COSCHED_PORT}/metrics" \
  COSCHED_OPERATOR_START_CMD="${SCRIPT_DIR}/test-operators.sh start" \
  COSCHED_OPERATOR_PID_DIR="${OPS_PID_DIR}" \
  COSCHED_OPERATOR_LOG_DIR="${OPS_LOG_DIR}" \
  go test -trimpath -count=1 -timeout "${OPERATORS_TIMEOUT:-20m}" ./test/operators/... "$@"
rc=$?
set -e
info "tests took $(($(date +%s) - up_at))s (exit ${rc}); operator logs in ${OPS_LOG_DIR}"
exit "${rc}"
