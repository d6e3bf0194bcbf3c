#!/usr/bin/env bash
# Step 0 of running kind without a registry: can this Docker engine run what a
# kind node needs? A kind node is a privileged container with its own cgroup
# namespace running systemd as PID 1; kind's docker provider always passes
# --privileged. This script builds a minimal Debian image with systemd
# (debootstrap + docker import, cached by a version stamp, no registry
# needed), starts it exactly that way and waits for systemd to reach
# multi-user.target. It prints what the engine is (cgroup version, storage
# driver) and, when --privileged is refused, whether systemd would run with
# every capability the daemon can grant (for the record: kind cannot be told
# to use that).
#
# Exit status: 0 when kind's container shape works, 1 when it does not (the
# reason is printed), 2 when a prerequisite (docker, debootstrap) is missing.
#
#   KIND_WORK=_output/kind   where the rootfs and the stamp are kept
#   DEBIAN_SUITE=bookworm    the Debian release debootstrap installs
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
KIND_WORK="${KIND_WORK:-${REPO_ROOT}/_output/kind}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
IMAGE="cosched-kind-check:${DEBIAN_SUITE}"
NAME="cosched-kind-check-$$"

say() { echo "kind-check: $*"; }
fail() {
  say "NOT USABLE: $*"
  exit 1
}

command -v docker >/dev/null 2>&1 || { say "docker is not installed"; exit 2; }
docker info >/dev/null 2>&1 || { say "no Docker engine answers ('docker info' failed)"; exit 2; }

say "engine: $(docker info --format 'server {{.ServerVersion}}, cgroup v{{.CgroupVersion}} ({{.CgroupDriver}}), storage {{.Driver}}')"

if ! docker image inspect "${IMAGE}" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 2; }
  rootfs="${KIND_WORK}/check-rootfs-${DEBIAN_SUITE}"
  if [[ ! -f "${rootfs}/.complete" ]]; then
    say "debootstrap ${DEBIAN_SUITE} with systemd into ${rootfs} (about a minute)"
    rm -rf "${rootfs}"
    mkdir -p "${rootfs}"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus "${DEBIAN_SUITE}" "${rootfs}" \
      >"${KIND_WORK}/check-debootstrap.log" 2>&1 || fail "debootstrap failed, see ${KIND_WORK}/check-debootstrap.log"
    touch "${rootfs}/.complete"
  fi
  tar -C "${rootfs}" --exclude=./.complete -c . |
    docker import -c 'ENV container=docker' -c 'ENTRYPOINT ["/sbin/init"]' - "${IMAGE}" >/dev/null
fi

cleanup() { docker rm -f "${NAME}" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# wait_multi_user NAME: true once systemd in the container reached multi-user.target.
wait_multi_user() {
  local i
  for i in $(seq 1 60); do
    if docker exec "$1" journalctl -b --no-pager 2>/dev/null | grep -q 'Reached target multi-user.target'; then
      return 0
    fi
    sleep 1
  done
  return 1
}

common=(--cgroupns=private --stop-signal SIGRTMIN+3 --tmpfs /tmp --tmpfs /run)
if ! out="$(docker run -d --name "${NAME}" --privileged "${common[@]}" "${IMAGE}" 2>&1)"; then
  say "docker run --privileged --cgroupns=private ${IMAGE} was refused:"
  echo "${out}" | grep -v '^[0-9a-f]\{64\}$' | grep -v '^ *$' | sed 's/^/    /'
  cleanup
  # For the record: does systemd run with every capability the daemon holds?
  bnd="$((16#$(awk '/CapBnd/ {print $2}' /proc/self/status)))"
  all="$(((1 << ($(cat /proc/sys/kernel/cap_last_cap) + 1)) - 1))"
  missing="$(capsh --decode="$(printf '%x' "$((all & ~bnd))")" 2>/dev/null | sed 's/^0x[0-9a-f]*=//' || true)"
  if docker run -d --name "${NAME}" --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw "${common[@]}" "${IMAGE}" >/dev/null 2>&1 && wait_multi_user "${NAME}"; then
    say "without --privileged (all capabilities but CAP_SYS_RESOURCE, unconfined) systemd reaches multi-user.target,"
    say "but kind always passes --privileged: the engine itself lacks ${missing:-a capability (see CapBnd in /proc/self/status)}"
  fi
  fail "the engine refuses privileged containers, which every kind node is"
fi
wait_multi_user "${NAME}" || fail "systemd did not reach multi-user.target in 60 s: $(docker logs "${NAME}" 2>&1 | tail -5)"
say "OK: a privileged container with a private cgroup namespace runs systemd to multi-user.target"
