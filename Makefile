# cosched: gang scheduling for Kubernetes as a kube-scheduler build.
#
# Every go command uses -trimpath so that the scheduler, the tools it needs
# (etcd, kube-apiserver, ...) and the tests share one build cache.

SHELL := /usr/bin/env bash
GO ?= go
GOBUILD := $(GO) build -trimpath
GOTEST := $(GO) test -trimpath

# Tools that hack/ builds land here; tests find etcd on PATH.
export PATH := $(CURDIR)/_output/bin:$(PATH)
# The integration framework reuses any etcd already listening on this URL
# and starts its own otherwise; a port nothing else uses keeps it from
# borrowing a stray etcd on the default 2379.
export KUBE_INTEGRATION_ETCD_URL ?= http://127.0.0.1:23790

.PHONY: test-kind test-kind-core all build test test-unit test-integration test-e2e test-operators test-compat test-compat-oldest verify helm etcd clean compare demo local-up local-down local-tools bench bench-qps bench-smoke soak soak-invariants

all: build

## build: compile the scheduler into bin/cosched and the kubectl plugin into bin/kubectl-cosched
build:
	$(GOBUILD) -o bin/cosched ./cmd/cosched
	$(GOBUILD) -o bin/kubectl-cosched ./cmd/kubectl-cosched

## demo: local control plane (no Docker, no cluster) + cosched + the showcase; leaves the cluster up
demo: build
	hack/demo.sh

## test: what CI runs: static checks, unit tests, integration tests against a real API server, e2e against a local control plane, the kind cluster
test: verify test-unit test-integration test-e2e test-operators test-compat-oldest test-kind bench-smoke

## test-unit: fast, table-driven tests of every package, and the static checks of manifests/ and the Dockerfile
test-unit:
	$(GOTEST) -count=1 ./pkg/... ./cmd/... ./hack/qps/... ./hack/layers/... ./test/manifests/... ./test/testutil/...

## test-integration: the scheduler against an in-process kube-apiserver and a real etcd
# make test replays one seed of the randomized invariant test (TestGangInvariants) as a
# regression check, so CI never depends on the luck of the draw; make soak-invariants
# draws a new one each run. Override with STRESS_SEED=<seed>.
CI_STRESS_SEED ?= 772712673
test-integration: etcd build
	COSCHED_BIN=$(CURDIR)/bin/cosched COSCHED_STRESS_SEED=$(or $(STRESS_SEED),$(CI_STRESS_SEED)) \
		$(GOTEST) -count=1 -timeout 30m ./test/integration/...

## verify: formatting, vet, pkg/gang's files referencing each other one way (hack/layers), generated CRD and ConfigMap up to date, helm lint/template of charts/cosched and its drift test against manifests/
verify:
	@unformatted=$$(gofmt -l cmd pkg test hack); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet -trimpath ./...
	$(GO) run -trimpath ./hack/layers
	hack/verify-crds.sh
	hack/verify-manifests.sh
	hack/verify-chart.sh

## helm: build helm into _output/bin/helm from hack/tools/helm (skipped when present)
helm:
	hack/build-helm.sh

## etcd: build the etcd server the tests use (skipped when present)
etcd:
	hack/build-etcd.sh

clean:
	rm -rf bin _output

## compare: pod-atomic vs member-by-member placement on the same workloads, against a real API server
COMPARE_SCALE ?= 2
compare: etcd
	@mkdir -p _output
	COSCHED_COMPARE_SCALE=$(COMPARE_SCALE) COSCHED_COMPARE_OUT=$(CURDIR)/_output/compare.md \
		$(GOTEST) -count=1 -timeout 30m -run 'TestCompareStrategies$$' ./test/integration/ > _output/compare.log 2>&1 \
		|| { tail -50 _output/compare.log; exit 1; }
	@cat _output/compare.md

## test-e2e: bring up the local control plane, run test/e2e against it, tear it down
test-e2e: build helm
	hack/test-e2e.sh

## test-operators: real KubeRay and Kubeflow training-operator (built once into _output/bin) against cosched on the local control plane
test-operators: build
	hack/test-operators.sh

## test-compat: the compatibility matrix: test/compat (bin/cosched against an in-process API server that emulates older
## releases), then test/e2e's gang essentials on a local control plane of each release in COMPAT_VERSIONS (hack/test-compat.sh,
## servers built once by hack/build-kube.sh into _output/kube-<version>); table in _output/compat/summary.md
COMPAT_VERSIONS ?= 1.34.4 1.35.4 1.36.3
test-compat: etcd build helm
	COSCHED_BIN=$(CURDIR)/bin/cosched $(GOTEST) -count=1 -timeout 15m ./test/compat/...
	hack/test-compat.sh $(COMPAT_VERSIONS)

## test-compat-oldest: test-compat against the oldest supported release only (part of make test)
test-compat-oldest:
	$(MAKE) test-compat COMPAT_VERSIONS=1.34.4

## test-kind: cosched installed by its chart on a kind cluster of real kubelets built here without a registry, with the real operators as pods and the fault tests (hack/kind-e2e.sh; needs a Docker engine and root; part of make test)
test-kind: helm
	hack/kind-e2e.sh

## test-kind-core: a quick part of test-kind: chart install, gangs of real pods bound whole, a gang that cannot fit, App + LogCollector, the leader deleted during Permit (no operators)
KIND_CORE_TESTS := TestGangOfRealPodsBindsWhole|TestGangThatDoesNotFitHoldsNothing|TestAppAndLogCollectorShareANode|TestLeaderDeletedWhileGangWaits
test-kind-core: helm
	KIND_OPERATORS=0 hack/kind-e2e.sh -run '^($(KIND_CORE_TESTS))$$'

## soak: long load test of cosched on the local control plane (waves of gangs, memory, goroutines); report in _output/soak.md
SOAK_WAVES ?= 10
SOAK_GANGS ?= 60
SOAK_MAX_MEMBERS ?= 32
# Idle after the waves until client-go's event cache (6-12 min) has emptied,
# then check the live heap against the baseline; SOAK_IDLE=0 skips it.
SOAK_IDLE ?= 780
soak: build
	@mkdir -p _output
	set -o pipefail; COSCHED_SOAK_WAVES=$(SOAK_WAVES) COSCHED_SOAK_GANGS=$(SOAK_GANGS) COSCHED_SOAK_MAX_MEMBERS=$(SOAK_MAX_MEMBERS) \
		COSCHED_SOAK_IDLE_SECONDS=$(SOAK_IDLE) COSCHED_SOAK_OUT=$(CURDIR)/_output/soak.md E2E_TIMEOUT=60m \
		hack/test-e2e.sh -run '^TestSoak$$' -v 2>&1 | tee _output/soak.log
	@cat _output/soak.md
	$(MAKE) soak-invariants

## soak-invariants: a long run of the randomized invariant test (TestGangInvariants, in-process API server);
## log in _output/soak-invariants.log; STRESS_SEED=<seed> replays a run (the seed is printed first)
STRESS_OPS ?= 5000
soak-invariants: etcd
	@mkdir -p _output
	set -o pipefail; COSCHED_STRESS_OPS=$(STRESS_OPS) $(if $(STRESS_SEED),COSCHED_STRESS_SEED=$(STRESS_SEED)) \
		$(GOTEST) -count=1 -timeout 150m -run '^TestGangInvariants$$' -v ./test/integration/ 2>&1 | tee _output/soak-invariants.log

## local-up: local control plane (etcd, kube-apiserver, kube-controller-manager, KWOK nodes) + cosched; knobs in hack/local-up.sh
local-up: build
	hack/local-up.sh

## local-down: stop it; KEEP_STATE=1 keeps _output/local
local-down:
	hack/local-down.sh

## local-tools: build etcd, kube-apiserver, kube-controller-manager, kubectl, kube-scheduler, kwok without starting anything
local-tools:
	BUILD_ONLY=1 hack/local-up.sh

## bench: scheduler_perf at the performance sizes; table and plot in _output/bench (docs/performance.md)
## BENCH_RUNS=3 runs it three times and judges each target on the median (_output/bench/summary.md)
BENCH_FILTER ?= performance
BENCH_RUNS ?= 1
bench: etcd
	hack/bench.sh -filter '$(BENCH_FILTER)' -runs $(BENCH_RUNS) -out _output/bench

## bench-qps: client QPS on the local control plane (500 fake nodes): cosched's gangs and plain pods
## against a stock kube-scheduler at each QPS/burst setting (QPS_SETTINGS, docs/performance.md); table in _output/bench-qps
bench-qps: build
	hack/bench-qps.sh

## bench-smoke: every benchmark case at 10-20 nodes, and bench-qps with 5 gangs on 6 nodes (also with the nominations off), so CI proves the benchmarks still run
bench-smoke: etcd
	$(GOTEST) -count=1 ./test/performance/report/
	hack/bench.sh -filter smoke -out _output/bench-smoke -timeout 20m -pods-timeout 2m -await-timeout 2m
	WITHOUT_NOMINATIONS=1 QPS_SETTINGS=100:200 GANGS=5 NODES=6 OUT=$(CURDIR)/_output/bench-qps-smoke hack/bench-qps.sh
