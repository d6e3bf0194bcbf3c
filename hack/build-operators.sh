#!/usr/bin/env bash
# Builds the real operators that hack/test-operators.sh runs against cosched
# into _output/bin, from the Go module proxy (no images, no release downloads):
#
#   _output/bin/kuberay-operator   github.com/ray-project/kuberay/ray-operator
#                                  (module hack/tools/kuberay)
#   _output/bin/training-operator  github.com/kubeflow/training-operator/cmd/training-operator.v1
#                                  (module hack/tools/training-operator)
#
# Each operator is its own tool module under hack/tools/ because it pins its
# own Kubernetes library versions; they are never part of the main go.mod.
# The version is the one that module's go.mod requires. A binary that exists
# and was built from that module version (read back with `go version -m`) is
# not rebuilt; FORCE=1 rebuilds anyway. Arguments name the operators to build
# (default: all).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
OUT_DIR="${REPO_ROOT}/_output/bin"

info() { echo "build-operators: $*"; }
die() {
  echo "build-operators: ERROR: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || die "'go' not found in PATH; a Go toolchain is required to build the operators"
export GOWORK=off

# operator_spec NAME: prints "TOOL_DIR MODULE PACKAGE" of an operator.
operator_spec() {
  case "$1" in
    kuberay-operator)
      echo "${REPO_ROOT}/hack/tools/kuberay github.com/ray-project/kuberay/ray-operator github.com/ray-project/kuberay/ray-operator"
      ;;
    training-operator)
      echo "${REPO_ROOT}/hack/tools/training-operator github.com/kubeflow/training-operator github.com/kubeflow/training-operator/cmd/training-operator.v1"
      ;;
    *) die "unknown operator '$1' (known: kuberay-operator training-operator)" ;;
  esac
}

# built_version BIN MODULE: the version of MODULE a binary was built from, or
# nothing when the binary is missing or was not built from it.
built_version() {
  [[ -x "$1" ]] || return 0
  go version -m "$1" 2>/dev/null | awk -v m="$2" '($1 == "dep" || $1 == "mod") && $2 == m {print $3; exit}' || true
}

# loopback_webhook_module TOOL_DIR WORK: training-operator v1.8.1 has no flag
# for its webhook server's address, and controller-runtime listens on every
# interface when none is set; the tests must listen on 127.0.0.1 only. This
# copies the tool module into WORK with a private copy of the controller-runtime
# version it requires, taken from the module cache and patched there so that
# its webhook server defaults to 127.0.0.1 (a build-time patch: nothing of
# controller-runtime is kept in this repository), and prints the module's dir.
loopback_webhook_module() {
  local tool="$1" work="$2" cr_dir cr_version server
  cr_version="$(cd "${tool}" && go list -m -f '{{.Version}}' sigs.k8s.io/controller-runtime)" || return 1
  cr_dir="$(cd "${tool}" && go mod download -json "sigs.k8s.io/controller-runtime@${cr_version}" | awk -F'"' '$2 == "Dir" {print $4; exit}')"
  [[ -d "${cr_dir}" ]] || return 1
  mkdir -p "${work}/module"
  cp "${tool}/go.mod" "${tool}/go.sum" "${work}/module/"
  cp -r "${cr_dir}" "${work}/controller-runtime"
  chmod -R u+w "${work}/controller-runtime"
  server="${work}/controller-runtime/pkg/webhook/server.go"
  grep -q '^func (o \*Options) setDefaults() {$' "${server}" || {
    echo "build-operators: controller-runtime ${cr_version} has no Options.setDefaults to patch" >&2
    return 1
  }
  sed -i 's/^func (o \*Options) setDefaults() {$/&\n\tif o.Host == "" {\n\t\to.Host = "127.0.0.1"\n\t}/' "${server}"
  (cd "${work}/module" && go mod edit -replace "sigs.k8s.io/controller-runtime=${work}/controller-runtime") || return 1
  echo "${work}/module"
}

build_operator() {
  local name="$1" dir module pkg want have bin t0 tmp
  read -r dir module pkg <<<"$(operator_spec "${name}")"
  [[ -f "${dir}/go.mod" ]] || die "missing ${dir}/go.mod"
  want="$(awk -v m="${module}" '$1 == m {print $2; exit}' "${dir}/go.mod")"
  [[ "${want}" == v* ]] || die "cannot find the ${module} version in ${dir}/go.mod"
  bin="${OUT_DIR}/${name}"
  have="$(built_version "${bin}" "${module}")"
  if [[ "${name}" == training-operator && -n "${have}" ]] &&
    ! go version -m "${bin}" 2>/dev/null | grep -A1 'sigs.k8s.io/controller-runtime' | grep -q '=>.*/controller-runtime'; then
    info "${bin} was built without the loopback webhook server: rebuilding"
    have=""
  fi
  if [[ "${FORCE:-0}" != "1" && "${have}" == "${want}" ]]; then
    info "${bin} is ${module} ${want}, skipping build"
    return 0
  fi
  [[ -z "${have}" ]] || info "${bin} was built from ${module} ${have}, want ${want}: rebuilding"
  info "building ${name} (${module} ${want}); a cold build takes several minutes"
  t0="$(date +%s)"
  mkdir -p "${OUT_DIR}"
  # A temporary name moved into place: an interrupted build never leaves a
  # half-written binary that looks installed.
  tmp="${bin}.tmp.$$"
  local build_dir="${dir}" overlay=""
  if [[ "${name}" == training-operator ]]; then
    overlay="$(mktemp -d)"
    build_dir="$(loopback_webhook_module "${dir}" "${overlay}")" || { rm -rf "${overlay}"; die "preparing ${name}'s loopback webhook server failed"; }
  fi
  if ! (cd "${build_dir}" && CGO_ENABLED=0 nice -n 10 go build -trimpath -mod=readonly -o "${tmp}" "${pkg}"); then
    rm -f "${tmp}"
    [[ -z "${overlay}" ]] || rm -rf "${overlay}"
    die "building ${name} failed (see the go output above)"
  fi
  [[ -z "${overlay}" ]] || rm -rf "${overlay}"
  mv -f "${tmp}" "${bin}"
  have="$(built_version "${bin}" "${module}")"
  [[ "${have}" == "${want}" ]] || die "${bin} reports ${module} '${have}' after the build, want ${want}"
  info "built ${name} ${want} in $(($(date +%s) - t0))s"
}

names=("$@")
((${#names[@]} > 0)) || names=(kuberay-operator training-operator)
for name in "${names[@]}"; do
  build_operator "${name}"
done
