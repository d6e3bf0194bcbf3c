#!/usr/bin/env bash
# Stops the local control plane started by hack/local-up.sh: the clients first
# (cosched, kwok, kube-controller-manager), then kube-apiserver, then etcd (an
# apiserver that loses etcd while shutting down hangs). Only the PIDs recorded
# in _output/local/pids are signalled (SIGTERM, SIGKILL after a timeout).
# Then _output/local is removed, unless KEEP_STATE=1 (certificates, etcd
# data, logs and the kwok/cosched configuration are kept; the next local-up
# reuses them). Binaries in _output/bin and bin/ are never removed.
set -euo pipefail

LOG_PREFIX=local-down
# shellcheck source=hack/lib/local.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/local.sh"
lock_local

KEEP_STATE="${KEEP_STATE:-0}"

if [[ ! -d "${LOCAL_DIR}" ]]; then
  info "nothing to do: ${LOCAL_DIR} does not exist"
  exit 0
fi

for ((i = ${#LOCAL_COMPONENTS[@]} - 1; i >= 0; i--)); do
  name="${LOCAL_COMPONENTS[i]}"
  case "${name}" in
    kube-apiserver) stop_component "${name}" 60 ;;
    *) stop_component "${name}" 30 ;;
  esac
done

# Report (do not touch) anything still listening on the local ports.
busy=""
for port in "${ETCD_CLIENT_PORT}" "${ETCD_PEER_PORT}" "${APISERVER_PORT}" "${KCM_PORT}" "${COSCHED_PORT}"; do
  port_in_use "${port}" && busy+=" ${port}"
done
[[ -z "${busy}" ]] || warn "ports still in use by processes local-up did not start:${busy}"

if [[ "${KEEP_STATE}" == "1" ]]; then
  info "KEEP_STATE=1: keeping ${LOCAL_DIR}"
else
  case "${LOCAL_DIR}" in
    */_output/local) rm -rf "${LOCAL_DIR}" ;;
    *) die "refusing to remove LOCAL_DIR=${LOCAL_DIR} (not an _output/local directory)" ;;
  esac
  info "removed ${LOCAL_DIR}"
fi
info "local control plane stopped"
