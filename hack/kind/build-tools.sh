#!/usr/bin/env bash
# Builds what a kind cluster here needs from the Go module proxy into
# _output/bin, each only when missing or reporting another version:
#   kind      sigs.k8s.io/kind (hack/tools/kind)
#   kubelet, kubeadm, kube-proxy: k8s.io/kubernetes of the main module's
#             version from hack/tools/kind/node (the main module's go.sum
#             covers only the commands of hack/tools.go), local-up's ldflags
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl: from
#             the main module, as hack/local-up.sh builds them (reused)
#   coredns   github.com/coredns/coredns (hack/tools/coredns), CGO off
#   etcd      hack/build-etcd.sh
# Usage: build-tools.sh [kind|node]...   (node: everything the node image needs)
# Cold builds take minutes each on 2 cores (kubelet+kubeadm+kube-proxy about
# 12, CoreDNS about 10): on a shared machine run this under the heavy lock.
set -euo pipefail

LOG_PREFIX=kind-tools
# shellcheck source=hack/kind/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

build_kind() {
  local have
  have="$("${KIND_BIN}" version 2>/dev/null | awk '{print $2}' || true)"
  if [[ "${have}" == "${KIND_VERSION}" ]]; then
    info "${KIND_BIN} is kind ${KIND_VERSION}"
    return 0
  fi
  info "building kind ${KIND_VERSION}"
  go_build_to "${KIND_BIN}" "${KIND_TOOL_DIR}" -mod=readonly -ldflags '-s -w' sigs.k8s.io/kind || die "building kind failed"
  have="$("${KIND_BIN}" version | awk '{print $2}')"
  [[ "${have}" == "${KIND_VERSION}" ]] || die "${KIND_BIN} reports '${have}', want ${KIND_VERSION}"
}

k8s_version_of() { # NAME: the version an existing Kubernetes binary reports
  local bin="${BIN_DIR}/$1"
  [[ -x "${bin}" ]] || return 0
  case "$1" in
    kubectl) "${bin}" version --client 2>/dev/null | awk '/^Client Version:/ {print $3; exit}' || true ;;
    kubeadm) "${bin}" version -o short 2>/dev/null || true ;;
    *) "${bin}" --version 2>/dev/null | awk '{print $2; exit}' || true ;;
  esac
}

# build_k8s DIR NAME...: k8s.io/kubernetes/cmd/NAME built in the module at DIR.
build_k8s() {
  local dir="$1" name
  shift
  for name in "$@"; do
    if [[ "$(k8s_version_of "${name}")" == "${K8S_VERSION}" ]]; then
      info "${BIN_DIR}/${name} is ${K8S_VERSION}"
      continue
    fi
    info "building ${name} ${K8S_VERSION} (cold: several minutes)"
    go_build_to "${BIN_DIR}/${name}" "${dir}" -ldflags "$(k8s_ldflags "${K8S_VERSION}")" "k8s.io/kubernetes/cmd/${name}" ||
      die "building ${name} failed"
    [[ "$(k8s_version_of "${name}")" == "${K8S_VERSION}" ]] || die "${BIN_DIR}/${name} does not report ${K8S_VERSION}"
  done
}

build_coredns() {
  local have
  have="$("${BIN_DIR}/coredns" -version 2>/dev/null | awk -F- 'NR == 1 {print $2}' || true)"
  if [[ "v${have}" == "${COREDNS_VERSION}" ]]; then
    info "${BIN_DIR}/coredns is ${COREDNS_VERSION}"
    return 0
  fi
  info "building coredns ${COREDNS_VERSION} (cold: about 10 minutes)"
  CGO_ENABLED=0 go_build_to "${BIN_DIR}/coredns" "${COREDNS_TOOL_DIR}" -mod=readonly -ldflags '-s -w' github.com/coredns/coredns ||
    die "building coredns failed"
  have="$("${BIN_DIR}/coredns" -version | awk -F- 'NR == 1 {print $2}')"
  [[ "v${have}" == "${COREDNS_VERSION}" ]] || die "${BIN_DIR}/coredns reports '${have}', want ${COREDNS_VERSION}"
}

[[ $# -gt 0 ]] || set -- kind node
for what in "$@"; do
  case "${what}" in
    kind) build_kind ;;
    node)
      "${REPO_ROOT}/hack/build-etcd.sh" >&2
      pinned="$(module_version "${NODE_TOOL_DIR}" k8s.io/kubernetes)"
      [[ "${pinned}" == "${K8S_VERSION}" ]] || die "${NODE_TOOL_DIR}/go.mod pins k8s.io/kubernetes ${pinned}, the main module ${K8S_VERSION}"
      build_k8s "${NODE_TOOL_DIR}" kubelet kubeadm kube-proxy
      build_k8s "${REPO_ROOT}" kube-apiserver kube-controller-manager kube-scheduler kubectl
      build_coredns
      ;;
    *) die "unknown target '${what}' (kind or node)" ;;
  esac
done
