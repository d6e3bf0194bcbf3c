#!/usr/bin/env bash
# Runs the end-to-end suite (test/e2e) against the local control plane:
# brings it up (hack/local-up.sh), runs the suite through KUBECONFIG, and
# tears it down again unless it was already running before.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
# shellcheck source=hack/lib/local.sh
LOG_PREFIX=test-e2e source "${SCRIPT_DIR}/lib/local.sh"

was_running=0
component_running cosched && was_running=1

if [[ "${was_running}" == 0 ]]; then
  trap '"${SCRIPT_DIR}/local-down.sh" || true' EXIT
fi
"${SCRIPT_DIR}/local-up.sh"

cd "${REPO_ROOT}"
KUBECONFIG="${ADMIN_KUBECONFIG}" \
  KUBECTL="${KUBECTL}" \
  COSCHED_RESTART_CMD="${SCRIPT_DIR}/restart-cosched.sh" \
  go test -trimpath -count=1 -timeout 20m ./test/e2e/... "$@"
