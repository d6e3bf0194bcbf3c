package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/pkg/scheduler"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/test/integration/framework"
	testutils "k8s.io/kubernetes/test/integration/util"
	"k8s.io/kubernetes/test/utils/ktesting"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/gang"
	"github.com/cosched/cosched/pkg/preemption"
	"github.com/cosched/cosched/test/testutil"
)

// cluster is one API server shared by the subtests of a test function;
// every subtest gets its own namespace, nodes and scheduler.
type cluster struct {
	tc *testutils.TestContext
	cs kubernetes.Interface
	pg versioned.Interface
}

// startCluster starts the full kube-apiserver chain (with the extensions
// server, which serves CRDs) on the shared test etcd, installs the PodGroup
// CRD and the priority classes the tests use.
func startCluster(t *testing.T, extraFlags ...string) *cluster {
	t.Helper()
	server := kubeapiservertesting.StartTestServerOrDie(t, nil, append([]string{
		// No controller manager runs here: no default service account ever
		// appears, and nothing would lift the not-ready taint that
		// TaintNodesByCondition puts on new nodes.
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--authorization-mode=RBAC",
	}, extraFlags...), framework.SharedEtcd())
	t.Cleanup(server.TearDownFn)
	cfg := rest.CopyConfig(server.ClientConfig)
	cfg.QPS, cfg.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tCtx := ktesting.Init(t)
	tc := &testutils.TestContext{Ctx: tCtx, ClientSet: cs, KubeConfig: cfg, CloseFn: func() {}}
	if err := testutil.InstallCRD(tCtx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CreatePriorityClasses(tCtx, cs); err != nil {
		t.Fatal(err)
	}
	jsonCfg := rest.CopyConfig(cfg)
	jsonCfg.ContentType = "application/json"
	pg, err := versioned.NewForConfig(jsonCfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{tc: tc, cs: tc.ClientSet, pg: pg}
}

// scenario is one subtest's world: a namespace, its nodes and a running
// cosched scheduler built from the shipped config.
type scenario struct {
	*cluster
	t     *testing.T
	ctx   context.Context
	ns    string
	nodes []string
	stop  func()
}

// newScenario creates nodes, then starts the scheduler with the shipped
// profiles; mutate adjusts the CoschedGang args (shorter timeouts in tests).
func (c *cluster) newScenario(t *testing.T, nodes []*v1.Node, mutate func(*config.CoschedGangArgs)) *scenario {
	t.Helper()
	s := &scenario{cluster: c, t: t, ctx: c.tc.Ctx}
	ns := testutils.WithNewNamespace(t, c.tc, "gang")
	s.ns = ns.NS.Name
	for _, n := range nodes {
		if _, err := c.cs.CoreV1().Nodes().Create(s.ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating node %s: %v", n.Name, err)
		}
		s.nodes = append(s.nodes, n.Name)
	}
	t.Cleanup(s.cleanup)
	s.startScheduler(mutate)
	return s
}

func (s *scenario) startScheduler(mutate func(*config.CoschedGangArgs)) {
	t := s.t
	cfg, err := testutil.LoadSchedulerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.SetGangArgs(cfg, func(a *config.CoschedGangArgs) {
		a.PodGroupBackoffSeconds = ptr.To[int64](1)
		if mutate != nil {
			mutate(a)
		}
	}); err != nil {
		t.Fatal(err)
	}
	schedCtx := &testutils.TestContext{ClientSet: s.cs, KubeConfig: s.tc.KubeConfig, Ctx: s.tc.Ctx, NS: s.tc.NS, CloseFn: func() {}}
	testutils.InitTestSchedulerWithOptions(t, schedCtx, 0,
		scheduler.WithProfiles(cfg.Profiles...),
		scheduler.WithFrameworkOutOfTreeRegistry(registry()),
		scheduler.WithPodInitialBackoffSeconds(1),
		scheduler.WithPodMaxBackoffSeconds(2),
	)
	testutils.SyncSchedulerInformerFactory(schedCtx)
	done := make(chan struct{})
	go func() {
		schedCtx.Scheduler.Run(schedCtx.SchedulerCtx)
		close(done)
	}()
	s.stop = func() {
		schedCtx.SchedulerCloseFn()
		<-done
	}
}

// restartScheduler stops the scheduler and starts a fresh one, as a crash
// and restart would.
func (s *scenario) restartScheduler(mutate func(*config.CoschedGangArgs)) {
	s.stop()
	s.startScheduler(mutate)
}

func (s *scenario) cleanup() {
	if s.stop != nil {
		s.stop()
	}
	ctx := context.Background()
	_ = s.cs.CoreV1().Pods(s.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
	for _, n := range s.nodes {
		_ = s.cs.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{})
	}
	// The next scenario's scheduler must not see this one's nodes.
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := s.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == 0, nil
	})
}

// addNodes creates nodes after the scenario started; cleanup deletes them.
func (s *scenario) addNodes(nodes ...*v1.Node) {
	s.t.Helper()
	for _, n := range nodes {
		if _, err := s.cs.CoreV1().Nodes().Create(s.ctx, n, metav1.CreateOptions{}); err != nil {
			s.t.Fatalf("creating node %s: %v", n.Name, err)
		}
		s.nodes = append(s.nodes, n.Name)
	}
}

func (s *scenario) createGroup(pg *schedv1alpha1.PodGroup) *schedv1alpha1.PodGroup {
	s.t.Helper()
	pg.Namespace = s.ns
	got, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Create(s.ctx, pg, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("creating PodGroup %s: %v", pg.Name, err)
	}
	return got
}

func (s *scenario) createPods(pods ...*v1.Pod) []string {
	s.t.Helper()
	for _, p := range pods {
		p.Namespace = s.ns
	}
	if err := testutil.CreatePods(s.ctx, s.cs, pods...); err != nil {
		s.t.Fatal(err)
	}
	return testutil.Names(pods)
}

func (s *scenario) members(group string, n int, cpu, memory string) []*v1.Pod {
	return testutil.Members(s.ns, group, n, cpu, memory)
}

func (s *scenario) expectAllBound(names []string, timeout time.Duration) map[string]string {
	s.t.Helper()
	nodes, err := testutil.WaitAllBound(s.ctx, s.cs, s.ns, names, timeout)
	if err != nil {
		s.t.Fatalf("%v\nevents in %s:\n%s", err, s.ns, testutil.NamespaceEvents(s.ctx, s.cs, s.ns))
	}
	return nodes
}

func (s *scenario) expectNoneBound(names []string, during time.Duration) {
	s.t.Helper()
	if err := testutil.ExpectNoneBound(s.ctx, s.cs, s.ns, names, during); err != nil {
		s.t.Fatal(err)
	}
}

// expectNeverPartial watches a group for the whole duration and fails if
// some but not all of its members stay bound. Members allowed together bind
// one API call after another, so a partial state shorter than settle is the
// binding itself, not a partially placed group.
func (s *scenario) expectNeverPartial(names []string, during time.Duration) {
	s.t.Helper()
	const settle = 2 * time.Second
	deadline := time.Now().Add(during)
	var partialSince time.Time
	for time.Now().Before(deadline) || !partialSince.IsZero() {
		nodes, err := testutil.BoundNodes(s.ctx, s.cs, s.ns, names)
		if err != nil {
			s.t.Fatal(err)
		}
		switch n := testutil.CountBound(nodes); {
		case n == 0 || n == len(names):
			partialSince = time.Time{}
		case partialSince.IsZero():
			partialSince = time.Now()
		case time.Since(partialSince) > settle:
			s.t.Fatalf("group partially bound for over %s: %s", settle, testutil.Describe(nodes))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectEvent waits for an event on the PodGroup whose "Reason: note"
// contains want.
func (s *scenario) expectEvent(group, want string, timeout time.Duration) {
	s.t.Helper()
	s.expectEventOn("PodGroup", group, want, timeout)
}

// expectPodEvent waits for an event on a pod whose "Reason: note" contains
// want.
func (s *scenario) expectPodEvent(pod, want string) {
	s.t.Helper()
	s.expectEventOn("Pod", pod, want, bindTimeout)
}

// expectEventOn waits for an event on the named object of kind whose
// "Reason: note" contains want.
func (s *scenario) expectEventOn(kind, name, want string, timeout time.Duration) {
	s.t.Helper()
	var seen []string
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		evs, err := testutil.EventsFor(ctx, s.cs, s.ns, kind, name)
		if err != nil {
			return false, nil
		}
		seen = evs
		for _, e := range evs {
			if strings.Contains(e, want) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("no event on %s %s containing %q within %s; saw %q\nevents in %s:\n%s", kind, name, want, timeout, seen, s.ns, testutil.NamespaceEvents(s.ctx, s.cs, s.ns))
	}
}

// expectPodGroup waits until check accepts the PodGroup.
func (s *scenario) expectPodGroup(name string, timeout time.Duration, check func(*schedv1alpha1.PodGroup) error) *schedv1alpha1.PodGroup {
	s.t.Helper()
	var got *schedv1alpha1.PodGroup
	var lastErr error
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pg, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			lastErr = err
			return false, nil
		}
		got = pg
		lastErr = check(pg)
		return lastErr == nil, nil
	})
	if err != nil {
		s.t.Fatalf("PodGroup %s never got the expected state within %s: %v (status %+v, annotations %v)", name, timeout, lastErr, statusOf(got), annotationsOf(got))
	}
	return got
}

func statusOf(pg *schedv1alpha1.PodGroup) any {
	if pg == nil {
		return nil
	}
	return pg.Status
}

func annotationsOf(pg *schedv1alpha1.PodGroup) map[string]string {
	if pg == nil {
		return nil
	}
	return pg.Annotations
}

// setPodPhase plays the kubelet: integration tests run no kubelet, so a bound
// pod only becomes Running (or Succeeded) when the test says so.
func (s *scenario) setPodPhase(name string, phase v1.PodPhase) {
	s.t.Helper()
	pod, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	pod.Status.Phase = phase
	if _, err := s.cs.CoreV1().Pods(s.ns).UpdateStatus(s.ctx, pod, metav1.UpdateOptions{}); err != nil {
		s.t.Fatalf("setting %s to %s: %v", name, phase, err)
	}
}

func nodes(prefix string, n int, cpu, memory string) []*v1.Node {
	out := make([]*v1.Node, n)
	for i := range out {
		out[i] = testutil.Node(fmt.Sprintf("%s-%d", prefix, i), cpu, memory, nil)
	}
	return out
}

// registry is cosched's out-of-tree plugins as cmd/cosched registers them,
// for one scheduler.
func registry() frameworkruntime.Registry {
	plugins := gang.NewPlugins()
	return frameworkruntime.Registry{
		gang.Name:          plugins.NewGang,
		gang.QueueSortName: plugins.NewQueueSort,
		preemption.Name:    preemption.NewSharing(plugins.PodGroupLister),
	}
}
