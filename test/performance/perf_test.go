// Package performance measures cosched with Kubernetes' own scheduler
// benchmark harness, scheduler_perf: the test cases in
// performance-config.yaml run cosched's CoschedGang plugin next to the stock
// scheduler and upstream's in-tree gang scheduling, workload by workload in
// one run, so that their numbers compare as ratios.
//
// Run it through the Makefile (make bench, make bench-smoke) or by hand from
// this folder (paths in the config are relative to it):
//
//	PATH=$PWD/../../_output/bin:$PATH go test -trimpath -run '^$' \
//	  -bench BenchmarkPerfScheduling -benchtime 1x -timeout 3h \
//	  -perf-scheduling-label-filter performance -data-items-dir /tmp/bench
//
// Besides the harness's own results (BenchmarkPerfScheduling_benchmark_cosched_*.json)
// every workload writes cosched_*.json to -data-items-dir: its time until all
// pods are bound, group outcomes and cosched's counters (hooks_test.go).
// test/performance/report (run by hack/bench.sh) turns both into a table and a plot.
package performance

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	_ "k8s.io/component-base/logs/json/register"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	perf "k8s.io/kubernetes/test/integration/scheduler_perf"

	"github.com/cosched/cosched/pkg/gang"
	"github.com/cosched/cosched/pkg/preemption"
	"github.com/cosched/cosched/test/testutil"
)

// Flags of this benchmark; scheduler_perf's own flags (label filter,
// -data-items-dir, profiles) work as documented in its README.
var (
	podsTimeout = flag.Duration("cosched-pods-timeout", 10*time.Minute,
		"how long a createPods op may wait for its pods to be bound before the workload fails (the harness default is 10m)")
	awaitTimeout = flag.Duration("cosched-await-timeout", 10*time.Minute,
		"how long the await marker waits for every group to complete before the workload fails as deadlocked")
)

// configFile is relative to this folder, which go test makes the working
// directory; so are the template and scheduler config paths inside it.
const configFile = "performance-config.yaml"

func TestMain(m *testing.M) {
	if err := testutil.LocateAPIServerFixtures(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := perf.InitTests(); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	// Per-plugin execution time is collected only for plugins named here.
	perf.PluginNames = append(perf.PluginNames, gang.Name)
	os.Exit(m.Run())
}

// BenchmarkPerfScheduling runs every workload of performance-config.yaml that
// the label filter selects, each against a fresh etcd, API server and
// scheduler.
func BenchmarkPerfScheduling(b *testing.B) {
	h := &hooks{}
	perf.RunBenchmarkPerfScheduling(b, configFile, "cosched", registry(),
		perf.WithPrepareFn(h.prepare),
		perf.WithNodeUpdateFn(h.nodesCreated),
		perf.WithPodsSchedulingTimeout(*podsTimeout),
	)
}

// registry is cosched's out-of-tree plugins, as cmd/cosched registers them.
// The harness starts the scheduler before any op runs, and the plugins
// fail to start unless PodGroups can be listed, so the first factory called
// installs the PodGroup CRD. Test cases whose config enables neither plugin
// never call them.
func registry() frameworkruntime.Registry {
	ctxs := &pluginContexts{byHandle: map[fwk.Handle]context.Context{}}
	withCRD := func(factory frameworkruntime.PluginFactory) frameworkruntime.PluginFactory {
		return func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
			cfg := rest.CopyConfig(h.KubeConfig())
			// The scheduler's client speaks protobuf; JSON is safe for any
			// API group.
			cfg.ContentType = runtime.ContentTypeJSON
			cfg.AcceptContentTypes = runtime.ContentTypeJSON
			if err := testutil.InstallCRD(ctx, cfg); err != nil {
				return nil, fmt.Errorf("installing the PodGroup CRD: %w", err)
			}
			return factory(ctxs.forHandle(ctx, h), obj, h)
		}
	}
	plugins := gang.NewPlugins()
	return frameworkruntime.Registry{
		gang.QueueSortName: withCRD(plugins.NewQueueSort),
		gang.Name:          withCRD(plugins.NewGang),
		preemption.Name:    withCRD(preemption.NewSharing(plugins.PodGroupLister)),
	}
}

// pluginContexts hands the plugins of one scheduler profile one comparable
// context derived from the scheduler's. The plugins key their per-scheduler
// state by the context they are built with, and the context scheduler_perf
// runs the scheduler with (a ktesting.TContext value) cannot be a map key:
// passing it on unchanged panics ("hash of unhashable type
// ktesting.TContext"). The derived context ends with the scheduler's.
type pluginContexts struct {
	mu       sync.Mutex
	byHandle map[fwk.Handle]context.Context
}

func (p *pluginContexts) forHandle(ctx context.Context, h fwk.Handle) context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.byHandle[h]; ok {
		return c
	}
	c, cancel := context.WithCancel(ctx)
	p.byHandle[h] = c
	context.AfterFunc(c, func() {
		cancel()
		p.mu.Lock()
		delete(p.byHandle, h)
		p.mu.Unlock()
	})
	return c
}
