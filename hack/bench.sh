#!/usr/bin/env bash
# Runs cosched's scheduler_perf benchmark (test/performance) once and turns
# the run into a report: results.md (tables) and throughput.svg (plot).
#
#   hack/bench.sh [-filter LABELS] [-bench REGEXP] [-out DIR] [-timeout DURATION]
#                 [-pods-timeout DURATION] [-await-timeout DURATION] [-runs N] [-profile]
#
#   -filter   workload labels, as scheduler_perf's -perf-scheduling-label-filter
#             (performance, smoke, full, or e.g. "performance,-full"); default performance
#   -bench    go test -bench regexp; default BenchmarkPerfScheduling (all test cases)
#   -out      results folder, emptied first: one folder holds one run; default _output/bench
#   -timeout  go test -timeout for the whole run; default 3h
#   -pods-timeout / -await-timeout: how long a workload may wait for its pods to
#             be bound / its groups to complete before it fails; default 10m
#   -runs     run the benchmark N times, into DIR/run1..runN, and judge each target
#             on the median of the runs (DIR/summary.md); default 1
#   -profile  write CPU and allocation profiles of each workload's measured phase
#             into <run folder>/profiles (go tool pprof)
#
# It prints the target table: of the run, or over the runs with -runs.
#
# BENCH_COMMIT, when set, is recorded as the commit measured (default: git HEAD).
#
# Any failed workload (a group never bound, a deadlock, a partially bound
# group) fails the script after printing the failure. The etcd the harness
# starts for each workload must be on PATH: make etcd (hack/build-etcd.sh)
# builds it into _output/bin, which this script puts on PATH.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"

filter=performance
bench=BenchmarkPerfScheduling
out="${REPO_ROOT}/_output/bench"
timeout=3h
pods_timeout=10m
await_timeout=10m
runs=1
profile=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -filter) filter="$2"; shift 2 ;;
    -bench) bench="$2"; shift 2 ;;
    -out) out="$2"; shift 2 ;;
    -timeout) timeout="$2"; shift 2 ;;
    -pods-timeout) pods_timeout="$2"; shift 2 ;;
    -await-timeout) await_timeout="$2"; shift 2 ;;
    -runs) runs="$2"; shift 2 ;;
    -profile) profile=1; shift ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "${out}" in
  /*) ;;
  *) out="${REPO_ROOT}/${out}" ;;
esac

export PATH="${REPO_ROOT}/_output/bin:${PATH}"
command -v etcd >/dev/null || { echo "bench: etcd not on PATH; run make etcd (hack/build-etcd.sh)" >&2; exit 1; }
# The harness starts its own etcd per workload; this keeps it from reusing
# one that happens to listen on the default port.
export KUBE_INTEGRATION_ETCD_URL="${KUBE_INTEGRATION_ETCD_URL:-http://127.0.0.1:23791}"
# Off in production; its deep comparisons would skew the numbers.
export KUBE_CACHE_MUTATION_DETECTOR=false

# run_once runs the benchmark once into the folder $1 and reports on it.
run_once() {
  local dir="$1" log status ran failed
  local profile_args=()
  mkdir -p "${dir}/logs"
  # Per-workload logs go to ${dir}/logs and are kept only for failed workloads.
  export ARTIFACTS="${dir}/logs"

  machine() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    local commit="${BENCH_COMMIT:-}"
    if [[ -z "${commit}" ]] && git rev-parse --git-dir >/dev/null 2>&1; then
      commit="$(git rev-parse --short HEAD)"
      git diff --quiet HEAD -- pkg cmd go.mod go.sum || commit="${commit} with uncommitted changes in pkg, cmd or go.mod"
    fi
    echo "commit: ${commit:-unknown}"
    echo "go: $(go env GOVERSION)"
    echo "cpu: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "memory: $(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "label filter: ${filter}"
    echo "load average at start (1/5/15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
  }
  machine > "${dir}/machine.txt"

  log="${dir}/bench.log"
  if [[ ${profile} -eq 1 ]]; then
    profile_args=(-cosched-profile-dir="${dir}/profiles")
  fi
  echo "bench: running ${bench} with label filter '${filter}'; log in ${log}"
  status=0
  go test -trimpath -count=1 -timeout "${timeout}" -run '^$' -bench "${bench}" -benchtime 1x ./test/performance \
    -args -perf-scheduling-label-filter="${filter}" -data-items-dir="${dir}" \
    -cosched-pods-timeout="${pods_timeout}" -cosched-await-timeout="${await_timeout}" \
    ${profile_args[@]+"${profile_args[@]}"} >"${log}" 2>&1 || status=$?
  echo "load average at end (1/5/15 min): $(cut -d' ' -f1-3 /proc/loadavg)" >> "${dir}/machine.txt"

  # Summaries: which workloads ran, and the failures in full.
  ran=$(grep -E '^BenchmarkPerfScheduling/[^[:space:]]+[[:space:]]+1[[:space:]]' "${log}" | awk '{print $1}' || true)
  echo "bench: workloads run: $(echo "${ran}" | grep -c . || true)"
  echo "${ran}" | sed 's/^/  /'
  grep -E '^(--- FAIL|(ok|FAIL)[[:space:]])' "${log}" || true
  failed=0
  if [[ ${status} -ne 0 ]] || grep -q -- '--- FAIL' "${log}"; then
    failed=1
    echo "bench: FAILED (go test exit status ${status}); the failing workloads' output:" >&2
    grep -E -A 12 -- '--- FAIL|FATAL ERROR|deadlock|partially bound|never bound|panic:' "${log}" | grep -v 'full log output' | head -150 >&2 || true
    echo "bench: per-workload logs of failed workloads: ${dir}/logs; full output: ${log}" >&2
  fi
  if [[ -z "${ran}" ]]; then
    echo "bench: FAILED: no workload ran (label filter '${filter}', bench '${bench}')" >&2
    return 1
  fi

  # The report covers what ran, failed workloads included (listed as incomplete).
  if ls "${dir}"/BenchmarkPerfScheduling*_benchmark_cosched_*.json >/dev/null 2>&1; then
    go run -trimpath ./test/performance/report -in "${dir}" -targets
    echo "bench: report in ${dir}/results.md and ${dir}/throughput.svg"
  fi
  return "${failed}"
}

rm -rf "${out}"
if [[ ${runs} -le 1 ]]; then
  run_once "${out}"
  exit $?
fi
failed=0
dirs=()
for i in $(seq 1 "${runs}"); do
  echo "bench: run ${i} of ${runs}"
  run_once "${out}/run${i}" || failed=1
  dirs+=("${out}/run${i}")
done
echo "bench: targets over ${runs} runs (${out}/summary.md):"
(IFS=,; go run -trimpath ./test/performance/report -in "${dirs[*]}" -out "${out}")
exit "${failed}"
