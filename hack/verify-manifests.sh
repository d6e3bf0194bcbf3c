#!/usr/bin/env bash
# Fails when manifests/cosched/config.yaml is not what hack/update-manifests.sh
# generates from manifests/cosched/scheduler-config.yaml.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
COMMITTED="${REPO_ROOT}/manifests/cosched/config.yaml"

tmpdir="$(mktemp -d)"
trap 'rm -rf "${tmpdir}"' EXIT

"${SCRIPT_DIR}/update-manifests.sh" "${tmpdir}/config.yaml" >/dev/null

if [[ ! -f "${COMMITTED}" ]]; then
  echo "verify-manifests: FAIL: ${COMMITTED} does not exist; run hack/update-manifests.sh" >&2
  exit 1
fi
if ! diff -u "${COMMITTED}" "${tmpdir}/config.yaml"; then
  echo "verify-manifests: FAIL: manifests/cosched/config.yaml is out of date with scheduler-config.yaml; run hack/update-manifests.sh" >&2
  exit 1
fi
echo "verify-manifests: OK"
