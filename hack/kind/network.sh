#!/usr/bin/env bash
# Pod networking for a kind cluster made with hack/kind/node-image.sh, which
# kind creates with networking.disableDefaultCNI (kindnetd's image comes from
# a registry). This does what kindnetd does, once, from outside the nodes:
#   - each node gets a CNI config for its own spec.podCIDR: ptp veths with
#     host-local addresses, so pod traffic is routed by the node (and seen by
#     kube-proxy's rules) rather than bridged;
#   - each node gets a route to every other node's podCIDR via that node's
#     address on the kind network.
# Then it waits for every node to be Ready and checks, with pods of the
# workload image, a request from a pod on one worker to a pod on another by
# pod IP, and by Service name (cluster DNS and kube-proxy).
# Idempotent: run it again after a node container restarted (routes live in
# the node's network namespace and are lost with it).
#
# CoreDNS is kept to the cluster's own names: its forwarding of other names
# to the host's resolver is removed, so nothing in the cluster sends DNS
# queries off the machine.
#
# Usage: network.sh CLUSTER KUBECONFIG
set -euo pipefail

LOG_PREFIX=kind-network
# shellcheck source=hack/kind/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

CLUSTER="${1:?usage: network.sh CLUSTER KUBECONFIG}"
export KUBECONFIG="${2:?usage: network.sh CLUSTER KUBECONFIG}"
KUBECTL="${BIN_DIR}/kubectl"
WORKLOAD_IMAGE="cosched-kind/workload:v1"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-180}"
k() { "${KUBECTL}" "$@"; }

mapfile -t nodes < <(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[[ ${#nodes[@]} -gt 0 ]] || die "cluster ${CLUSTER} has no nodes"

# CoreDNS: kubeadm's Corefile without `forward` (and `loop`, which probes
# through it), written before CoreDNS's pods can start (no node is Ready yet).
if k -n kube-system get configmap coredns -o jsonpath='{.data.Corefile}' | grep -qE '^\s*forward\b'; then
  info "CoreDNS: answering cluster names only (no forwarding off the machine)"
  k -n kube-system create configmap coredns --dry-run=client -o yaml --from-literal=Corefile='.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       ttl 30
    }
    prometheus :9153
    cache 30
    reload
    loadbalance
}
' | k -n kube-system replace -f - >/dev/null
  k -n kube-system rollout restart deployment/coredns >/dev/null
fi

declare -A cidr ip
for n in "${nodes[@]}"; do
  for _ in $(seq 1 "${WAIT_TIMEOUT}"); do
    cidr[${n}]="$(k get node "${n}" -o jsonpath='{.spec.podCIDR}')"
    [[ -n "${cidr[${n}]}" ]] && break
    sleep 1
  done
  [[ -n "${cidr[${n}]}" ]] || die "node ${n} got no spec.podCIDR in ${WAIT_TIMEOUT}s"
  ip[${n}]="$(k get node "${n}" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')"
  [[ -n "${ip[${n}]}" ]] || die "node ${n} has no InternalIP"
done

for n in "${nodes[@]}"; do
  mtu="$(docker exec "${n}" cat /sys/class/net/eth0/mtu)"
  info "${n}: pods ${cidr[${n}]} on ${ip[${n}]} (mtu ${mtu})"
  docker exec -i "${n}" sh -c 'mkdir -p /etc/cni/net.d && cat >/etc/cni/net.d/10-cosched-kind.conflist.tmp && mv /etc/cni/net.d/10-cosched-kind.conflist.tmp /etc/cni/net.d/10-cosched-kind.conflist' <<EOF
{
  "cniVersion": "0.4.0",
  "name": "cosched-kind",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": ${mtu},
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${cidr[${n}]}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  docker exec "${n}" sysctl -qw net.ipv4.ip_forward=1
  for other in "${nodes[@]}"; do
    [[ "${other}" == "${n}" ]] && continue
    docker exec "${n}" ip route replace "${cidr[${other}]}" via "${ip[${other}]}"
  done
done

info "waiting for ${#nodes[@]} nodes to be Ready"
k wait --for=condition=Ready nodes --all --timeout="${WAIT_TIMEOUT}s" >/dev/null ||
  die "nodes not Ready: $(k get nodes --no-headers 2>&1 | tr '\n' ';')"
k -n kube-system rollout status deployment/coredns --timeout="${WAIT_TIMEOUT}s" >/dev/null ||
  die "CoreDNS did not become ready: $(k -n kube-system get pods -l k8s-app=kube-dns --no-headers 2>&1 | tr '\n' ';')"

# --- check: pod to pod across nodes, and DNS + Service ----------------------------
mapfile -t workers < <(printf '%s\n' "${nodes[@]}" | grep -v -- '-control-plane' || true)
[[ ${#workers[@]} -ge 2 ]] || { info "fewer than 2 workers: skipping the cross-node check"; exit 0; }
ns=cosched-kind-netcheck
k delete namespace "${ns}" --ignore-not-found --wait=true >/dev/null
k create namespace "${ns}" >/dev/null
trap 'k delete namespace "${ns}" --ignore-not-found --wait=false >/dev/null 2>&1 || true' EXIT
pod() { # NAME NODE RESTART ARGS...: a pod of the workload image bound to NODE
  local name="$1" node="$2" restart="$3"
  shift 3
  local args
  args="$(printf '"%s",' "$@")"
  k -n "${ns}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: ${name}, labels: {app: ${name}}}
spec:
  nodeName: ${node}
  restartPolicy: ${restart}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ${WORKLOAD_IMAGE}
    imagePullPolicy: Never
    args: [${args%,}]
EOF
}
pod server "${workers[0]}" Always -serve :8080
k -n "${ns}" expose pod server --port 8080 >/dev/null
k -n "${ns}" wait --for=condition=Ready pod/server --timeout="${WAIT_TIMEOUT}s" >/dev/null ||
  die "the check's server pod on ${workers[0]} is not Ready: $(k -n "${ns}" describe pod server | tail -15)"
server_ip="$(k -n "${ns}" get pod server -o jsonpath='{.status.podIP}')"
pod by-ip "${workers[1]}" Never -get "http://${server_ip}:8080/" -timeout 20s
pod by-name "${workers[1]}" Never -get "http://server.${ns}.svc.cluster.local:8080/" -timeout 20s
for p in by-ip by-name; do
  if ! k -n "${ns}" wait --for=jsonpath='{.status.phase}'=Succeeded "pod/${p}" --timeout="${WAIT_TIMEOUT}s" >/dev/null; then
    die "network check ${p} from ${workers[1]} to ${workers[0]} failed: $(k -n "${ns}" logs "${p}" 2>&1 | tail -3)"
  fi
  info "check ${p}: $(k -n "${ns}" logs "${p}")"
done
info "OK: pod to pod across nodes by IP, and by Service name through cluster DNS"
