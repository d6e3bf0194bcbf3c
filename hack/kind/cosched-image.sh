#!/usr/bin/env bash
# Builds the cosched image the way the Dockerfile does, where its base images
# cannot be pulled: the same static binary (CGO off, -trimpath, -s -w), the
# same non-root user (65532), the same entrypoint (/cosched), and a root
# filesystem that needs no writes (the chart mounts it read-only). The
# Dockerfile stays the users' build; this is a `docker import` of the binary
# with distroless/static's few files (passwd, group, CA bundle, /tmp).
#
# Usage: cosched-image.sh IMAGE    (e.g. cosched:kind-1234)
set -euo pipefail

LOG_PREFIX=kind-cosched-image
# shellcheck source=hack/kind/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

IMAGE="${1:?usage: cosched-image.sh IMAGE}"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
root="${tmp}/rootfs"
mkdir -p "${root}"/{etc/ssl/certs,home/nonroot,proc,sys,dev,run,var}
install -d -m 1777 "${root}/tmp"
chown 65532:65532 "${root}/home/nonroot"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"${root}/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"${root}/etc/group"
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp /etc/ssl/certs/ca-certificates.crt "${root}/etc/ssl/certs/"

info "building the static cosched binary"
(cd "${REPO_ROOT}" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags '-s -w' -o "${root}/cosched" ./cmd/cosched) ||
  die "building cmd/cosched failed"
tar -C "${root}" --numeric-owner -c . |
  docker import -c 'USER 65532:65532' -c 'ENTRYPOINT ["/cosched"]' - "${IMAGE}" >/dev/null ||
  die "docker import of ${IMAGE} failed"
info "built ${IMAGE}"
