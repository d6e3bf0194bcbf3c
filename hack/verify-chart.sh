#!/usr/bin/env bash
# Checks the Helm chart charts/cosched (part of make verify):
#   1. helm lint --strict,
#   2. helm template with the default values and with values that exercise
#      every switch (profiles, CRD, RBAC, namespace, metrics Service),
#   3. test/chart: with default values the chart renders exactly the objects of
#      manifests/ (so the two never drift), and every value renders a
#      configuration kube-scheduler and CoschedGang accept.
# helm comes from hack/build-helm.sh (built once from the Go module proxy; a
# no-op when _output/bin/helm already is the pinned version).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
CHART="${REPO_ROOT}/charts/cosched"
HELM="${REPO_ROOT}/_output/bin/helm"

QUIET=1 "${SCRIPT_DIR}/build-helm.sh"

"${HELM}" lint --strict "${CHART}"

template() { # ARGS...: helm template must succeed
  "${HELM}" template cosched "${CHART}" "$@" >/dev/null \
    || { echo "verify-chart: FAIL: helm template cosched charts/cosched $*" >&2; exit 1; }
}
template
template --set profiles.kuberay.enabled=false,profiles.memberByMember.enabled=false,crd.install=false
template --set replicas=1,leaderElection.enabled=false,metrics.service.enabled=true,metrics.port=10300
template --namespace sched --set namespace.name=,namespace.create=false,rbac.create=false,serviceAccount.create=false

cd "${REPO_ROOT}"
HELM="${HELM}" go test -trimpath -count=1 ./test/chart/
echo "verify-chart: OK"
