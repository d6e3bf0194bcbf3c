#!/usr/bin/env bash
# Shared helpers and settings of hack/local-up.sh and hack/local-down.sh.
# Source it; it defines functions and variables only.
# shellcheck disable=SC2034 # the variables are used by the sourcing scripts

LOCAL_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${LOCAL_SCRIPT_DIR}/../.." && pwd)"

# --- settings (all overridable from the environment) -------------------------
BIN_DIR="${REPO_ROOT}/_output/bin"
LOCAL_DIR="${LOCAL_DIR:-${REPO_ROOT}/_output/local}"
PID_DIR="${LOCAL_DIR}/pids"
LOG_DIR="${LOCAL_DIR}/logs"
PKI_DIR="${LOCAL_DIR}/pki"
KUBECONFIG_DIR="${LOCAL_DIR}/kubeconfig"
ADMIN_KUBECONFIG="${KUBECONFIG_DIR}/admin.kubeconfig"

ETCD_CLIENT_PORT="${ETCD_CLIENT_PORT:-2479}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-2480}"
APISERVER_PORT="${APISERVER_PORT:-6443}"
KCM_PORT="${KCM_PORT:-10357}"
COSCHED_PORT="${COSCHED_PORT:-10359}"
# Only hack/bench-qps.sh starts a stock kube-scheduler, for comparison.
STOCK_SCHEDULER_PORT="${STOCK_SCHEDULER_PORT:-10360}"

COSCHED_BIN="${COSCHED_BIN:-${REPO_ROOT}/bin/cosched}"
KUBECTL="${BIN_DIR}/kubectl"

# Components in start order; local-down stops them in reverse. local-up starts
# all but kube-scheduler (the stock one of hack/bench-qps.sh).
LOCAL_COMPONENTS=(etcd kube-apiserver kube-controller-manager kwok cosched kube-scheduler)

# --- messages ----------------------------------------------------------------
LOG_PREFIX="${LOG_PREFIX:-local}"
info() { echo "${LOG_PREFIX}: $*"; }
warn() { echo "${LOG_PREFIX}: WARNING: $*" >&2; }
die() {
  echo "${LOG_PREFIX}: ERROR: $*" >&2
  exit 1
}

# --- components ----------------------------------------------------------------
# component_bin NAME: the binary a component runs from.
component_bin() {
  case "$1" in
    cosched) echo "${COSCHED_BIN}" ;;
    kube-apiserver | kube-controller-manager) echo "$(kube_bin_dir)/$1" ;;
    *) echo "${BIN_DIR}/$1" ;;
  esac
}

# kube_bin_dir: where kube-apiserver and kube-controller-manager come from.
# hack/local-up.sh sets KUBE_BIN_DIR for KUBE_VERSION (an older release, from
# hack/build-kube.sh) and records it in the pid directory, so local-down and
# the restart scripts find the running control plane's binaries too.
kube_bin_dir() {
  if [[ -n "${KUBE_BIN_DIR:-}" ]]; then
    echo "${KUBE_BIN_DIR}"
  elif [[ -s "${PID_DIR}/kube-bin-dir" ]]; then
    cat "${PID_DIR}/kube-bin-dir"
  else
    echo "${BIN_DIR}"
  fi
}

# component_port NAME and component_port_var NAME: the TCP port a component
# listens on and the variable that overrides it (etcd also uses ETCD_PEER_PORT).
component_port() {
  case "$1" in
    etcd) echo "${ETCD_CLIENT_PORT}" ;;
    kube-apiserver) echo "${APISERVER_PORT}" ;;
    kube-controller-manager) echo "${KCM_PORT}" ;;
    cosched) echo "${COSCHED_PORT}" ;;
    kube-scheduler) echo "${STOCK_SCHEDULER_PORT}" ;;
    *) echo "" ;;
  esac
}

pid_file() { echo "${PID_DIR}/$1.pid"; }
log_file() { echo "${LOG_DIR}/$1.log"; }

# component_pid NAME: prints the recorded PID when that process is still alive
# and runs the component's binary (so a recycled PID is never reported);
# returns 1 otherwise.
component_pid() {
  local name="$1" pf pid exe want
  pf="$(pid_file "${name}")"
  [[ -f "${pf}" ]] || return 1
  pid="$(head -n1 "${pf}" 2>/dev/null || true)"
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  [[ -d "/proc/${pid}" ]] || return 1
  exe="$(readlink "/proc/${pid}/exe" 2>/dev/null || true)"
  exe="${exe% (deleted)}"
  want="$(component_bin "${name}")"
  [[ "${exe}" == "${want}" ]] || return 1
  # A zombie (exited, not yet reaped) is not running.
  [[ "$(awk '{print $3}' "/proc/${pid}/stat" 2>/dev/null)" != "Z" ]] || return 1
  echo "${pid}"
}

component_running() { component_pid "$1" >/dev/null; }

# stop_component NAME [TIMEOUT_SECONDS]: SIGTERM the recorded process, wait,
# then SIGKILL. Only ever signals the PID recorded for that component.
stop_component() {
  local name="$1" timeout="${2:-30}" pid i
  if ! pid="$(component_pid "${name}")"; then
    rm -f "$(pid_file "${name}")" "${PID_DIR}/${name}.fingerprint"
    return 0
  fi
  info "stopping ${name} (pid ${pid})"
  kill -TERM "${pid}" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    component_running "${name}" || break
    sleep 0.1
  done
  if component_running "${name}"; then
    warn "${name} (pid ${pid}) did not exit within ${timeout}s, sending SIGKILL"
    kill -KILL "${pid}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      component_running "${name}" || break
      sleep 0.1
    done
  fi
  rm -f "$(pid_file "${name}")" "${PID_DIR}/${name}.fingerprint"
}

# port_listeners PORT: prints the listening sockets on PORT (any address).
port_listeners() {
  ss -Hltnp "sport = :$1" 2>/dev/null || true
}

port_in_use() { [[ -n "$(port_listeners "$1")" ]]; }

# require_port_free PORT VAR WHAT [GRACE]: fails with a message naming the
# port, who holds it and the variable that moves it, unless the port is free
# within GRACE seconds (default 0). A restart right after a SIGKILL needs a
# grace: the killed process shows as a zombie before its last thread has
# exited and closed its sockets.
require_port_free() {
  local port="$1" var="$2" what="$3" grace="${4:-0}" holders i
  for ((i = 0; i < grace * 10; i++)); do
    port_in_use "${port}" || return 0
    sleep 0.1
  done
  holders="$(port_listeners "${port}")"
  [[ -z "${holders}" ]] && return 0
  die "port ${port} (${what}) is already in use on this machine:
${holders}
Stop whatever listens there, or choose another port: ${var}=<port> $(basename "$0")"
}

# lock_local: one local-up/local-down at a time. The lock lives outside
# LOCAL_DIR (local-down removes that) and is released when the script exits;
# started components get the descriptor closed (see local-up.sh).
lock_local() {
  mkdir -p "${REPO_ROOT}/_output"
  exec 9>"${REPO_ROOT}/_output/.local.lock"
  flock -n 9 || die "another hack/local-up.sh or hack/local-down.sh is running (lock ${REPO_ROOT}/_output/.local.lock)"
}

# --- restarting one component in place -------------------------------------------
# These serve hack/restart-apiserver.sh: they stop a component and start it
# again exactly as hack/local-up.sh had started it, without going through
# local-up (which would also restart any other component whose binary changed
# in the meantime).

# component_args NAME: prints the arguments (without argv[0]) the running
# component was started with, each ended by a NUL; returns 1 when it is not
# running. Read them into an array with: mapfile -d '' args < <(component_args NAME)
component_args() {
  local pid
  pid="$(component_pid "$1")" || return 1
  tail -z -n +2 "/proc/${pid}/cmdline"
}

# launch_component NAME ARGS...: starts the component's binary with ARGS the
# way local-up.sh does (own session, so it outlives the caller; stdin from
# /dev/null; the lock descriptor 9 closed) but appends to its log instead of
# rotating it, and records the new PID. Prints nothing; fails when the process
# exits at once.
launch_component() {
  local name="$1" bin pid
  shift
  bin="$(component_bin "${name}")"
  mkdir -p "${PID_DIR}" "${LOG_DIR}"
  setsid "${bin}" "$@" </dev/null >>"$(log_file "${name}")" 2>&1 9>&- &
  pid=$!
  echo "${pid}" >"$(pid_file "${name}")"
  sleep 0.3
  component_running "${name}"
}

# cosched_metrics: the local cosched's /metrics, read with the admin client
# certificate. Callers keep it whole before they grep: with pipefail, a grep
# -q quitting early would fail curl with a broken pipe.
cosched_metrics() {
  curl -fsSk --max-time 5 --cert "${PKI_DIR}/admin.crt" --key "${PKI_DIR}/admin.key" \
    "https://127.0.0.1:${COSCHED_PORT}/metrics"
}

# local_apiserver_ready: the local kube-apiserver answers /readyz with ok to
# the admin client certificate.
local_apiserver_ready() {
  curl -fsS --max-time 5 --cacert "${PKI_DIR}/ca.crt" --cert "${PKI_DIR}/admin.crt" --key "${PKI_DIR}/admin.key" \
    "https://127.0.0.1:${APISERVER_PORT}/readyz" 2>/dev/null | grep -qx ok
}
