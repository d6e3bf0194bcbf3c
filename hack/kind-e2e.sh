#!/usr/bin/env bash
# make test-kind: cosched the way its users run it, on a kind cluster of this
# machine's Docker engine, with no registry:
#   1. hack/kind/check-engine.sh: can the engine run kind nodes, directly or
#      through hack/kind/docker-adapter (engines that refuse --privileged)?
#   2. hack/kind/build-tools.sh kind, hack/kind/node-image.sh: kind and a node
#      image for the main module's Kubernetes release, built from the Go
#      module proxy and Debian's packages; cached (a warm run builds nothing);
#   3. kind create cluster: one control plane and KIND_WORKERS workers;
#      hack/kind/network.sh gives them pod networking and checks it;
#   4. hack/kind/cosched-image.sh, kind load, helm install of charts/cosched
#      with only the image overridden: cosched runs as the chart's Deployment;
#      hack/kind/operators.sh deploys KubeRay and training-operator as pods;
#   5. go test ./test/kind with KIND_KUBECONFIG (arguments go to go test).
# On exit, also on Ctrl-C or a failure, it deletes the cluster, the images of
# its own tag and the adapter's log, and restores the host sysctls that
# kubelet changed (kubelet writes a few non-namespaced ones, such as
# vm.overcommit_memory and kernel.panic, into the host's kernel). A cluster
# or changed sysctls left by an interrupted run are cleaned up first.
#
#   KIND_CLUSTER=cosched-kind   cluster name
#   KIND_WORKERS=2              worker nodes
#   KEEP_CLUSTER=1              keep the cluster (and the changed sysctls:
#                               the next run, or `hack/kind-e2e.sh down`,
#                               deletes it and restores them)
#   KIND_STOP_AFTER=            cluster | install: stop after that step
#   KIND_OPERATORS=1            deploy KubeRay and training-operator as pods
#                               (hack/kind/operators.sh); 0 skips them and
#                               test/kind's TestOperatorsAsPods
#   KIND_KUBECONFIG_OUT=        also copy the cluster's kubeconfig there
#   KIND_DOCKER_ADAPTER=auto    see hack/kind/check-engine.sh
#
# hack/kind-e2e.sh down: delete a kept cluster and restore the sysctls.
set -euo pipefail

LOG_PREFIX=kind-e2e
# shellcheck source=hack/kind/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kind/lib.sh"

KIND_CLUSTER="${KIND_CLUSTER:-cosched-kind}"
KIND_WORKERS="${KIND_WORKERS:-2}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
KIND_STOP_AFTER="${KIND_STOP_AFTER:-}"
KIND_OPERATORS="${KIND_OPERATORS:-1}"
HELM="${BIN_DIR}/helm"
KUBECTL="${BIN_DIR}/kubectl"
COSCHED_IMAGE_REPO=cosched
COSCHED_IMAGE_TAG="kind-$$"
[[ "${KIND_WORKERS}" =~ ^[0-9]+$ ]] || die "KIND_WORKERS must be a number, got '${KIND_WORKERS}'"
# The host kernel settings kubelet writes when it starts (non-namespaced, so
# a node's kubelet changes them for the whole machine).
HOST_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
SAVED_SYSCTLS="${KIND_WORK}/host-sysctls.saved"
# kind's entrypoint would pick fuse-overlayfs on this storage driver; the node
# image has containerd's overlayfs snapshotter (on /var, a volume) only.
export KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER=overlayfs

mkdir -p "${KIND_WORK}"
# One run at a time: the cluster name and the saved sysctls are shared.
exec 9>"${KIND_WORK}/run.lock"
flock -n 9 || die "another hack/kind-e2e.sh is running (lock ${KIND_WORK}/run.lock)"

t_start="$(date +%s)"
timings=()
step_t0="${t_start}"
step_done() { # NAME: record how long the step took
  local now
  now="$(date +%s)"
  timings+=("$1=$((now - step_t0))s")
  info "$1 done in $((now - step_t0))s"
  step_t0="${now}"
}

restore_sysctls() {
  [[ -f "${SAVED_SYSCTLS}" ]] || return 0
  local key want have
  while IFS='=' read -r key want; do
    have="$(sysctl -n "${key}" 2>/dev/null || true)"
    if [[ -n "${have}" && "${have}" != "${want}" ]]; then
      if sysctl -qw "${key}=${want}" 2>/dev/null; then
        info "restored host sysctl ${key}=${want} (kubelet had set ${have})"
      else
        warn "could not restore host sysctl ${key}=${want} (now ${have})"
      fi
    fi
  done <"${SAVED_SYSCTLS}"
  rm -f "${SAVED_SYSCTLS}"
}

delete_cluster() {
  if [[ -x "${KIND_BIN}" ]] && "${KIND_BIN}" get clusters 2>/dev/null | grep -qxF "${KIND_CLUSTER}"; then
    info "deleting kind cluster ${KIND_CLUSTER}"
    "${KIND_BIN}" delete cluster --name "${KIND_CLUSTER}" >&2 || warn "kind delete cluster ${KIND_CLUSTER} failed"
  fi
}

# Leftovers of an interrupted run: its cluster, then the sysctls its kubelets
# changed (in that order: a running kubelet would set them again).
clean_previous() {
  if [[ -x "${KIND_BIN}" ]] && "${KIND_BIN}" get clusters 2>/dev/null | grep -qxF "${KIND_CLUSTER}"; then
    use_docker_adapter
    info "found cluster ${KIND_CLUSTER} from an earlier run: replacing it"
    delete_cluster
  fi
  restore_sysctls
  local old
  for old in $(docker images --format '{{.Repository}}:{{.Tag}}' "${COSCHED_IMAGE_REPO}" | grep ":kind-" || true); do
    docker rmi "${old}" >/dev/null 2>&1 && info "removed image ${old} of an earlier run" || true
  done
}

# remove_empty_kind_network: the docker network kind creates for its nodes,
# once no container uses it.
remove_empty_kind_network() {
  if docker network inspect kind >/dev/null 2>&1 &&
    [[ -z "$(docker network inspect kind --format '{{range .Containers}}x{{end}}' 2>/dev/null)" ]]; then
    docker network rm kind >/dev/null 2>&1 || true
  fi
}

if [[ "${1:-}" == down ]]; then
  "${REPO_ROOT}/hack/kind/check-engine.sh" >/dev/null || exit $?
  clean_previous
  remove_empty_kind_network
  rm -f "${KIND_WORK}/kubeconfig"
  exit 0
fi

workdir="$(mktemp -d)"
kubeconfig="${workdir}/kubeconfig"
export COSCHED_ADAPTER_LOG="${workdir}/docker-adapter.log"
child=""
network_existed=1
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Best effort from here on: one failed step must not skip the others.
  set +e
  if [[ -n "${child}" ]]; then
    kill "${child}" 2>/dev/null
    wait "${child}" 2>/dev/null
  fi
  step_t0="$(date +%s)"
  if [[ "${KEEP_CLUSTER}" == 1 && -f "${kubeconfig}" ]]; then
    cp "${kubeconfig}" "${KIND_WORK}/kubeconfig"
    warn "KEEP_CLUSTER=1: cluster ${KIND_CLUSTER} kept (kubeconfig ${KIND_WORK}/kubeconfig); host sysctls stay as kubelet set them until 'hack/kind-e2e.sh down'"
  else
    delete_cluster
    restore_sysctls
    [[ "${network_existed}" == 1 ]] || remove_empty_kind_network
  fi
  docker rmi "${COSCHED_IMAGE_REPO}:${COSCHED_IMAGE_TAG}" >/dev/null 2>&1 || true
  rm -rf "${workdir}"
  step_done delete
  info "times: ${timings[*]} total=$(($(date +%s) - t_start))s"
  if [[ "${rc}" == 0 ]]; then info "OK"; else echo "${LOG_PREFIX}: FAILED (exit ${rc})" >&2; fi
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# bg CMD...: run CMD as a child the traps can stop (bash runs a trap only
# after a foreground child ends; `wait` returns at once on a signal).
bg() {
  "$@" &
  child=$!
  local rc=0
  wait "${child}" || rc=$?
  child=""
  return "${rc}"
}

# --- 1. engine ------------------------------------------------------------------
rc=0
"${REPO_ROOT}/hack/kind/check-engine.sh" >/dev/null || rc=$?
case "${rc}" in
  0) ;;
  2) die "no Docker engine: kind needs one (make test-e2e runs the e2e suite on a local control plane without Docker)" ;;
  *) die "this Docker engine cannot run kind nodes, not even through hack/kind/docker-adapter (see above)" ;;
esac
step_done engine-check

# --- 2. kind and the node image --------------------------------------------------
"${REPO_ROOT}/hack/kind/build-tools.sh" kind
use_docker_adapter
clean_previous
bg "${REPO_ROOT}/hack/kind/node-image.sh" >"${workdir}/node-image"
node_image="$(cat "${workdir}/node-image")"
step_done tools-and-node-image

# --- 3. cluster and network ------------------------------------------------------
docker network inspect kind >/dev/null 2>&1 || network_existed=0
: >"${SAVED_SYSCTLS}.tmp"
for key in "${HOST_SYSCTLS[@]}"; do
  value="$(sysctl -n "${key}" 2>/dev/null)" && echo "${key}=${value}" >>"${SAVED_SYSCTLS}.tmp"
done
mv -f "${SAVED_SYSCTLS}.tmp" "${SAVED_SYSCTLS}"
{
  echo "kind: Cluster"
  echo "apiVersion: kind.x-k8s.io/v1alpha4"
  echo "networking:"
  echo "  disableDefaultCNI: true   # hack/kind/network.sh instead of kindnetd"
  echo "nodes:"
  echo "- role: control-plane"
  for _ in $(seq 1 "${KIND_WORKERS}"); do echo "- role: worker"; done
} >"${workdir}/kind.yaml"
info "creating cluster ${KIND_CLUSTER} (1 control plane, ${KIND_WORKERS} workers) from ${node_image}"
bg "${KIND_BIN}" create cluster --name "${KIND_CLUSTER}" --image "${node_image}" \
  --config "${workdir}/kind.yaml" --kubeconfig "${kubeconfig}" || die "kind create cluster failed"
step_done create-cluster
bg "${REPO_ROOT}/hack/kind/network.sh" "${KIND_CLUSTER}" "${kubeconfig}"
step_done network
[[ -z "${KIND_KUBECONFIG_OUT:-}" ]] || cp "${kubeconfig}" "${KIND_KUBECONFIG_OUT}"
for key in "${HOST_SYSCTLS[@]}"; do
  was="$(sed -n "s/^${key}=//p" "${SAVED_SYSCTLS}")"
  now="$(sysctl -n "${key}" 2>/dev/null || true)"
  [[ "${was}" == "${now}" ]] || info "kubelet changed host sysctl ${key}: ${was} -> ${now} (restored on exit)"
done
[[ "${KIND_STOP_AFTER}" != cluster ]] || exit 0

# --- 4. cosched image, loaded, installed by its chart -----------------------------
image="${COSCHED_IMAGE_REPO}:${COSCHED_IMAGE_TAG}"
bg "${REPO_ROOT}/hack/kind/cosched-image.sh" "${image}"
bg "${KIND_BIN}" load docker-image "${image}" --name "${KIND_CLUSTER}" || die "kind load docker-image ${image} failed"
"${REPO_ROOT}/hack/build-helm.sh" >&2
info "helm install cosched charts/cosched --set image.tag=${COSCHED_IMAGE_TAG}"
bg "${HELM}" install cosched "${REPO_ROOT}/charts/cosched" --kubeconfig "${kubeconfig}" \
  --set "image.tag=${COSCHED_IMAGE_TAG}" --wait --timeout 3m ||
  die "helm install failed: $("${KUBECTL}" --kubeconfig "${kubeconfig}" -n cosched-system get pods -o wide 2>&1 | tr '\n' ';')"
"${KUBECTL}" --kubeconfig "${kubeconfig}" -n cosched-system get pods -o wide >&2
step_done cosched-installed

# --- 4b. real operators as pods ----------------------------------------------------
if [[ "${KIND_OPERATORS}" == 1 ]]; then
  bg "${REPO_ROOT}/hack/kind/operators.sh" "${KIND_CLUSTER}" "${kubeconfig}"
  export KIND_OPERATORS
  step_done operators-deployed
fi
[[ "${KIND_STOP_AFTER}" != install ]] || exit 0

# --- 5. tests ----------------------------------------------------------------------
cd "${REPO_ROOT}"
# The fault tests upgrade the release (helm), stop and start node containers
# (docker; the adapter passes those through) and restore a restarted node's
# routes (network.sh).
KIND_KUBECONFIG="${kubeconfig}" KIND_HELM="${HELM}" KIND_CHART="${REPO_ROOT}/charts/cosched" \
  KIND_NETWORK_CMD="$(printf '%q %q %q' "${REPO_ROOT}/hack/kind/network.sh" "${KIND_CLUSTER}" "${kubeconfig}")" \
  bg go test -trimpath -count=1 -timeout 30m ./test/kind/... "$@"
step_done tests
