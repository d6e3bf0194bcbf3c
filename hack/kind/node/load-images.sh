#!/bin/bash
# Loads the node's container images into containerd's k8s.io namespace
# before kubelet starts: there is no registry to pull them from. The images
# of the control plane only go to control-plane nodes (kind names them
# <cluster>-control-plane*). Done once per node: /var survives restarts.
set -euo pipefail

done_file=/var/lib/cosched-kind-images
want="$(cat /kind/images/stamp)"
if [[ -f "${done_file}" && "$(cat "${done_file}")" == "${want}" ]]; then
  echo "images ${want} already loaded"
  exit 0
fi
snapshotter="$(sed -n 's/^ *snapshotter = "\(.*\)"/\1/p' /etc/containerd/config.toml | head -1)"
for _ in $(seq 1 120); do
  ctr version >/dev/null 2>&1 && break
  sleep 0.5
done
dirs=(/kind/images/all)
case "$(hostname)" in *-control-plane*) dirs+=(/kind/images/control-plane) ;; esac
pids=()
for dir in "${dirs[@]}"; do
  for archive in "${dir}"/*.tar; do
    ctr --namespace=k8s.io images import --snapshotter="${snapshotter:-overlayfs}" "${archive}" &
    pids+=($!)
  done
done
for pid in "${pids[@]}"; do wait "${pid}"; done
echo "${want}" >"${done_file}"
