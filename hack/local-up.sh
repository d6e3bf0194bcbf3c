#!/usr/bin/env bash
# Starts a local, real Kubernetes control plane with fake (KWOK) nodes and
# cosched running against it as a secondary scheduler. No Docker, no kubelet:
#
#   etcd -> kube-apiserver -> kube-controller-manager -> PodGroup CRD +
#   manifests/cosched/{namespace,rbac}.yaml -> kwok controller + fake nodes ->
#   bin/cosched (leader election on, as the ServiceAccount cosched-system/cosched)
#
# Everything listens on 127.0.0.1 only, everything lives under _output/:
# binaries in _output/bin (bin/cosched for the scheduler), state in
# _output/local/{pki,kubeconfig,logs,pids,etcd,kwok,cosched}.
#
# Missing binaries are built from source with the pinned module versions (one
# go build at a time): etcd (hack/build-etcd.sh), kube-apiserver,
# kube-controller-manager, kubectl and kube-scheduler (k8s.io/kubernetes from
# the main module, see hack/tools.go; only hack/bench-qps.sh runs the stock
# kube-scheduler), kwok (module hack/tools/kwok), the PKI helper
# (hack/tools/pki) and bin/cosched (rebuilt when cmd/, pkg/, go.mod or go.sum
# are newer than the binary; SKIP_COSCHED_BUILD=1 uses bin/cosched as it is).
# A binary that exists and reports the expected version is not rebuilt.
#
# Idempotent: a component that is already running with the same binary, flags
# and configuration is left alone, so a second run is a no-op apart from
# re-applying the manifests and nodes. A component whose inputs changed (for
# example a rebuilt bin/cosched, or another port) is restarted. Stop
# everything with hack/local-down.sh (make local-down).
#
# Environment:
#   ETCD_CLIENT_PORT=2479 ETCD_PEER_PORT=2480 APISERVER_PORT=6443
#   KCM_PORT=10357 COSCHED_PORT=10359        listen ports (127.0.0.1)
#   NODES=6                                  fake nodes kwok-node-0..N-1
#   NODE_CPU=8 NODE_MEMORY=32Gi NODE_PODS=110 capacity (= allocatable) of each
#   NODE_EPHEMERAL_STORAGE=100Gi             fake node; hugepages are 0, as a
#   NODE_HUGEPAGES_1GI=0 NODE_HUGEPAGES_2MI=0 kubelet reports with none set aside
#   NODE_INSTANCE_TYPE=fake-<cpu>cpu-<memory> node.kubernetes.io/instance-type
#   REGION=region-0                          topology.kubernetes.io/region
#   ZONES=2 RACKS_PER_ZONE=2                 topology.kubernetes.io/zone and
#                                            topology.cosched.dev/rack labels,
#                                            assigned round-robin
#   NODES_FILE=                              extra Node YAML to apply (give the
#                                            nodes the annotation
#                                            kwok.x-k8s.io/node: fake)
#   KUBE_VERSION=                            run kube-apiserver and
#                                            kube-controller-manager of this
#                                            older release (e.g. 1.34.4; built
#                                            by hack/build-kube.sh into
#                                            _output/kube-<version>/bin); the
#                                            fake nodes report it too. Empty:
#                                            the main module's release
#   SKIP_COSCHED_BUILD=1                     do not (re)build bin/cosched
#   COSCHED_VERBOSITY=2                      cosched --v
#   COSCHED_EXTRA_ARGS=                      more cosched flags, split on spaces
#                                            (e.g. --feature-gates=...)
#   COSCHED_CONFIGMAP=manifests/cosched/config.yaml
#                                            ConfigMap whose data[config.yaml]
#                                            cosched runs with
#   WAIT_TIMEOUT=180                         seconds to wait for each step
#   BUILD_ONLY=1                             build the binaries, start nothing
set -euo pipefail

LOG_PREFIX=local-up
# shellcheck source=hack/lib/local.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/local.sh"
# shellcheck source=hack/lib/k8s-version.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/k8s-version.sh"
lock_local

NODES="${NODES:-6}"
NODE_CPU="${NODE_CPU:-8}"
NODE_MEMORY="${NODE_MEMORY:-32Gi}"
NODE_PODS="${NODE_PODS:-110}"
NODE_EPHEMERAL_STORAGE="${NODE_EPHEMERAL_STORAGE:-100Gi}"
NODE_HUGEPAGES_1GI="${NODE_HUGEPAGES_1GI:-0}"
NODE_HUGEPAGES_2MI="${NODE_HUGEPAGES_2MI:-0}"
NODE_INSTANCE_TYPE="${NODE_INSTANCE_TYPE:-fake-${NODE_CPU}cpu-${NODE_MEMORY,,}}"
REGION="${REGION:-region-0}"
ZONES="${ZONES:-2}"
RACKS_PER_ZONE="${RACKS_PER_ZONE:-2}"
NODES_FILE="${NODES_FILE:-}"
SKIP_COSCHED_BUILD="${SKIP_COSCHED_BUILD:-0}"
COSCHED_VERBOSITY="${COSCHED_VERBOSITY:-2}"
read -r -a COSCHED_EXTRA_ARGS <<<"${COSCHED_EXTRA_ARGS:-}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-180}"
COSCHED_CONFIGMAP="${COSCHED_CONFIGMAP:-${REPO_ROOT}/manifests/cosched/config.yaml}"
PKI_BIN="${BIN_DIR}/cosched-local-pki"
KWOK_MODULE_DIR="${REPO_ROOT}/hack/tools/kwok"

started_at="$(date +%s)"

# --- preflight ---------------------------------------------------------------
for tool in go curl ss setsid flock sha256sum; do
  command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' not found in PATH (needed by $(basename "$0"))"
done
for var in NODES NODE_PODS ZONES RACKS_PER_ZONE WAIT_TIMEOUT ETCD_CLIENT_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT COSCHED_PORT; do
  [[ "${!var}" =~ ^[0-9]+$ ]] || die "${var} must be a non-negative integer, got '${!var}'"
done
((ZONES > 0 && RACKS_PER_ZONE > 0)) || die "ZONES and RACKS_PER_ZONE must be at least 1"
for var in NODE_CPU NODE_MEMORY NODE_EPHEMERAL_STORAGE NODE_HUGEPAGES_1GI NODE_HUGEPAGES_2MI; do
  [[ "${!var}" =~ ^[0-9]+(\.[0-9]+)?([mkMGTPE]|[KMGTPE]i)?$ ]] || die "${var} must be a quantity such as 8, 500m or 32Gi, got '${!var}'"
done
for var in NODE_INSTANCE_TYPE REGION; do
  [[ "${!var}" =~ ^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$ ]] || die "${var} must be a valid label value, got '${!var}'"
done
if [[ -n "${NODES_FILE}" ]]; then
  [[ -f "${NODES_FILE}" ]] || die "NODES_FILE=${NODES_FILE} does not exist"
  NODES_FILE="$(cd "$(dirname "${NODES_FILE}")" && pwd)/$(basename "${NODES_FILE}")"
fi
ports=("${ETCD_CLIENT_PORT}" "${ETCD_PEER_PORT}" "${APISERVER_PORT}" "${KCM_PORT}" "${COSCHED_PORT}")
if [[ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" != "${#ports[@]}" ]]; then
  die "the ports must differ: ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT} ETCD_PEER_PORT=${ETCD_PEER_PORT} APISERVER_PORT=${APISERVER_PORT} KCM_PORT=${KCM_PORT} COSCHED_PORT=${COSCHED_PORT}"
fi
export GOWORK=off

# --- builds ------------------------------------------------------------------
mkdir -p "${BIN_DIR}"

# go_build LABEL OUT DIR ARGS...: one nice'd, -trimpath go build in DIR into a
# temporary file that replaces OUT only on success.
go_build() {
  local label="$1" out="$2" dir="$3" t0
  shift 3
  info "building ${label} (a cold build takes several minutes)"
  t0="$(date +%s)"
  if ! (cd "${dir}" && nice -n 10 go build -trimpath -o "${out}.tmp.$$" "$@"); then
    rm -f "${out}.tmp.$$"
    die "building ${label} failed (see the go output above)"
  fi
  mv -f "${out}.tmp.$$" "${out}"
  info "built ${label} in $(($(date +%s) - t0))s"
}

"${REPO_ROOT}/hack/build-etcd.sh"

K8S_VERSION="$(cd "${REPO_ROOT}" && go list -m -f '{{.Version}}' k8s.io/kubernetes)" \
  || die "cannot determine the k8s.io/kubernetes version from ${REPO_ROOT}/go.mod"
k8s_binary_version() { # NAME: the version an existing binary reports
  local bin="${BIN_DIR}/$1"
  [[ -x "${bin}" ]] || return 0
  case "$1" in
    kubectl) "${bin}" version --client 2>/dev/null | awk '/^Client Version:/ {print $3; exit}' || true ;;
    *) "${bin}" --version 2>/dev/null | awk '{print $2; exit}' || true ;;
  esac
}
for name in kube-apiserver kube-controller-manager kubectl kube-scheduler; do
  have="$(k8s_binary_version "${name}")"
  if [[ "${have}" == "${K8S_VERSION}" ]]; then
    info "${BIN_DIR}/${name} is ${K8S_VERSION}, skipping build"
    continue
  fi
  [[ -z "${have}" ]] || info "${BIN_DIR}/${name} reports '${have}', want ${K8S_VERSION}: rebuilding"
  go_build "${name} ${K8S_VERSION}" "${BIN_DIR}/${name}" "${REPO_ROOT}" \
    -ldflags "$(k8s_ldflags "${K8S_VERSION}")" "k8s.io/kubernetes/cmd/${name}"
  have="$(k8s_binary_version "${name}")"
  [[ "${have}" == "${K8S_VERSION}" ]] || die "${BIN_DIR}/${name} reports '${have}' after the build, want ${K8S_VERSION}"
done

# KUBE_VERSION: the control plane of an older release (make test-compat).
KUBE_VERSION="${KUBE_VERSION:-}"
KUBE_VERSION="${KUBE_VERSION#v}"
if [[ -n "${KUBE_VERSION}" && "v${KUBE_VERSION}" != "${K8S_VERSION}" ]]; then
  KUBE_BIN_DIR="$("${REPO_ROOT}/hack/build-kube.sh" "${KUBE_VERSION}")" || die "building Kubernetes ${KUBE_VERSION} failed"
  NODE_KUBELET_VERSION="v${KUBE_VERSION}"
else
  KUBE_BIN_DIR="${BIN_DIR}"
  NODE_KUBELET_VERSION="${K8S_VERSION}"
fi
# A control plane of another release is never switched under running
# components: its etcd data would be read by an older kube-apiserver.
running_kube_dir="$(KUBE_BIN_DIR= kube_bin_dir)"
if [[ "${BUILD_ONLY:-0}" != "1" && "${running_kube_dir}" != "${KUBE_BIN_DIR}" ]] && { KUBE_BIN_DIR="${running_kube_dir}" component_running kube-apiserver ||
  KUBE_BIN_DIR="${running_kube_dir}" component_running kube-controller-manager; }; then
  die "the running control plane uses ${running_kube_dir}, not ${KUBE_BIN_DIR} (KUBE_VERSION=${KUBE_VERSION:-<main module>}); stop it first: make local-down"
fi
export KUBE_BIN_DIR

KWOK_VERSION="$(awk '$1 == "sigs.k8s.io/kwok" {print $2; exit}' "${KWOK_MODULE_DIR}/go.mod")"
[[ "${KWOK_VERSION}" == v* ]] || die "cannot find the sigs.k8s.io/kwok version in ${KWOK_MODULE_DIR}/go.mod"
kwok_binary_version() {
  [[ -x "${BIN_DIR}/kwok" ]] || return 0
  "${BIN_DIR}/kwok" --version 2>/dev/null | awk '{print $3; exit}' || true
}
if [[ "$(kwok_binary_version)" == "${KWOK_VERSION}" ]]; then
  info "${BIN_DIR}/kwok is ${KWOK_VERSION}, skipping build"
else
  go_build "kwok ${KWOK_VERSION}" "${BIN_DIR}/kwok" "${KWOK_MODULE_DIR}" sigs.k8s.io/kwok/cmd/kwok
  [[ "$(kwok_binary_version)" == "${KWOK_VERSION}" ]] || die "${BIN_DIR}/kwok does not report ${KWOK_VERSION} after the build"
fi

# newer_than FILE PATH...: true when FILE is missing or any Go source, go.mod
# or go.sum below the PATHs is newer than it.
newer_than() {
  local target="$1"
  shift
  [[ -e "${target}" ]] || return 0
  [[ -n "$(find "$@" \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "${target}" -print -quit 2>/dev/null)" ]]
}
if newer_than "${PKI_BIN}" "${REPO_ROOT}/hack/tools/pki" "${REPO_ROOT}/go.mod" "${REPO_ROOT}/go.sum"; then
  go_build "the PKI helper" "${PKI_BIN}" "${REPO_ROOT}" ./hack/tools/pki
fi

if [[ "${SKIP_COSCHED_BUILD}" == "1" ]]; then
  [[ -x "${COSCHED_BIN}" ]] || die "SKIP_COSCHED_BUILD=1 but ${COSCHED_BIN} does not exist; build it first (make build)"
  info "SKIP_COSCHED_BUILD=1: using ${COSCHED_BIN} as it is"
elif newer_than "${COSCHED_BIN}" "${REPO_ROOT}/cmd" "${REPO_ROOT}/pkg" "${REPO_ROOT}/go.mod" "${REPO_ROOT}/go.sum"; then
  mkdir -p "$(dirname "${COSCHED_BIN}")"
  go_build "cosched" "${COSCHED_BIN}" "${REPO_ROOT}" ./cmd/cosched
else
  info "${COSCHED_BIN} is up to date with cmd/ and pkg/, skipping build"
fi
built_at="$(date +%s)"
if [[ "${BUILD_ONLY:-0}" == "1" ]]; then
  info "BUILD_ONLY=1: binaries are in ${BIN_DIR} and ${COSCHED_BIN} ($((built_at - started_at))s); not starting anything"
  exit 0
fi

# --- certificates, kubeconfigs, configuration ----------------------------------
mkdir -p "${PID_DIR}" "${LOG_DIR}" "${LOCAL_DIR}/etcd" "${LOCAL_DIR}/kwok" "${LOCAL_DIR}/cosched" \
  "${LOCAL_DIR}/kube-apiserver" "${LOCAL_DIR}/kube-controller-manager"
chmod 700 "${LOCAL_DIR}/etcd"
APISERVER_URL="https://127.0.0.1:${APISERVER_PORT}"
"${PKI_BIN}" init -pki-dir "${PKI_DIR}" -kubeconfig-dir "${KUBECONFIG_DIR}" -server "${APISERVER_URL}" \
  || die "writing certificates and kubeconfigs failed"

COSCHED_CONFIG="${LOCAL_DIR}/cosched/config.yaml"
"${PKI_BIN}" scheduler-config -configmap "${COSCHED_CONFIGMAP}" -key config.yaml \
  -kubeconfig "${KUBECONFIG_DIR}/cosched.kubeconfig" -out "${COSCHED_CONFIG}" \
  || die "writing ${COSCHED_CONFIG} from ${COSCHED_CONFIGMAP} failed"

KWOK_SRC="$(cd "${KWOK_MODULE_DIR}" && { go list -m -f '{{.Dir}}' sigs.k8s.io/kwok 2>/dev/null || true; })"
[[ -n "${KWOK_SRC}" && -d "${KWOK_SRC}/kustomize/stage" ]] \
  || die "sigs.k8s.io/kwok ${KWOK_VERSION} is not in the module cache (run: cd hack/tools/kwok && go mod download)"
KWOK_CONFIG="${LOCAL_DIR}/kwok/kwok.yaml"
{
  cat "${REPO_ROOT}/hack/local/kwok.yaml"
  for stage in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ -f "${KWOK_SRC}/kustomize/stage/${stage}" ]] || die "kwok stage ${stage} not found in ${KWOK_SRC}"
    echo "---"
    echo "# sigs.k8s.io/kwok@${KWOK_VERSION}/kustomize/stage/${stage}"
    cat "${KWOK_SRC}/kustomize/stage/${stage}"
  done
} >"${KWOK_CONFIG}.tmp"
mv -f "${KWOK_CONFIG}.tmp" "${KWOK_CONFIG}"

# --- process management --------------------------------------------------------
# fingerprint BIN ARGS...: identifies what a component runs with: its binary
# (size, mtime), arguments and the content of every argument that is a file.
fingerprint() {
  local a
  {
    stat -c '%s %Y' "$1"
    for a in "$@"; do
      echo "${a}"
      local f="${a#*=}"
      if [[ -f "${f}" ]]; then sha256sum "${f}"; fi
    done
  } | sha256sum | awk '{print $1}'
}

# ensure_running NAME [VAR=VALUE...] -- ARGS...: starts the component unless it
# already runs with the same fingerprint; restarts it when that changed.
ensure_running() {
  local name="$1" bin fp pid port fpfile envs=() i
  shift
  while [[ "$1" != "--" ]]; do
    envs+=("$1")
    shift
  done
  shift
  bin="$(component_bin "${name}")"
  fp="$(fingerprint "${bin}" "${envs[@]}" "$@")"
  fpfile="${PID_DIR}/${name}.fingerprint"
  if pid="$(component_pid "${name}")"; then
    if [[ "$(cat "${fpfile}" 2>/dev/null || true)" == "${fp}" ]]; then
      info "${name} is already running (pid ${pid}), unchanged"
      return 0
    fi
    info "${name}: binary, flags or configuration changed, restarting"
    stop_component "${name}"
  fi
  rm -f "$(pid_file "${name}")" "${fpfile}"
  port="$(component_port "${name}")"
  if [[ -n "${port}" ]]; then
    for ((i = 0; i < 50; i++)); do port_in_use "${port}" || break; sleep 0.1; done
  fi
  check_ports "${name}"
  [[ ! -f "$(log_file "${name}")" ]] || mv -f "$(log_file "${name}")" "$(log_file "${name}").prev"
  info "starting ${name}"
  # setsid: own session, so the process outlives this script and the terminal.
  env "${envs[@]}" setsid "${bin}" "$@" </dev/null >"$(log_file "${name}")" 2>&1 9>&- &
  pid=$!
  echo "${pid}" >"$(pid_file "${name}")"
  sleep 0.3
  component_running "${name}" || fail_with_log "${name}" "exited right after starting"
  echo "${fp}" >"${fpfile}"
}

# check_ports NAME: the ports NAME needs must be free.
check_ports() {
  case "$1" in
    etcd)
      require_port_free "${ETCD_CLIENT_PORT}" ETCD_CLIENT_PORT "etcd client"
      require_port_free "${ETCD_PEER_PORT}" ETCD_PEER_PORT "etcd peer"
      ;;
    kube-apiserver) require_port_free "${APISERVER_PORT}" APISERVER_PORT "kube-apiserver" ;;
    kube-controller-manager) require_port_free "${KCM_PORT}" KCM_PORT "kube-controller-manager secure port" ;;
    cosched) require_port_free "${COSCHED_PORT}" COSCHED_PORT "cosched secure port" ;;
  esac
}

fail_with_log() {
  local name="$1" msg="$2"
  echo "${LOG_PREFIX}: ERROR: ${name} ${msg}; last lines of $(log_file "${name}"):" >&2
  tail -n 25 "$(log_file "${name}")" >&2 || true
  echo "${LOG_PREFIX}: the components started so far keep running; stop them with hack/local-down.sh (make local-down)" >&2
  exit 1
}

# wait_for NAME WHAT CMD...: polls CMD until it succeeds, failing early when the
# component NAME dies and after WAIT_TIMEOUT seconds.
wait_for() {
  local name="$1" what="$2" deadline
  shift 2
  deadline=$(($(date +%s) + WAIT_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [[ -z "${name}" ]] || component_running "${name}" || fail_with_log "${name}" "exited while waiting for ${what}"
    if (($(date +%s) >= deadline)); then
      if [[ -n "${name}" ]]; then
        fail_with_log "${name}" "did not get to '${what}' within ${WAIT_TIMEOUT}s (WAIT_TIMEOUT)"
      fi
      die "timed out after ${WAIT_TIMEOUT}s waiting for ${what}"
    fi
    sleep 0.5
  done
}

kubectl_admin() { "${KUBECTL}" --kubeconfig="${ADMIN_KUBECONFIG}" "$@"; }

# Fail before starting anything when a port that a stopped component needs is
# taken.
for name in "${LOCAL_COMPONENTS[@]}"; do
  component_running "${name}" || check_ports "${name}"
done

echo "${KUBE_BIN_DIR}" >"${PID_DIR}/kube-bin-dir"

# --- etcd ----------------------------------------------------------------------
ETCD_URL="http://127.0.0.1:${ETCD_CLIENT_PORT}"
ensure_running etcd -- \
  --name=cosched-local \
  --data-dir="${LOCAL_DIR}/etcd" \
  --listen-client-urls="${ETCD_URL}" \
  --advertise-client-urls="${ETCD_URL}" \
  --listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster="cosched-local=http://127.0.0.1:${ETCD_PEER_PORT}" \
  --log-level=warn
etcd_healthy() { curl -fsS --max-time 2 "${ETCD_URL}/health" | grep -q '"health":"true"'; }
wait_for etcd "etcd healthy" etcd_healthy

# --- kube-apiserver --------------------------------------------------------------
ensure_running kube-apiserver -- \
  --etcd-servers="${ETCD_URL}" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="${APISERVER_PORT}" \
  --cert-dir="${LOCAL_DIR}/kube-apiserver" \
  --tls-cert-file="${PKI_DIR}/apiserver.crt" \
  --tls-private-key-file="${PKI_DIR}/apiserver.key" \
  --client-ca-file="${PKI_DIR}/ca.crt" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="${PKI_DIR}/sa.pub" \
  --service-account-signing-key-file="${PKI_DIR}/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --endpoint-reconciler-type=none \
  --requestheader-client-ca-file="${PKI_DIR}/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="${PKI_DIR}/front-proxy-client.crt" \
  --proxy-client-key-file="${PKI_DIR}/front-proxy-client.key" \
  --allow-privileged=true
apiserver_ready() {
  curl -fsS --max-time 5 --cacert "${PKI_DIR}/ca.crt" --cert "${PKI_DIR}/admin.crt" --key "${PKI_DIR}/admin.key" \
    "${APISERVER_URL}/readyz" | grep -qx ok
}
wait_for kube-apiserver "kube-apiserver /readyz" apiserver_ready

# --- kube-controller-manager ---------------------------------------------------------
KCM_KUBECONFIG="${KUBECONFIG_DIR}/kube-controller-manager.kubeconfig"
ensure_running kube-controller-manager -- \
  --kubeconfig="${KCM_KUBECONFIG}" \
  --authentication-kubeconfig="${KCM_KUBECONFIG}" \
  --authorization-kubeconfig="${KCM_KUBECONFIG}" \
  --bind-address=127.0.0.1 \
  --secure-port="${KCM_PORT}" \
  --cert-dir="${LOCAL_DIR}/kube-controller-manager" \
  --leader-elect=false \
  --controllers='*,-node-ipam-controller' \
  --use-service-account-credentials=true \
  --service-account-private-key-file="${PKI_DIR}/sa.key" \
  --root-ca-file="${PKI_DIR}/ca.crt" \
  --cluster-signing-cert-file="${PKI_DIR}/ca.crt" \
  --cluster-signing-key-file="${PKI_DIR}/ca.key" \
  --kube-api-qps=100 \
  --kube-api-burst=200
kcm_healthy() { curl -fsSk --max-time 2 "https://127.0.0.1:${KCM_PORT}/healthz" | grep -qx ok; }
wait_for kube-controller-manager "kube-controller-manager /healthz" kcm_healthy

# --- cluster objects ------------------------------------------------------------------
info "applying the PodGroup CRD and manifests/cosched/{namespace,rbac}.yaml"
kubectl_admin apply -f "${REPO_ROOT}/manifests/crds/" >/dev/null || die "kubectl apply of manifests/crds failed"
kubectl_admin wait --for=condition=Established --timeout="${WAIT_TIMEOUT}s" \
  crd/podgroups.scheduling.x-k8s.io >/dev/null || die "the PodGroup CRD did not become Established"
kubectl_admin apply -f "${REPO_ROOT}/manifests/cosched/namespace.yaml" -f "${REPO_ROOT}/manifests/cosched/rbac.yaml" >/dev/null \
  || die "kubectl apply of manifests/cosched/{namespace,rbac}.yaml failed"

# --- kwok + fake nodes -------------------------------------------------------------------
ensure_running kwok KWOK_WORKDIR="${LOCAL_DIR}/kwok" -- \
  --config="${KWOK_CONFIG}" \
  --kubeconfig="${KUBECONFIG_DIR}/kwok.kubeconfig"

NODES_YAML="${LOCAL_DIR}/nodes.yaml"
# What the fake nodes report besides their sizes, as a kubelet of the
# control plane's release on an Ubuntu VM would (test/testutil/fakenode
# reports the same).
NODE_CONTAINER_RUNTIME_VERSION="containerd://2.1.4"
NODE_KERNEL_VERSION="6.8.0-85-generic"
NODE_OS_IMAGE="Ubuntu 24.04.3 LTS"
# node_ip INDEX: each node's own loopback InternalIP, 127.0.1.1 onwards (kwok
# gives nodes without one 127.0.0.1), so pods' hostIPs differ per node and
# nothing ever leaves the machine.
node_ip() { echo "127.0.$((1 + $1 / 250)).$((1 + $1 % 250))"; }
# node_id KIND NAME: a stable 32-hex-digit ID (machineID, and the UUIDs)
# derived from the node name.
node_id() { printf '%s/%s' "$1" "$2" | sha256sum | cut -c1-32; }
as_uuid() { echo "${1:0:8}-${1:8:4}-${1:12:4}-${1:16:4}-${1:20:12}"; }
# render_node INDEX: hack/local/node.yaml for kwok-node-INDEX.
render_node() {
  local i="$1" name="kwok-node-$1" zone
  zone="zone-$((i % ZONES))"
  sed -e "s|@NAME@|${name}|g" -e "s|@ZONE@|${zone}|g" -e "s|@RACK@|${zone}-rack-$(((i / ZONES) % RACKS_PER_ZONE))|g" \
    -e "s|@REGION@|${REGION}|g" -e "s|@INSTANCE_TYPE@|${NODE_INSTANCE_TYPE}|g" \
    -e "s|@CPU@|${NODE_CPU}|g" -e "s|@MEMORY@|${NODE_MEMORY}|g" -e "s|@PODS@|${NODE_PODS}|g" \
    -e "s|@EPHEMERAL_STORAGE@|${NODE_EPHEMERAL_STORAGE}|g" \
    -e "s|@HUGEPAGES_1GI@|${NODE_HUGEPAGES_1GI}|g" -e "s|@HUGEPAGES_2MI@|${NODE_HUGEPAGES_2MI}|g" \
    -e "s|@INTERNAL_IP@|$(node_ip "${i}")|g" -e "s|@KUBELET_VERSION@|${NODE_KUBELET_VERSION}|g" \
    -e "s|@CONTAINER_RUNTIME_VERSION@|${NODE_CONTAINER_RUNTIME_VERSION}|g" \
    -e "s|@KERNEL_VERSION@|${NODE_KERNEL_VERSION}|g" -e "s|@OS_IMAGE@|${NODE_OS_IMAGE}|g" \
    -e "s|@MACHINE_ID@|$(node_id machine "${name}")|g" \
    -e "s|@SYSTEM_UUID@|$(as_uuid "$(node_id system "${name}")")|g" \
    -e "s|@BOOT_ID@|$(as_uuid "$(node_id boot "${name}")")|g" \
    "${REPO_ROOT}/hack/local/node.yaml"
}
{
  for ((i = 0; i < NODES; i++)); do
    echo "---"
    render_node "${i}"
  done
} >"${NODES_YAML}"
if ((NODES > 0)); then
  info "creating ${NODES} fake nodes (${NODE_CPU} CPU, ${NODE_MEMORY}, ${NODE_PODS} pods, ${NODE_EPHEMERAL_STORAGE} ephemeral-storage; ${NODE_INSTANCE_TYPE} in ${REGION}; ${ZONES} zones x ${RACKS_PER_ZONE} racks)"
  kubectl_admin apply -f "${NODES_YAML}" >/dev/null || die "creating the fake nodes failed"
fi
# Remove generated nodes beyond NODES (from an earlier run with more), and
# bring the status of existing ones (sizes, nodeInfo, addresses) in line with
# the knobs: apply updates their labels but not their status, so the status
# block of the rendered template is patched onto each node that differs.
resources_jsonpath() { # FIELD: the sizes, in the order of want_status
  local r out=""
  for r in cpu memory pods ephemeral-storage hugepages-1Gi hugepages-2Mi; do out+="{.status.$1.${r}}|"; done
  echo "${out}"
}
status_jsonpath="{range .items[*]}{.metadata.name} $(resources_jsonpath capacity)$(resources_jsonpath allocatable)"
status_jsonpath+='{.status.nodeInfo.kubeletVersion}|{.status.nodeInfo.containerRuntimeVersion}|{.status.nodeInfo.kernelVersion}|'
status_jsonpath+='{.status.nodeInfo.osImage}|{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}'
sizes="${NODE_CPU}|${NODE_MEMORY}|${NODE_PODS}|${NODE_EPHEMERAL_STORAGE}|${NODE_HUGEPAGES_1GI}|${NODE_HUGEPAGES_2MI}|"
want_status() { # INDEX: what status_jsonpath prints for an up-to-date node
  echo "${sizes}${sizes}${NODE_KUBELET_VERSION}|${NODE_CONTAINER_RUNTIME_VERSION}|${NODE_KERNEL_VERSION}|${NODE_OS_IMAGE}|$(node_ip "$1")"
}
while read -r node status; do
  [[ -n "${node}" ]] || continue
  idx="${node#kwok-node-}"
  if ! [[ "${idx}" =~ ^[0-9]+$ ]] || ((idx >= NODES)); then
    info "deleting surplus node ${node}"
    kubectl_admin delete node "${node}" --wait=false >/dev/null
  elif [[ "${status}" != "$(want_status "${idx}")" ]]; then
    info "updating the status of ${node} (sizes, nodeInfo, addresses)"
    kubectl_admin patch node "${node}" --subresource=status --type=merge \
      -p "$(render_node "${idx}" | sed -n '/^status:/,$p')" >/dev/null || die "patching the status of ${node} failed"
  fi
done < <(kubectl_admin get nodes -l app.kubernetes.io/managed-by=cosched-local-up -o jsonpath="${status_jsonpath}")
if [[ -n "${NODES_FILE}" ]]; then
  info "applying NODES_FILE=${NODES_FILE}"
  kubectl_admin apply -f "${NODES_FILE}" >/dev/null || die "kubectl apply -f ${NODES_FILE} failed"
fi
all_nodes_ready() {
  local out
  out="$(kubectl_admin get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')" || return 1
  ! grep -qv '^True$' <<<"${out}"
}
if [[ -n "$(kubectl_admin get nodes -o name)" ]]; then
  info "waiting for all nodes to be Ready"
  wait_for kwok "all nodes Ready (nodes need the annotation kwok.x-k8s.io/node: fake)" all_nodes_ready
else
  warn "NODES=0 and no NODES_FILE: the cluster has no nodes"
fi

# --- cosched -----------------------------------------------------------------------------
COSCHED_KUBECONFIG="${KUBECONFIG_DIR}/cosched.kubeconfig"
ensure_running cosched POD_NAMESPACE=cosched-system -- \
  --config="${COSCHED_CONFIG}" \
  --authentication-kubeconfig="${COSCHED_KUBECONFIG}" \
  --authorization-kubeconfig="${COSCHED_KUBECONFIG}" \
  --bind-address=127.0.0.1 \
  --secure-port="${COSCHED_PORT}" \
  --cert-dir="${LOCAL_DIR}/cosched/certs" \
  --v="${COSCHED_VERBOSITY}" \
  ${COSCHED_EXTRA_ARGS[@]+"${COSCHED_EXTRA_ARGS[@]}"}
# This very process leads: its leader-election gauge (the elector is named
# kube-scheduler whatever the Lease is called) is 1, and the Lease
# cosched-system/cosched has a holder.
cosched_leading() {
  local metrics
  metrics="$(cosched_metrics)" &&
    grep -q '^leader_election_master_status{name="kube-scheduler"} 1$' <<<"${metrics}" &&
    [[ -n "$(kubectl_admin -n cosched-system get lease cosched -o jsonpath='{.spec.holderIdentity}')" ]]
}
wait_for cosched "holding the Lease cosched-system/cosched" cosched_leading
cosched_healthy() { curl -fsSk --max-time 2 "https://127.0.0.1:${COSCHED_PORT}/healthz" | grep -qx ok; }
wait_for cosched "cosched /healthz" cosched_healthy

done_at="$(date +%s)"
cat <<EOF

${LOG_PREFIX}: local control plane is up ($((done_at - started_at))s: builds $((built_at - started_at))s, start $((done_at - built_at))s); cosched leads cosched-system/cosched.

  export KUBECONFIG=${ADMIN_KUBECONFIG}
  export PATH=${BIN_DIR}:\$PATH     # kubectl ${K8S_VERSION}
  kubectl get nodes -L topology.kubernetes.io/zone,topology.cosched.dev/rack
  kubectl apply -f manifests/examples/gang.yaml && kubectl get podgroups,pods -o wide

  logs:  ${LOG_DIR}/{etcd,kube-apiserver,kube-controller-manager,kwok,cosched}.log
  stop:  make local-down   (hack/local-down.sh; KEEP_STATE=1 keeps ${LOCAL_DIR})
EOF
