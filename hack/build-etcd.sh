#!/usr/bin/env bash
# Builds the etcd server used by the integration tests into _output/bin/etcd.
#
# etcd is compiled from source out of the pinned Go module in hack/tools/etcd
# (go.etcd.io/etcd/server/v3), so no prebuilt release tarball is downloaded.
# The script is idempotent: if _output/bin/etcd already exists and reports the
# expected version, nothing is rebuilt. Set FORCE=1 to rebuild anyway.
set -euo pipefail

ETCD_VERSION="3.7.0"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
TOOL_DIR="${REPO_ROOT}/hack/tools/etcd"
OUT_DIR="${REPO_ROOT}/_output/bin"
ETCD_BIN="${OUT_DIR}/etcd"

die() {
  echo "build-etcd: ERROR: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || die "'go' not found in PATH; a Go toolchain is required to build etcd from source"
[[ -f "${TOOL_DIR}/go.mod" ]] || die "missing ${TOOL_DIR}/go.mod (the etcd tool module)"

# installed_version prints the version reported by an existing binary, or
# nothing if the binary is missing or does not run.
installed_version() {
  [[ -x "${ETCD_BIN}" ]] || return 0
  "${ETCD_BIN}" --version 2>/dev/null | awk '/^etcd Version:/ {print $3; exit}' || true
}

if [[ "${FORCE:-0}" != "1" ]]; then
  have="$(installed_version)"
  if [[ "${have}" == "${ETCD_VERSION}" ]]; then
    echo "build-etcd: ${ETCD_BIN} is already etcd ${ETCD_VERSION}, skipping build"
    exit 0
  fi
  if [[ -n "${have}" ]]; then
    echo "build-etcd: ${ETCD_BIN} reports version '${have}', want ${ETCD_VERSION}; rebuilding"
  fi
fi

mkdir -p "${OUT_DIR}"
echo "build-etcd: building etcd ${ETCD_VERSION} into ${ETCD_BIN} (this takes a few minutes on a cold cache)"

# Build to a temporary name and move it into place, so an interrupted build
# never leaves a half-written binary that looks installed.
tmp_bin="${ETCD_BIN}.tmp.$$"
trap 'rm -f "${tmp_bin}"' EXIT
(
  cd "${TOOL_DIR}"
  GOWORK=off CGO_ENABLED=0 go build -trimpath -buildvcs=false -mod=readonly -o "${tmp_bin}" .
) || die "go build of ${TOOL_DIR} failed (see the output above)"
mv -f "${tmp_bin}" "${ETCD_BIN}"
trap - EXIT

have="$(installed_version)"
[[ "${have}" == "${ETCD_VERSION}" ]] || die "built ${ETCD_BIN} but it reports version '${have:-<none>}', expected ${ETCD_VERSION}"
echo "build-etcd: OK: $("${ETCD_BIN}" --version | head -n1)"
