#!/usr/bin/env bash
# Runs the end-to-end suite (test/e2e) against the local control plane:
# brings it up (hack/local-up.sh), runs the suite through KUBECONFIG, and
# tears it down again unless it was already running before. Arguments go to
# go test (for example -run 'Outage|Soak' -v); E2E_TIMEOUT (default 20m) is
# its -timeout.
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
# The outage tests cut the API server (restart-apiserver.sh), tell a
# restarted cosched by its pid file and Lease, start it again after it has
# exited (local-up.sh starts what is missing and leaves the rest alone) and
# read its log; the soak test reads its memory from /proc and its /metrics.
KUBECONFIG="${ADMIN_KUBECONFIG}" \
  KUBECTL="${KUBECTL}" \
  COSCHED_RESTART_CMD="${SCRIPT_DIR}/restart-cosched.sh" \
  COSCHED_APISERVER_RESTART_CMD="${SCRIPT_DIR}/restart-apiserver.sh" \
  COSCHED_START_CMD="SKIP_COSCHED_BUILD=1 ${SCRIPT_DIR}/local-up.sh >/dev/null" \
  COSCHED_PID_FILE="$(pid_file cosched)" \
  COSCHED_LOG_FILE="$(log_file cosched)" \
  COSCHED_METRICS_URL="https://127.0.0.1:${COSCHED_PORT}/metrics" \
  go test -trimpath -count=1 -timeout "${E2E_TIMEOUT:-20m}" ./test/e2e/... "$@"
