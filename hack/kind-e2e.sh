#!/usr/bin/env bash
# Runs the end-to-end suite (test/e2e) against a kind cluster, for people with
# Docker: creates the cluster, builds the cosched image from the Dockerfile and
# loads it, installs manifests/ (CRD, RBAC, config, Deployment) and KWOK (the
# suite's fake nodes need it), then runs the suite with the cluster's
# kubeconfig. It needs a Docker engine and internet access (kind's node image,
# the Go and distroless base images, KWOK's release manifests); without a
# Docker engine it stops at once.
#
#   KIND_CLUSTER=cosched-e2e   cluster name (deleted at the end unless KEEP_CLUSTER=1)
#   KWOK_VERSION=v0.8.0        KWOK release whose manifests are applied
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
KIND_CLUSTER="${KIND_CLUSTER:-cosched-e2e}"
KIND_VERSION="v0.33.0"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
IMAGE="cosched:e2e"

die() {
  echo "kind-e2e: ERROR: $*" >&2
  exit 1
}

command -v docker >/dev/null 2>&1 || die "docker is not installed; kind needs a Docker engine (without one, use make test-e2e, which runs the same suite on a local control plane)"
docker info >/dev/null 2>&1 || die "no Docker engine answers ('docker info' failed); kind needs one (without it, use make test-e2e, which runs the same suite on a local control plane)"

# Step 0: kind nodes are privileged containers running systemd; say plainly
# when this engine cannot run one instead of failing deep inside kind.
"${SCRIPT_DIR}/kind/check-engine.sh" || die "this Docker engine cannot run kind nodes (see above); make test-e2e runs the same suite on a local control plane"

cd "${REPO_ROOT}"
kind() { go run -trimpath "sigs.k8s.io/kind@${KIND_VERSION}" "$@"; }
workdir="$(mktemp -d)"
kubeconfig="${workdir}/kubeconfig"
cleanup() {
  if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
    kind delete cluster --name "${KIND_CLUSTER}" >/dev/null 2>&1 || true
  fi
  rm -rf "${workdir}"
}
trap cleanup EXIT

kind create cluster --name "${KIND_CLUSTER}" --kubeconfig "${kubeconfig}" --wait 120s
docker build -t "${IMAGE}" .
kind load docker-image "${IMAGE}" --name "${KIND_CLUSTER}"

export KUBECONFIG="${kubeconfig}"
KUBECTL="${KUBECTL:-kubectl}"
command -v "${KUBECTL}" >/dev/null 2>&1 || KUBECTL="${REPO_ROOT}/_output/bin/kubectl"
[[ -x "$(command -v "${KUBECTL}")" ]] || die "no kubectl: install one or run make local-tools"

"${KUBECTL}" apply -k manifests/
"${KUBECTL}" -n cosched-system set image deployment/cosched "cosched=${IMAGE}"
"${KUBECTL}" -n cosched-system rollout status deployment/cosched --timeout=180s

"${KUBECTL}" apply -f "https://github.com/kubernetes-sigs/kwok/releases/download/${KWOK_VERSION}/kwok.yaml"
"${KUBECTL}" apply -f "https://github.com/kubernetes-sigs/kwok/releases/download/${KWOK_VERSION}/stage-fast.yaml"
"${KUBECTL}" -n kube-system rollout status deployment/kwok-controller --timeout=180s

KUBECTL="${KUBECTL}" \
  COSCHED_RESTART_CMD="${KUBECTL} -n cosched-system delete pod -l app.kubernetes.io/name=cosched --grace-period=0 --force --wait=false" \
  go test -trimpath -count=1 -timeout 20m ./test/e2e/... "$@"
