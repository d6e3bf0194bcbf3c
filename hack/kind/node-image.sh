#!/usr/bin/env bash
# Assembles a kind node image for Kubernetes $K8S_VERSION without a registry
# and prints its name. kind's own node image comes from a registry and is
# built from base images that come from one, so this one is put together from
# what this machine can reach:
#   - a Debian rootfs by debootstrap from Debian's packages (systemd,
#     containerd, runc, CNI plugins, iptables, ...), cached in $KIND_WORK;
#   - kind's base files (entrypoint, systemd units, containerd config) from
#     the sigs.k8s.io/kind module of hack/tools/kind;
#   - kubelet, kubeadm, kubectl built from the main module
#     (hack/kind/build-tools.sh);
#   - the images kubeadm needs (control plane, etcd, kube-proxy, CoreDNS,
#     pause) and the tests' workload image, each a `docker import` of its
#     binary, saved into the node image and loaded into containerd at boot by
#     cosched-kind-images.service (hack/kind/node/).
# Changes to kind's files, each because this engine needs it (see
# hack/kind/docker-adapter/docker): containerd's restrict_oom_score_adj (no
# CAP_SYS_RESOURCE to raise a sandbox's OOM score), kubelet's
# --fail-cgroupv1=false (1.37 refuses cgroup v1 by default), and an
# entrypoint that makes the cgroup mounts writable first.
#
# The image is tagged with a content stamp: a hash of the versions and of
# every input file. When an image of that tag exists nothing is built; a new
# one replaces the images of older stamps.
#
#   DEBIAN_SUITE=bookworm         the Debian release of the rootfs
#   DEBIAN_MIRROR=http://deb.debian.org/debian
#   FORCE=1                       rebuild even when the image exists
set -euo pipefail

LOG_PREFIX=kind-node-image
# shellcheck source=hack/kind/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
NODE_FILES="${KIND_SCRIPT_DIR}/node"
WORKLOAD_IMAGE="cosched-kind/workload:v1"
# What kind's base image installs, from Debian: systemd as init, the
# container runtime, and the tools kubelet, kube-proxy and kind call.
PACKAGES=(systemd systemd-sysv dbus containerd runc containernetworking-plugins
  iptables nftables conntrack iproute2 ethtool util-linux mount kmod libseccomp2
  pigz e2fsprogs bash ca-certificates curl jq procps)
ETCD_VERSION="$(sed -n 's/^ETCD_VERSION="\(.*\)"$/\1/p' "${REPO_ROOT}/hack/build-etcd.sh")"

stamp="$(
  {
    echo "k8s=${K8S_VERSION} kind=${KIND_VERSION} coredns=${COREDNS_VERSION} etcd=${ETCD_VERSION}"
    echo "debian=${DEBIAN_SUITE} ${DEBIAN_MIRROR} ${PACKAGES[*]}"
    cd "${REPO_ROOT}" && sha256sum hack/kind/{node-image.sh,lib.sh,build-tools.sh} hack/kind/node/* hack/kind/workload/*.go \
      hack/tools/kind/go.mod hack/tools/kind/node/go.mod hack/tools/coredns/go.mod
  } | sha256sum | cut -c1-16
)"
IMAGE="${NODE_IMAGE_REPO}:${K8S_VERSION}-${stamp}"

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "${IMAGE}" >/dev/null 2>&1; then
  info "${IMAGE} exists (content stamp ${stamp}), nothing to build"
  echo "${IMAGE}"
  exit 0
fi
t0="$(date +%s)"
info "building ${IMAGE}"
[[ "$(id -u)" == 0 ]] || die "debootstrap and chroot need root"
# A fresh machine has Debian's package manager but not debootstrap: install
# it from Debian's packages (no other source is reachable offline).
if ! command -v debootstrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  info "installing debootstrap from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends debootstrap >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends debootstrap >&2; } ||
    die "could not install debootstrap with apt-get (see above)"
fi
for tool in debootstrap chroot sha256sum tar; do
  command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' not found (apt-get install debootstrap)"
done

build="${KIND_WORK}/node-build"
images="${KIND_WORK}/node-images"
tmp_tags=()
cleanup() {
  local t
  [[ -z "${debootstrap_pid:-}" ]] || kill "${debootstrap_pid}" 2>/dev/null || true
  for t in "${tmp_tags[@]}"; do docker rmi -f "${t}" >/dev/null 2>&1 || true; done
  rm -rf "${build}" "${images}"
}
trap cleanup EXIT
rm -rf "${build}" "${images}"
mkdir -p "${images}"

# --- the Debian rootfs, cached by suite and package list ------------------------
# debootstrap mostly downloads: it runs while the Go builds use the CPUs.
rootfs_key="$(echo "${DEBIAN_SUITE} ${DEBIAN_MIRROR} ${PACKAGES[*]}" | sha256sum | cut -c1-12)"
rootfs="${KIND_WORK}/rootfs-${DEBIAN_SUITE}-${rootfs_key}"
debootstrap_pid=""
if [[ ! -f "${rootfs}.complete" ]]; then
  info "debootstrap ${DEBIAN_SUITE} into ${rootfs} (a few minutes; log in ${rootfs}.log)"
  rm -rf "${rootfs}"
  mkdir -p "${rootfs}"
  include="$(IFS=,; echo "${PACKAGES[*]}")"
  debootstrap --variant=minbase --include="${include}" "${DEBIAN_SUITE}" "${rootfs}" "${DEBIAN_MIRROR}" \
    >"${rootfs}.log" 2>&1 &
  debootstrap_pid=$!
fi

"${KIND_SCRIPT_DIR}/build-tools.sh" node

if [[ -n "${debootstrap_pid}" ]]; then
  wait "${debootstrap_pid}" || die "debootstrap failed, see ${rootfs}.log: $(tail -3 "${rootfs}.log")"
  debootstrap_pid=""
  touch "${rootfs}.complete"
fi

# --- container images of the node ---------------------------------------------
# skeleton DIR: what every image here has besides its binary: the directories
# runc mounts onto and a passwd for the non-root users of kubeadm's pods.
skeleton() {
  mkdir -p "$1"/{etc,proc,sys,dev,run,var,usr/local/bin}
  install -d -m 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
  echo 'hosts: files dns' >"$1/etc/nsswitch.conf"
}
# add_libs DIR BINARY: the shared libraries BINARY loads (local-up builds the
# control plane with cgo), from the Debian rootfs, which has the same glibc
# as the Debian build host; nothing for a static binary.
add_libs() {
  local libs
  ldd "$2" >/dev/null 2>&1 || return 0
  mapfile -t libs < <(ldd "$2" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  [[ ${#libs[@]} -gt 0 ]] || return 0
  tar -C "${rootfs}" -ch "${libs[@]#/}" | tar -C "$1" -x || die "copying the libraries of $2 from the rootfs failed"
}
# save_image DIR ARCHIVE ENTRYPOINT TAG...: DIR as an image with these tags
# (docker import, no registry), saved as a docker archive.
save_image() {
  local dir="$1" archive="$2" entrypoint="$3" tag
  shift 3
  local first="$1"
  tar -C "${dir}" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    ${entrypoint:+-c "ENTRYPOINT ${entrypoint}"} - "${first}" >/dev/null || die "docker import of ${first} failed"
  for tag in "$@"; do
    tmp_tags+=("${tag}")
    [[ "${tag}" == "${first}" ]] || docker tag "${first}" "${tag}"
  done
  mkdir -p "$(dirname "${archive}")"
  docker save -o "${archive}" "$@" || die "docker save of $* failed"
  for tag in "$@"; do docker rmi "${tag}" >/dev/null 2>&1 || true; done
  rm -rf "${dir}"
}

mapfile -t kubeadm_images < <("${BIN_DIR}/kubeadm" config images list --kubernetes-version "${K8S_VERSION}")
[[ ${#kubeadm_images[@]} -gt 0 ]] || die "kubeadm config images list gave nothing"
image_of() { # NAME: kubeadm's image for a component (registry.k8s.io/NAME:tag)
  local i
  for i in "${kubeadm_images[@]}"; do
    [[ "${i%:*}" == */"$1" ]] && echo "${i}" && return 0
  done
  die "kubeadm lists no image for $1: ${kubeadm_images[*]}"
}
for name in kube-apiserver kube-controller-manager kube-scheduler etcd kube-proxy coredns pause; do image_of "${name}" >/dev/null; done
sandbox_image="$(sed -n 's/^ *sandbox_image = "\(.*\)"/\1/p' "$(module_dir "${KIND_TOOL_DIR}" sigs.k8s.io/kind)/images/base/files/etc/containerd/config.toml")"
info "images: ${kubeadm_images[*]} ${sandbox_image} ${WORKLOAD_IMAGE}"

d="${images}/src"
for name in kube-apiserver kube-controller-manager kube-scheduler etcd; do
  skeleton "${d}"
  cp "${BIN_DIR}/${name}" "${d}/usr/local/bin/${name}"
  add_libs "${d}" "${BIN_DIR}/${name}"
  save_image "${d}" "${images}/control-plane/${name}.tar" "" "$(image_of "${name}")"
done

# The workload binary is also the sandbox (pause) image: it sleeps until a signal.
skeleton "${d}"
(cd "${REPO_ROOT}" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "${d}/workload" ./hack/kind/workload) || die "building the workload failed"
cp "${d}/workload" "${d}/pause"
mapfile -t pause_tags < <(printf '%s\n' "$(image_of pause)" "${sandbox_image}" "${WORKLOAD_IMAGE}" | sort -u)
save_image "${d}" "${images}/all/pause-workload.tar" '["/workload"]' "${pause_tags[@]}"

skeleton "${d}"
cp "${BIN_DIR}/coredns" "${d}/coredns"
save_image "${d}" "${images}/all/coredns.tar" '["/coredns"]' "$(image_of coredns)"

# kube-proxy programs iptables: its image gets Debian's iptables, conntrack
# and the libraries they load (ldd in the rootfs, plus the xtables modules).
skeleton "${d}"
cp "${BIN_DIR}/kube-proxy" "${d}/usr/local/bin/kube-proxy"
add_libs "${d}" "${BIN_DIR}/kube-proxy"
xt_dir="/usr/lib/x86_64-linux-gnu/xtables"
[[ -d "${rootfs}${xt_dir}" ]] || xt_dir="$(cd "${rootfs}" && find usr/lib -maxdepth 2 -type d -name xtables | head -1 | sed 's#^#/#')"
proxy_files=(/usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/conntrack)
mapfile -t xt_modules < <(cd "${rootfs}" && find "${xt_dir#/}" -name '*.so' | sed 's#^#/#')
mapfile -t proxy_libs < <(for f in "${proxy_files[@]}" "${xt_modules[@]}"; do chroot "${rootfs}" ldd "${f}"; done |
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
tar -C "${rootfs}" -ch "${proxy_files[@]#/}" "${xt_dir#/}" "${proxy_libs[@]#/}" | tar -C "${d}" -x
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf xtables-nft-multi "${d}/usr/sbin/${t}"
  ln -sf xtables-nft-multi "${d}/usr/sbin/${t/tables/tables-nft}"
  ln -sf xtables-legacy-multi "${d}/usr/sbin/${t/tables/tables-legacy}"
done
save_image "${d}" "${images}/all/kube-proxy.tar" "" "$(image_of kube-proxy)"
echo "${stamp}" >"${images}/stamp"

# --- the node's filesystem --------------------------------------------------------
info "assembling the node's filesystem"
cp -a "${rootfs}" "${build}"
kind_files="$(module_dir "${KIND_TOOL_DIR}" sigs.k8s.io/kind)/images/base/files"
[[ -f "${kind_files}/usr/local/bin/entrypoint" ]] || die "kind's base files not found in ${kind_files}"
# As kind's images/base/Dockerfile lays them out.
install -d -m 0755 "${build}/kind" "${build}/kind/bin" "${build}/LICENSES"
install -m 0755 "${kind_files}"/usr/local/bin/* "${build}/usr/local/bin/"
install -m 0644 "${kind_files}"/kind/README.txt "${build}/kind/"
install -m 0755 "${kind_files}"/kind/bin/* "${build}/kind/bin/"
install -m 0644 "${kind_files}"/LICENSES/* "${build}/LICENSES/"
install -m 0644 "${kind_files}"/etc/crictl.yaml "${build}/etc/"
install -D -m 0644 -t "${build}/etc/containerd" "${kind_files}"/etc/containerd/*
install -D -m 0644 -t "${build}/etc/default" "${kind_files}"/etc/default/*
install -D -m 0644 -t "${build}/etc/sysctl.d" "${kind_files}"/etc/sysctl.d/*
install -D -m 0644 -t "${build}/etc/systemd/system" "${kind_files}"/etc/systemd/system/*.service "${kind_files}"/etc/systemd/system/*.slice
install -D -m 0644 -t "${build}/etc/systemd/system/kubelet.service.d" "${kind_files}"/etc/systemd/system/kubelet.service.d/*

# Ours.
install -m 0755 "${NODE_FILES}/cosched-entrypoint" "${NODE_FILES}/load-images.sh" "${build}/kind/bin/"
install -m 0644 "${NODE_FILES}/cosched-kind-images.service" "${build}/etc/systemd/system/"
install -m 0644 "${NODE_FILES}/20-cosched-images.conf" "${build}/etc/systemd/system/kubelet.service.d/"
mkdir -p "${build}/kind/images"
cp -a "${images}/all" "${images}/control-plane" "${images}/stamp" "${build}/kind/images/"

# Debian's paths where kind's files expect its own builds.
ln -sf /usr/bin/containerd "${build}/usr/local/bin/containerd"
mkdir -p "${build}/opt/cni/bin"
for plugin in "${build}"/usr/lib/cni/*; do ln -sf "/usr/lib/cni/$(basename "${plugin}")" "${build}/opt/cni/bin/"; done

sed -i 's/^\( *restrict_oom_score_adj\) = false/\1 = true/' "${build}/etc/containerd/config.toml"
grep -q '^ *restrict_oom_score_adj = true' "${build}/etc/containerd/config.toml" || die "could not set restrict_oom_score_adj in kind's containerd config"
sed -i 's/^KUBELET_EXTRA_ARGS=\(.*\)$/KUBELET_EXTRA_ARGS=\1 --fail-cgroupv1=false/' "${build}/etc/default/kubelet"
grep -q -- '--fail-cgroupv1=false' "${build}/etc/default/kubelet" || die "could not add --fail-cgroupv1=false to ${build}/etc/default/kubelet"

# containerd's base OCI spec, as kind's Dockerfile makes it: runtime
# defaults plus kind's product-files hook, without rlimits.
chroot "${build}" ctr oci spec |
  chroot "${build}" jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"} | del(.process.rlimits)' \
    >"${build}/etc/containerd/cri-base.json" || die "writing containerd's cri-base.json failed"

# systemd in a container, as kind's Dockerfile sets it up.
find "${build}/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
rm -f "${build}"/lib/systemd/system/multi-user.target.wants/* "${build}"/etc/systemd/system/*.wants/* \
  "${build}"/lib/systemd/system/local-fs.target.wants/* "${build}"/lib/systemd/system/sockets.target.wants/*udev* \
  "${build}"/lib/systemd/system/sockets.target.wants/*initctl* "${build}"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >>"${build}/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "${build}/sbin/init"
chroot "${build}" systemctl enable kubelet.service containerd.service undo-mount-hacks.service cosched-kind-images.service >/dev/null 2>&1 ||
  die "systemctl enable in the node's rootfs failed"
chroot "${build}" systemctl mask systemd-binfmt.service >/dev/null 2>&1
mkdir -p "${build}/etc/kubernetes/manifests"

# What kind's node-image build adds: the Kubernetes binaries, the version and
# the manifests kind applies.
install -m 0755 "${BIN_DIR}/kubelet" "${BIN_DIR}/kubeadm" "${BIN_DIR}/kubectl" "${build}/usr/bin/"
echo -n "${K8S_VERSION}" >"${build}/kind/version"
mkdir -p "${build}/kind/manifests"
cat >"${build}/kind/manifests/default-storage.yaml" <<'EOF'
# No provisioner runs here; the class exists for manifests that name it.
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
EOF
cat >"${build}/kind/manifests/default-cni.yaml" <<'EOF'
# kindnetd is not available without a registry: clusters of this image set
# networking.disableDefaultCNI and hack/kind/network.sh sets up pod networking.
apiVersion: v1
kind: ConfigMap
metadata:
  name: cosched-kind-cni
  namespace: kube-system
data:
  note: pod networking is set up by hack/kind/network.sh
EOF
rm -rf "${build}"/var/cache/apt/archives/*.deb "${build}"/var/lib/apt/lists/* "${build}/etc/machine-id"

# --- the image ------------------------------------------------------------------
info "importing the node image"
# Without STOPSIGNAL SIGRTMIN+3 (Docker 20.10 takes it neither in import nor
# in commit): `docker stop` of a node waits its 10 s, then kills systemd.
tar -C "${build}" -c . | docker import -c 'ENV container=docker' \
  -c 'ENTRYPOINT ["/kind/bin/cosched-entrypoint", "/sbin/init"]' - "${IMAGE}" >/dev/null || die "docker import of the node failed"

# Node images of older stamps are of no further use.
docker images --format '{{.Repository}}:{{.Tag}}' "${NODE_IMAGE_REPO}" | { grep -vxF "${IMAGE}" || true; } | while read -r old; do
  info "removing the old node image ${old}"
  docker rmi "${old}" >/dev/null 2>&1 || warn "could not remove ${old} (a cluster still uses it?)"
done
info "built ${IMAGE} in $(($(date +%s) - t0))s"
echo "${IMAGE}"
