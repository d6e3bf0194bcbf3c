#!/usr/bin/env bash
# Sourced by the scripts that build Kubernetes binaries (hack/local-up.sh,
# hack/build-kube.sh, hack/kind/lib.sh).

# k8s_ldflags VERSION: the version stamp of a release build of Kubernetes
# VERSION (v1.37.2), so that the binary's --version and a server's /version
# report it, as they do for the release's own binaries.
k8s_ldflags() {
  local version="$1" v="${1#v}" flags="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=${v%%.*}"
    flags+=" -X ${pkg}.gitMinor=$(cut -d. -f2 <<<"${v}") -X ${pkg}.gitTreeState=clean"
  done
  echo "${flags# }"
}
