#!/usr/bin/env bash
# Shared settings and helpers of the scripts in hack/kind/. Source it; it
# defines functions and variables only.
# shellcheck disable=SC2034 # the variables are used by the sourcing scripts

KIND_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${KIND_SCRIPT_DIR}/../.." && pwd)"
# shellcheck source=hack/lib/k8s-version.sh
source "${REPO_ROOT}/hack/lib/k8s-version.sh"
BIN_DIR="${REPO_ROOT}/_output/bin"
# Everything the kind scripts keep between runs: the Debian rootfs, the image
# tarballs, the engine check's verdict, the adapter's directory.
KIND_WORK="${KIND_WORK:-${REPO_ROOT}/_output/kind}"
KIND_BIN="${BIN_DIR}/kind"
KIND_TOOL_DIR="${REPO_ROOT}/hack/tools/kind"
COREDNS_TOOL_DIR="${REPO_ROOT}/hack/tools/coredns"
NODE_TOOL_DIR="${REPO_ROOT}/hack/tools/kind/node"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
# Images of the kind scripts are named cosched-kind-*; the node image's tag is
# its content stamp (hack/kind/node-image.sh).
NODE_IMAGE_REPO="cosched-kind-node"
export GOWORK=off

LOG_PREFIX="${LOG_PREFIX:-kind}"
info() { echo "${LOG_PREFIX}: $*" >&2; }
warn() { echo "${LOG_PREFIX}: WARNING: $*" >&2; }
die() {
  echo "${LOG_PREFIX}: ERROR: $*" >&2
  exit 1
}

# module_version DIR MODULE: the version of MODULE that the go.mod in DIR requires.
module_version() {
  awk -v m="$2" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1/go.mod"
}

# module_dir DIR MODULE: MODULE's source in the module cache, downloaded if missing.
module_dir() {
  local dir
  dir="$(cd "$1" && go list -m -f '{{.Dir}}' "$2" 2>/dev/null || true)"
  if [[ -z "${dir}" || ! -d "${dir}" ]]; then
    (cd "$1" && go mod download "$2") >&2 || return 1
    dir="$(cd "$1" && go list -m -f '{{.Dir}}' "$2")"
  fi
  echo "${dir}"
}

K8S_VERSION="$(cd "${REPO_ROOT}" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
KIND_VERSION="$(module_version "${KIND_TOOL_DIR}" sigs.k8s.io/kind)"
COREDNS_VERSION="$(module_version "${COREDNS_TOOL_DIR}" github.com/coredns/coredns)"


# go_build_to OUT DIR ARGS...: a nice'd, -trimpath go build in DIR into a
# temporary file that replaces OUT only on success.
go_build_to() {
  local out="$1" dir="$2" t0
  shift 2
  t0="$(date +%s)"
  mkdir -p "$(dirname "${out}")"
  if ! (cd "${dir}" && nice -n 10 go build -trimpath -o "${out}.tmp.$$" "$@"); then
    rm -f "${out}.tmp.$$"
    return 1
  fi
  mv -f "${out}.tmp.$$" "${out}"
  info "built $(basename "${out}") in $(($(date +%s) - t0))s"
}

# use_docker_adapter: when the engine check found that this engine refuses
# --privileged, put hack/kind/docker-adapter first on PATH for this process
# and its children only (kind finds `docker` on PATH). COSCHED_REAL_DOCKER
# tells the adapter which docker to call.
use_docker_adapter() {
  local mode_file="${KIND_WORK}/engine-mode"
  [[ -s "${mode_file}" ]] || die "no engine verdict in ${mode_file}: run hack/kind/check-engine.sh first"
  case "$(cat "${mode_file}")" in
    privileged) info "the engine runs privileged containers: kind calls docker directly" ;;
    adapter)
      [[ ":${PATH}:" != *":${KIND_SCRIPT_DIR}/docker-adapter:"* ]] || return 0
      COSCHED_REAL_DOCKER="$(command -v docker)"
      export COSCHED_REAL_DOCKER
      export PATH="${KIND_SCRIPT_DIR}/docker-adapter:${PATH}"
      info "the engine refuses --privileged: kind's docker calls go through hack/kind/docker-adapter/docker"
      ;;
    *) die "unknown engine verdict '$(cat "${mode_file}")' in ${mode_file}" ;;
  esac
}
