#!/usr/bin/env bash
# make demo: brings up the local control plane with cosched (hack/local-up.sh),
# replays the showcase (hack/demo) and leaves the cluster running.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
# shellcheck source=hack/lib/local.sh
LOG_PREFIX=demo source "${SCRIPT_DIR}/lib/local.sh"

# The demo creates the nodes it needs; no default ones.
NODES="${NODES:-0}" "${SCRIPT_DIR}/local-up.sh"
cd "${REPO_ROOT}"
go run -trimpath ./hack/demo --kubeconfig="${ADMIN_KUBECONFIG}"
cat <<MSG

The cluster keeps running, with cosched in it:
  export KUBECONFIG=${ADMIN_KUBECONFIG}
  ${KUBECTL} get podgroups -A
  logs: ${LOG_DIR}
Stop it with: make local-down
MSG
