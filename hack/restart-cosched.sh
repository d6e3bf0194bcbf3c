#!/usr/bin/env bash
# Kills the local cosched (started by hack/local-up.sh) the hard way, as a
# crash would, and starts it again. The e2e suite uses it to restart the
# scheduler while a gang waits at Permit.
set -euo pipefail

LOG_PREFIX=restart-cosched
# shellcheck source=hack/lib/local.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/local.sh"

pid="$(component_pid cosched)" || die "cosched is not running (start it with make local-up)"
info "killing cosched (pid ${pid})"
kill -KILL "${pid}"
for ((i = 0; i < 50; i++)); do
  component_running cosched || break
  sleep 0.1
done
SKIP_COSCHED_BUILD=1 "${LOCAL_SCRIPT_DIR}/../local-up.sh" >/dev/null
info "cosched restarted"
