#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager of an older Kubernetes
# release for the compatibility matrix (make test-compat): VERSION is one of
# the releases with a tool module hack/tools/kube-<major.minor> (it pins
# k8s.io/kubernetes at that exact version). The binaries land in
# _output/kube-<VERSION>/bin and are stamped like release binaries, so
# `kube-apiserver --version` reports v<VERSION> and the server's /version
# answers with it.
#
#   hack/build-kube.sh 1.34.4      # prints the bin directory on stdout
#
# Cached by version: a binary that reports the expected version is not
# rebuilt (the check takes milliseconds). FORCE=1 rebuilds. A cold build
# compiles a whole Kubernetes release (5-20 minutes on 2 cores); on a shared
# machine run it under the heavy-command lock.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
# shellcheck source=hack/lib/k8s-version.sh
source "${SCRIPT_DIR}/lib/k8s-version.sh"

die() {
  echo "build-kube: ERROR: $*" >&2
  exit 1
}
info() { echo "build-kube: $*" >&2; }

VERSION="${1:-}"
VERSION="${VERSION#v}"
[[ "${VERSION}" =~ ^1\.([0-9]+)\.([0-9]+)$ ]] || die "usage: $0 <version, e.g. 1.34.4>"
MINOR="${BASH_REMATCH[1]}"
TOOL_DIR="${REPO_ROOT}/hack/tools/kube-1.${MINOR}"
OUT_DIR="${REPO_ROOT}/_output/kube-${VERSION}/bin"
[[ -f "${TOOL_DIR}/go.mod" ]] || die "no tool module ${TOOL_DIR} for Kubernetes ${VERSION}"
pinned="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3; exit} $1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "${TOOL_DIR}/go.mod")"
[[ "${pinned}" == "v${VERSION}" ]] || die "${TOOL_DIR}/go.mod pins k8s.io/kubernetes ${pinned:-<none>}, not v${VERSION}"

# The same version stamp as a release build.
ldflags="$(k8s_ldflags "v${VERSION}")"

binary_version() { # NAME: what an existing binary reports, or nothing
  [[ -x "${OUT_DIR}/$1" ]] || return 0
  "${OUT_DIR}/$1" --version 2>/dev/null | awk '{print $2; exit}' || true
}

mkdir -p "${OUT_DIR}"
for name in kube-apiserver kube-controller-manager; do
  if [[ "${FORCE:-0}" != "1" && "$(binary_version "${name}")" == "v${VERSION}" ]]; then
    info "${OUT_DIR}/${name} is v${VERSION}, skipping build"
    continue
  fi
  info "building ${name} v${VERSION} (a cold build takes 5-20 minutes)"
  t0="$(date +%s)"
  tmp="${OUT_DIR}/${name}.tmp.$$"
  if ! (cd "${TOOL_DIR}" && GOWORK=off nice -n 10 go build -trimpath -mod=readonly -ldflags "${ldflags}" \
    -o "${tmp}" "k8s.io/kubernetes/cmd/${name}"); then
    rm -f "${tmp}"
    die "go build of ${name} v${VERSION} in ${TOOL_DIR} failed (see the go output above)"
  fi
  mv -f "${tmp}" "${OUT_DIR}/${name}"
  info "built ${name} v${VERSION} in $(($(date +%s) - t0))s"
  [[ "$(binary_version "${name}")" == "v${VERSION}" ]] || die "${OUT_DIR}/${name} does not report v${VERSION} after the build"
done
echo "${OUT_DIR}"
