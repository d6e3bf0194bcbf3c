#!/usr/bin/env bash
# Can this Docker engine run kind nodes, and how? kind's docker provider
# starts every node with `docker run --privileged` and runs every command in a
# node with `docker exec --privileged`. Some engines refuse --privileged (here:
# the host's capability bounding set lacks CAP_SYS_RESOURCE, so runc fails with
# "unable to apply caps: operation not permitted"); for those,
# hack/kind/docker-adapter/docker replaces --privileged by what the engine can
# grant.
#
# The check runs a tiny image made on the spot (hack/kind/workload, a static Go
# binary, through `docker import`: no registry), first with --privileged, then,
# if that is refused, through the adapter (run and exec). Every docker call has
# a time limit, so a stuck engine fails the check instead of hanging it.
#
# Prints the verdict and writes it to $KIND_WORK/engine-mode:
#   privileged   the engine runs privileged containers; kind needs nothing else
#   adapter      it refuses --privileged but runs the adapter's options
# Exit status: 0 with a verdict; 1 when the engine refuses even the adapter's
# options; 2 when there is no docker CLI or no engine answers.
#
#   KIND_DOCKER_ADAPTER=auto   auto: as found; always: use the adapter even on
#                              an engine that runs --privileged (to test it)
#   DOCKER_TIMEOUT=120         seconds allowed for each docker call
set -euo pipefail

LOG_PREFIX=kind-check
# shellcheck source=hack/kind/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

KIND_DOCKER_ADAPTER="${KIND_DOCKER_ADAPTER:-auto}"
DOCKER_TIMEOUT="${DOCKER_TIMEOUT:-120}"
IMAGE="cosched-kind-check:$$"
NAME="cosched-kind-check-$$"
mode_file="${KIND_WORK}/engine-mode"
mkdir -p "${KIND_WORK}"
rm -f "${mode_file}"

no_engine() {
  echo "${LOG_PREFIX}: NO ENGINE: $*" >&2
  exit 2
}
command -v docker >/dev/null 2>&1 || no_engine "the docker CLI is not installed; kind needs a Docker engine"
real_docker="$(command -v docker)"
d() { timeout --kill-after=10 "${DOCKER_TIMEOUT}" "${real_docker}" "$@"; }
# through the adapter, as kind would call it
a() { COSCHED_REAL_DOCKER="${real_docker}" timeout --kill-after=10 "${DOCKER_TIMEOUT}" "${KIND_SCRIPT_DIR}/docker-adapter/docker" "$@"; }

engine="$(timeout --kill-after=5 20 docker info --format 'server {{.ServerVersion}}, cgroup v{{.CgroupVersion}} ({{.CgroupDriver}}), storage {{.Driver}}' 2>&1)" ||
  no_engine "no Docker engine answers within 20 s ('docker info': ${engine##*$'\n'})"
info "engine: ${engine}"

cleanup() {
  d rm -f "${NAME}" >/dev/null 2>&1 || true
  d rmi -f "${IMAGE}" >/dev/null 2>&1 || true
  rm -rf "${tmp:-}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image: the workload binary alone (also the node's pause image).
tmp="$(mktemp -d)"
mkdir -p "${tmp}/rootfs"
(cd "${REPO_ROOT}" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "${tmp}/rootfs/workload" ./hack/kind/workload) ||
  die "building hack/kind/workload failed"
tar -C "${tmp}/rootfs" -c . | d import -c 'ENTRYPOINT ["/workload"]' - "${IMAGE}" >/dev/null ||
  die "docker import of the check image failed"

verdict() {
  echo "$1" >"${mode_file}"
  info "verdict: $1 ($2)"
  echo "$1"
  exit 0
}

if [[ "${KIND_DOCKER_ADAPTER}" != always ]]; then
  if out="$(d run --rm --privileged "${IMAGE}" -exit 0 2>&1)"; then
    verdict privileged "docker run --privileged works"
  fi
  info "docker run --privileged is refused:"
  grep -v '^ *$' <<<"${out}" | sed 's/^/    /' >&2
fi

# The adapter: a node-shaped run (private cgroup namespace, detached) and an
# exec --privileged into it, both as kind issues them.
if ! out="$(a run -d --name "${NAME}" --privileged --cgroupns=private --tmpfs /tmp --tmpfs /run "${IMAGE}" 2>&1)"; then
  echo "${LOG_PREFIX}: NOT USABLE: the engine refuses even the adapter's options (hack/kind/docker-adapter/docker):" >&2
  grep -v '^[0-9a-f]\{64\}$' <<<"${out}" | grep -v '^ *$' | sed 's/^/    /' >&2
  exit 1
fi
if ! out="$(a exec --privileged "${NAME}" /workload -exit 0 2>&1)"; then
  echo "${LOG_PREFIX}: NOT USABLE: docker exec through the adapter failed:" >&2
  sed 's/^/    /' <<<"${out}" >&2
  exit 1
fi
verdict adapter "kind's docker calls go through hack/kind/docker-adapter/docker"
