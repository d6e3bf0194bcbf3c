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

# The same story through the kubectl plugin (make demo builds it).
[[ -x bin/kubectl-cosched ]] || go build -trimpath -o bin/kubectl-cosched ./cmd/kubectl-cosched
echo
echo "== kubectl cosched get -A =="
bin/kubectl-cosched --kubeconfig="${ADMIN_KUBECONFIG}" get -A
# Describe a gang that still waits with its pods (WAITING set, PENDING > 0).
waiting="$(bin/kubectl-cosched --kubeconfig="${ADMIN_KUBECONFIG}" get -n cosched-demo | awk 'NR > 1 && $8 != "-" && $6 > 0 {print $1; exit}')"
echo
echo "== kubectl cosched describe -n cosched-demo ${waiting:-train-e} =="
bin/kubectl-cosched --kubeconfig="${ADMIN_KUBECONFIG}" describe -n cosched-demo "${waiting:-train-e}"
cat <<MSG

The cluster keeps running, with cosched in it:
  export KUBECONFIG=${ADMIN_KUBECONFIG}
  ${KUBECTL} get podgroups -A
  PATH=${REPO_ROOT}/bin:\$PATH ${KUBECTL} cosched get -A     # the kubectl plugin
  logs: ${LOG_DIR}
Stop it with: make local-down
MSG
