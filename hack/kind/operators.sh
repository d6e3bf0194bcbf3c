#!/usr/bin/env bash
# Real operators as pods on the kind cluster: KubeRay (ray-operator) and
# Kubeflow training-operator, built from the project's tool modules
# (hack/tools/kuberay, hack/tools/training-operator) into static binaries and
# FROM-scratch images (no registry), loaded into the nodes, and deployed with
# the kustomize manifests their modules ship, changed only by the overlays in
# hack/kind/operators/ (image, scheduler flags, what a shell-less workload
# image needs). test/kind TestOperatorsAsPods then runs a RayCluster and a
# PyTorchJob.
#
# Usage: operators.sh CLUSTER KUBECONFIG
# Applies and returns; the test waits for the Deployments (training-operator
# becomes ready only once its webhook certificate, which it generates itself,
# has reached its pod: a minute or two).
set -euo pipefail

LOG_PREFIX=kind-operators
# shellcheck source=hack/kind/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

CLUSTER="${1:?usage: operators.sh CLUSTER KUBECONFIG}"
KUBECONFIG_FILE="${2:?usage: operators.sh CLUSTER KUBECONFIG}"
KUBECTL="${BIN_DIR}/kubectl"
OUT="${KIND_WORK}/operators"

# operator NAME: "TOOL_DIR MODULE PACKAGE MANIFESTS" of an operator
# (MANIFESTS: the kustomization in the module its overlay builds on).
operator() {
  case "$1" in
    kuberay-operator)
      echo "${REPO_ROOT}/hack/tools/kuberay github.com/ray-project/kuberay/ray-operator github.com/ray-project/kuberay/ray-operator config/default"
      ;;
    training-operator)
      echo "${REPO_ROOT}/hack/tools/training-operator github.com/kubeflow/training-operator github.com/kubeflow/training-operator/cmd/training-operator.v1 manifests/overlays/standalone"
      ;;
  esac
}

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

for name in kuberay-operator training-operator; do
  read -r tool module pkg manifests <<<"$(operator "${name}")"
  version="$(module_version "${tool}" "${module}")"
  [[ "${version}" == v* ]] || die "no ${module} version in ${tool}/go.mod"
  image="cosched-kind/${name}:${version}"
  # The binary as upstream builds it for its image: static, and (unlike
  # _output/bin/training-operator of make test-operators, which serves its
  # webhook on 127.0.0.1 of this host) listening on the pod's addresses.
  bin="${OUT}/${name}-${version}"
  if [[ ! -x "${bin}" ]]; then
    info "building ${name} ${version} (a cold build takes a few minutes)"
    CGO_ENABLED=0 go_build_to "${bin}" "${tool}" -mod=readonly -ldflags '-s -w' "${pkg}" || die "building ${name} failed"
  fi
  if ! docker image inspect "${image}" >/dev/null 2>&1; then
    root="${tmp}/${name}-root"
    mkdir -p "${root}"/{etc,tmp}
    chmod 1777 "${root}/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"${root}/etc/passwd"
    cp "${bin}" "${root}/manager"
    # The user and entrypoint of upstream's distroless images.
    tar -C "${root}" --numeric-owner -c . |
      docker import -c 'USER 65532:65532' -c 'ENTRYPOINT ["/manager"]' - "${image}" >/dev/null ||
      die "docker import of ${image} failed"
    info "built ${image}"
  fi
  "${KIND_BIN}" load docker-image "${image}" --name "${CLUSTER}" >&2 || die "kind load docker-image ${image} failed"

  # The overlay, with its base as a path relative to it (kustomize refuses
  # absolute ones) into the module cache.
  src="$(module_dir "${tool}" "${module}")" || die "cannot find ${module} in the module cache"
  overlay="${tmp}/${name}"
  cp -r "${KIND_SCRIPT_DIR}/operators/${name}" "${overlay}"
  base="$(realpath --relative-to="${overlay}" "${src}/${manifests}")"
  sed -e "s|@BASE@|${base}|" -e "s|@TAG@|${version}|" "${overlay}/kustomization.yaml.in" >"${overlay}/kustomization.yaml"
  rm "${overlay}/kustomization.yaml.in"
  # Server-side: KubeRay's CRDs are too large for the last-applied annotation.
  info "applying ${module}@${version}/${manifests} with the overlay hack/kind/operators/${name}"
  "${KUBECTL}" --kubeconfig "${KUBECONFIG_FILE}" apply --server-side --force-conflicts -k "${overlay}" >&2 ||
    die "applying ${name}'s manifests failed"
done
