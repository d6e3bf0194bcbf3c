#!/usr/bin/env bash
# Takes the local kube-apiserver (started by hack/local-up.sh) away for a
# while and brings it back exactly as it was: same binary, flags, port and
# certificates, read from the running process. Returns once /readyz says ok.
# The e2e suite uses it to cut cosched off from the API server while gangs are
# in flight (test/e2e/outage_test.go).
#
#   hack/restart-apiserver.sh [DOWN_SECONDS]
#
#   DOWN_SECONDS / APISERVER_DOWN_SECONDS=15  how long the API server stays
#                                              away, counted from the signal
#                                              (it stops listening at once);
#                                              longer if stopping takes longer
#   APISERVER_STOP_SIGNAL=KILL                 KILL (gone at once, as on a
#                                              crash) or TERM (graceful
#                                              shutdown: it stops answering
#                                              but can linger up to a minute
#                                              on its clients' open
#                                              connections, so the outage is
#                                              at least APISERVER_STOP_TIMEOUT)
#   APISERVER_STOP_TIMEOUT=10                  seconds a TERMed API server may
#                                              take to exit before SIGKILL
#   WAIT_TIMEOUT=180                           seconds to wait for /readyz
#
# Only kube-apiserver is touched: etcd keeps its data and every client
# (kube-controller-manager, kwok, cosched) keeps running and has to cope.
# The last line printed sums up the outage, for example
#   restart-apiserver: outage 17.6s (stopping 0.3s, down 15.0s, starting until /readyz 2.6s)
# where "down" runs from the signal to the new start.
set -euo pipefail

LOG_PREFIX=restart-apiserver
# shellcheck source=hack/lib/local.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/local.sh"
lock_local

DOWN_SECONDS="${1:-${APISERVER_DOWN_SECONDS:-15}}"
APISERVER_STOP_SIGNAL="${APISERVER_STOP_SIGNAL:-KILL}"
APISERVER_STOP_TIMEOUT="${APISERVER_STOP_TIMEOUT:-10}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-180}"
[[ "${DOWN_SECONDS}" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "DOWN_SECONDS must be a non-negative number of seconds, got '${DOWN_SECONDS}'"
for var in WAIT_TIMEOUT APISERVER_STOP_TIMEOUT; do
  [[ "${!var}" =~ ^[0-9]+$ ]] || die "${var} must be a non-negative integer, got '${!var}'"
done
case "${APISERVER_STOP_SIGNAL}" in
  TERM | KILL) ;;
  *) die "APISERVER_STOP_SIGNAL must be TERM or KILL, got '${APISERVER_STOP_SIGNAL}'" ;;
esac

name=kube-apiserver
pid="$(component_pid "${name}")" || die "${name} is not running (start it with make local-up)"
mapfile -d '' args < <(component_args "${name}")
((${#args[@]} > 0)) || die "could not read the arguments of ${name} (pid ${pid})"
# local-up.sh recognises an unchanged component by this fingerprint of binary
# and flags; both stay the same, so it is put back after the restart and a
# later local-up leaves the restarted API server alone.
fpfile="${PID_DIR}/${name}.fingerprint"
fingerprint="$(cat "${fpfile}" 2>/dev/null || true)"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }

t_stop="$(now)"
echo "--- ${LOG_PREFIX}: SIG${APISERVER_STOP_SIGNAL} at $(date -u +%FT%TZ), back after ${DOWN_SECONDS}s ---" >>"$(log_file "${name}")"
if [[ "${APISERVER_STOP_SIGNAL}" == KILL ]]; then
  info "killing ${name} (pid ${pid})"
  kill -KILL "${pid}" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    component_running "${name}" || break
    sleep 0.1
  done
  component_running "${name}" && die "${name} (pid ${pid}) survived SIGKILL"
  rm -f "$(pid_file "${name}")" "${fpfile}"
else
  stop_component "${name}" "${APISERVER_STOP_TIMEOUT}"
fi
t_down="$(now)"
rest="$(awk -v d="${DOWN_SECONDS}" -v a="${t_stop}" -v b="${t_down}" 'BEGIN {r = d - (b - a); printf "%.3f", (r > 0 ? r : 0)}')"
info "${name} is down; starting it again in ${rest}s"
sleep "${rest}"

for ((i = 0; i < 50; i++)); do port_in_use "${APISERVER_PORT}" || break; sleep 0.1; done
require_port_free "${APISERVER_PORT}" APISERVER_PORT "kube-apiserver"
t_start="$(now)"
echo "--- ${LOG_PREFIX}: starting again at $(date -u +%FT%TZ) ---" >>"$(log_file "${name}")"
launch_component "${name}" "${args[@]}" || {
  tail -n 25 "$(log_file "${name}")" >&2
  die "${name} exited right after starting"
}
[[ -z "${fingerprint}" ]] || echo "${fingerprint}" >"${fpfile}"
info "started ${name} (pid $(cat "$(pid_file "${name}")")), waiting for /readyz"
deadline=$(($(date +%s) + WAIT_TIMEOUT))
until local_apiserver_ready; do
  if ! component_running "${name}"; then
    tail -n 25 "$(log_file "${name}")" >&2
    die "${name} exited while starting"
  fi
  (($(date +%s) < deadline)) || die "${name} not ready within ${WAIT_TIMEOUT}s (WAIT_TIMEOUT); see $(log_file "${name}")"
  sleep 0.2
done
t_ready="$(now)"
info "outage $(secs "${t_stop}" "${t_ready}")s (stopping $(secs "${t_stop}" "${t_down}")s, down $(secs "${t_stop}" "${t_start}")s, starting until /readyz $(secs "${t_start}" "${t_ready}")s)"
