#!/usr/bin/env bash
# Generates manifests/crds/scheduling.x-k8s.io_podgroups.yaml, the PodGroup
# CRD (scheduling.x-k8s.io/v1alpha1), with controller-gen from the Go types in
# sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1 at the version the
# main module's go.mod requires. cosched imports those API types only, so the
# CRD is generated from exactly the types the scheduler compiles against.
#
# How: the API packages are copied from the module cache into a throw-away Go
# module (named sigs.k8s.io/scheduler-plugins, requiring only k8s.io/api and
# k8s.io/apimachinery at the main module's versions) so controller-gen can
# load them without touching the main module's go.mod/go.sum and without the
# rest of scheduler-plugins' dependency graph. That package also defines
# ElasticQuota; only the PodGroup CRD file is kept.
#
# Validation added on top of upstream (deterministic, applied to the temporary
# copy of types.go before generation, as a kubebuilder marker so that
# controller-gen itself emits the schema):
#   spec: required
# That is all. The CRD must never be stricter than scheduler-plugins' own CRD
# for a value a real client sends (docs/clients.md has the audit of KubeRay,
# training-operator, Trainer, MPI Operator and Spark Operator):
#   - every client encodes the spec (Go's encoding/json always writes a struct
#     field, and Trainer's apply configuration always sets it), so requiring
#     it refuses only hand-written objects that lost their spec;
#   - minMember keeps upstream's "minimum 1" and nothing else: clients send 0
#     (omitted on the wire) for "schedulingPolicy.minAvailable: 0", and sums
#     of replica counts with no upper bound;
#   - scheduleTimeoutSeconds stays unbounded like upstream: MPI Operator sends
#     0 ("the scheduler's default") and the Kubeflow operators pass any int32
#     their users write. cosched reads 0 or less as permitWaitingTimeSeconds
#     and caps the wait at 15 minutes (pkg/podgroup).
# The marker is inserted directly above the field declaration; the script
# fails if the declaration is not found exactly once, so an upstream type
# change cannot silently drop it. Status fields are untouched and stay
# wire-compatible with scheduler-plugins.
#
# Usage: hack/update-crds.sh [OUTPUT_DIR]
#   OUTPUT_DIR defaults to manifests/crds (hack/verify-crds.sh passes a
#   temporary directory).
set -euo pipefail

CONTROLLER_TOOLS_VERSION="v0.23.0"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
OUT_DIR="${1:-${REPO_ROOT}/manifests/crds}"
BIN_DIR="${REPO_ROOT}/_output/bin"
CONTROLLER_GEN="${BIN_DIR}/controller-gen"
CRD_FILE="scheduling.x-k8s.io_podgroups.yaml"
API_PKG="apis/scheduling/v1alpha1"

die() {
  echo "update-crds: ERROR: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || die "'go' not found in PATH"
export GOWORK=off

# --- controller-gen (built once into _output/bin, pinned version) -----------
cg_version() {
  [[ -x "${CONTROLLER_GEN}" ]] || return 0
  "${CONTROLLER_GEN}" --version 2>/dev/null | awk '{print $2; exit}' || true
}
if [[ "$(cg_version)" != "${CONTROLLER_TOOLS_VERSION}" ]]; then
  echo "update-crds: installing controller-gen ${CONTROLLER_TOOLS_VERSION} into ${BIN_DIR}"
  mkdir -p "${BIN_DIR}"
  # Run outside any module so the main go.mod is never consulted or modified.
  (cd / && GOBIN="${BIN_DIR}" go install -trimpath \
    "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_TOOLS_VERSION}") \
    || die "could not build controller-gen ${CONTROLLER_TOOLS_VERSION}"
  [[ "$(cg_version)" == "${CONTROLLER_TOOLS_VERSION}" ]] \
    || die "${CONTROLLER_GEN} does not report version ${CONTROLLER_TOOLS_VERSION}"
fi

# --- locate the API types via the main module --------------------------------
mod_version() { # prints the effective version of a module in the main module's build list
  (cd "${REPO_ROOT}" && go list -m -f '{{with .Replace}}{{.Version}}{{else}}{{.Version}}{{end}}' "$1") \
    || die "go list -m $1 failed in ${REPO_ROOT}"
}
SP_VERSION="$(mod_version sigs.k8s.io/scheduler-plugins)"
API_VERSION="$(mod_version k8s.io/api)"
APIMACHINERY_VERSION="$(mod_version k8s.io/apimachinery)"
for v in SP_VERSION API_VERSION APIMACHINERY_VERSION; do
  [[ "${!v}" == v* ]] || die "could not determine ${v} from ${REPO_ROOT}/go.mod (got '${!v}')"
done

SP_DIR="$(cd "${REPO_ROOT}" && go list -m -f '{{.Dir}}' sigs.k8s.io/scheduler-plugins)"
if [[ -z "${SP_DIR}" || ! -d "${SP_DIR}/${API_PKG}" ]]; then
  # Not in the module cache yet: download it without involving the main module.
  SP_DIR="$(cd / && go mod download -json "sigs.k8s.io/scheduler-plugins@${SP_VERSION}" \
    | awk -F'"' '/"Dir":/ {print $4; exit}')"
fi
[[ -n "${SP_DIR}" && -d "${SP_DIR}/${API_PKG}" ]] \
  || die "sigs.k8s.io/scheduler-plugins@${SP_VERSION}/${API_PKG} not found in the module cache"
echo "update-crds: generating from sigs.k8s.io/scheduler-plugins@${SP_VERSION} (k8s.io/api ${API_VERSION}) with controller-gen ${CONTROLLER_TOOLS_VERSION}"

# --- throw-away module -------------------------------------------------------
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/apis/scheduling/v1alpha1" "${work}/out"
# GroupName package imported by the types, then the v1alpha1 sources (the
# generated deepcopy code is not needed to build the schema).
cp "${SP_DIR}"/apis/scheduling/*.go "${work}/apis/scheduling/"
for f in doc.go groupversion_info.go types.go; do
  cp "${SP_DIR}/${API_PKG}/${f}" "${work}/${API_PKG}/${f}"
done
chmod -R u+w "${work}"
cat >"${work}/go.mod" <<EOM
module sigs.k8s.io/scheduler-plugins

go 1.26.0

require (
	k8s.io/api ${API_VERSION}
	k8s.io/apimachinery ${APIMACHINERY_VERSION}
)
EOM
# Seed go.sum from the main module so the checksums it already vouches for are
# reused; tidy adds whatever else k8s.io/api needs.
cp "${REPO_ROOT}/go.sum" "${work}/go.sum"
(cd "${work}" && GOFLAGS=-mod=mod go mod tidy) || die "go mod tidy of the temporary API module failed"

# --- extra validation markers (see header) -----------------------------------
# add_markers FIELD_REGEX MARKER...: inserts the marker lines above the single
# line of types.go matching FIELD_REGEX (an awk ERE).
add_markers() {
  local field="$1"
  shift
  local types="${work}/${API_PKG}/types.go"
  local n
  n="$(grep -cE "${field}" "${types}" || true)"
  [[ "${n}" == "1" ]] || die "expected exactly one line matching /${field}/ in ${API_PKG}/types.go, found ${n}; the upstream type changed, revisit the added validation"
  local markers
  markers="$(printf '%s\n' "$@")"
  awk -v re="${field}" -v m="${markers}" '
    $0 ~ re { match($0, /^[ \t]*/); ind = substr($0, 1, RLENGTH)
              n = split(m, a, "\n"); for (i = 1; i <= n; i++) print ind "// " a[i] }
    { print }' "${types}" >"${types}.new"
  mv "${types}.new" "${types}"
}
add_markers '^[[:space:]]*Spec[[:space:]]+PodGroupSpec[[:space:]]' \
  '+kubebuilder:validation:Required'

# --- generate ------------------------------------------------------------------
(cd "${work}" && "${CONTROLLER_GEN}" crd "paths=./${API_PKG}" "output:crd:dir=${work}/out") \
  || die "controller-gen failed"
[[ -s "${work}/out/${CRD_FILE}" ]] || die "controller-gen did not produce ${CRD_FILE}"

mkdir -p "${OUT_DIR}"
{
  echo "# Code generated by hack/update-crds.sh from sigs.k8s.io/scheduler-plugins@${SP_VERSION}"
  echo "# (${API_PKG}) with controller-gen ${CONTROLLER_TOOLS_VERSION}. DO NOT EDIT."
  cat "${work}/out/${CRD_FILE}"
} >"${work}/${CRD_FILE}"
chmod 0644 "${work}/${CRD_FILE}"
mv -f "${work}/${CRD_FILE}" "${OUT_DIR}/${CRD_FILE}"
echo "update-crds: wrote ${OUT_DIR}/${CRD_FILE}"
# The Helm chart installs the same file (charts/cosched/templates/crd.yaml;
# test/chart fails when the copy differs).
if [[ $# -eq 0 ]]; then
  cp -f "${OUT_DIR}/${CRD_FILE}" "${REPO_ROOT}/charts/cosched/files/${CRD_FILE}"
  echo "update-crds: wrote charts/cosched/files/${CRD_FILE}"
fi
