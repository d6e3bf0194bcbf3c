#!/usr/bin/env bash
# Fails when manifests/crds/ is not what hack/update-crds.sh generates.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
CRD_DIR="${REPO_ROOT}/manifests/crds"

tmpdir="$(mktemp -d)"
trap 'rm -rf "${tmpdir}"' EXIT

"${SCRIPT_DIR}/update-crds.sh" "${tmpdir}" >/dev/null \
  || { echo "verify-crds: FAIL: hack/update-crds.sh failed (output above)" >&2; exit 1; }

if ! diff -ru "${CRD_DIR}" "${tmpdir}"; then
  echo "verify-crds: FAIL: manifests/crds is out of date (or was edited by hand); run hack/update-crds.sh" >&2
  exit 1
fi
echo "verify-crds: OK"
