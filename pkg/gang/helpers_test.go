package gang

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	internalqueue "k8s.io/kubernetes/pkg/scheduler/backend/queue"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	plfeature "k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"
	schedinformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
)

const (
	testNS  = "ns"
	testPG  = "pg"
	testKey = testNS + "/" + testPG
	// outcomeTimeout bounds how long a test waits for a WaitOnPermit result
	// that should already be there; it is never reached in a passing run.
	outcomeTimeout = 5 * time.Second
)

// baseTime is the fake clock's start and the PodGroups' default creation time.
var baseTime = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

// recordingActivator is the framework's PodActivator in tests: it records
// which pods the plugin asked to move to the active queue.
type recordingActivator struct {
	mu    sync.Mutex
	calls [][]string
}

func (a *recordingActivator) Activate(_ klog.Logger, pods map[string]*v1.Pod) {
	keys := slices.Sorted(maps.Keys(pods))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, keys)
}

// take returns the recorded calls and forgets them.
func (a *recordingActivator) take() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	calls := a.calls
	a.calls = nil
	return calls
}

// testEnv is a framework with the plugin wired to in-memory informers, a fake
// clock, a recording activator and a fake event recorder.
type testEnv struct {
	t   testing.TB
	ctx context.Context
	// stopScheduler cancels the plugin's long-lived context (pl.ctx), as the
	// scheduler does when it shuts down; e.ctx, the framework's, stays live.
	stopScheduler context.CancelFunc
	fh            framework.Framework
	pl            *CoschedGang
	clock         *clocktesting.FakeClock
	podGroups     cache.Store
	recorder      *events.FakeRecorder
	activator     *recordingActivator
	// Clients and factories behind the informers; they are only started by
	// tests that exercise the event handlers' wiring.
	client          *fake.Clientset
	pgClient        *pgfake.Clientset
	informerFactory informers.SharedInformerFactory
	pgFactory       schedinformers.SharedInformerFactory

	// snapshot is what the framework's snapshot lister shows; tests that
	// preempt replace it with setCluster.
	snapshot *testSnapshot

	mu       sync.Mutex
	outcomes map[types.UID]chan *fwk.Status
	states   map[types.UID]fwk.CycleState
}

func newTestEnv(t testing.TB, mutate ...func(*config.CoschedGangArgs)) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args, err := config.Decode(nil, field.NewPath("args"))
	if err != nil {
		t.Fatalf("decoding default args: %v", err)
	}
	for _, m := range mutate {
		m(args)
	}
	// NewClientset's field-managed tracker needs an OpenAPI schema the
	// generated PodGroup fake does not carry, so PodGroup writes fail with it.
	pgClient := pgfake.NewSimpleClientset() //nolint:staticcheck // see above

	pgFactory := schedinformers.NewSharedInformerFactory(pgClient, 0)
	pgInformer := pgFactory.Scheduling().V1alpha1().PodGroups()
	client := fake.NewClientset()
	informerFactory := informers.NewSharedInformerFactory(client, 0)
	plCtx, stopScheduler := context.WithCancel(ctx)
	e := &testEnv{
		t:               t,
		ctx:             ctx,
		stopScheduler:   stopScheduler,
		client:          client,
		pgClient:        pgClient,
		informerFactory: informerFactory,
		pgFactory:       pgFactory,
		clock:           clocktesting.NewFakeClock(baseTime),
		podGroups:       pgInformer.Informer().GetStore(),
		recorder:        events.NewFakeRecorder(100),
		activator:       &recordingActivator{},
		outcomes:        map[types.UID]chan *fwk.Status{},
		states:          map[types.UID]fwk.CycleState{},
		snapshot:        &testSnapshot{Snapshot: internalcache.NewEmptySnapshot()},
	}
	factory := func(_ context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		pl, err := newPlugin(plCtx, h, args, pgInformer.Lister(), pgInformer.Informer())
		if err != nil {
			return nil, err
		}
		e.pl = pl
		return pl, nil
	}
	fh, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
		tf.RegisterQueueSortPlugin(QueueSortName, func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) { return &QueueSort{}, nil }),
		tf.RegisterPluginAsExtensions(Name, factory, "PreFilter", "Filter", "PostFilter", "Reserve", "Permit"),
		// Resource fit, so that planning and preemption simulations see
		// what the real profile's Filter would.
		tf.RegisterPluginAsExtensions(noderesources.Name, newFit, "PreFilter", "Filter"),
	}, "cosched-test",
		frameworkruntime.WithInformerFactory(informerFactory),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
		frameworkruntime.WithPodActivator(e.activator),
		frameworkruntime.WithEventRecorder(e.recorder),
		frameworkruntime.WithPodNominator(internalqueue.NewSchedulingQueue(nil, informerFactory)),
		frameworkruntime.WithSnapshotSharedLister(e.snapshot),
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithPodsInPreBind(frameworkruntime.NewPodsInPreBindMap()),
	)
	if err != nil {
		cancel()
		t.Fatalf("building the framework: %v", err)
	}
	e.fh = fh
	e.pl.clock = e.clock
	// The tests deliver the informer's events by hand: the index holds what
	// they delivered, which is all there is.
	e.pl.groups.setSynced(func() bool { return true })
	t.Cleanup(func() {
		// Release whoever still waits so no WaitOnPermit goroutine outlives
		// the test, then stop the framework's background work.
		fh.IterateOverWaitingPods(func(wp fwk.WaitingPod) { wp.Reject("test", "test over") })
		e.mu.Lock()
		chans := slices.Collect(maps.Values(e.outcomes))
		e.mu.Unlock()
		for _, ch := range chans {
			select {
			case <-ch:
			case <-time.After(outcomeTimeout):
			}
		}
		cancel()
	})
	return e
}

// member returns a member of group in testNS, named (and with UID) name.
func member(name, group string) *st.PodWrapper {
	return st.MakePod().Namespace(testNS).Name(name).UID(name).Label(podgroup.Label, group)
}

// plain returns a pod outside any group.
func plain(name string) *st.PodWrapper {
	return st.MakePod().Namespace(testNS).Name(name).UID(name)
}

// members returns n members of testPG named m1..mn, each requesting cpu.
func members(n int, cpu string) []*v1.Pod {
	pods := make([]*v1.Pod, n)
	for i := range pods {
		w := member("m"+string(rune('1'+i)), testPG)
		if cpu != "" {
			w = w.Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu})
		}
		pods[i] = w.Obj()
	}
	return pods
}

type pgOption func(*schedv1alpha1.PodGroup)

func withTimeout(seconds int32) pgOption {
	return func(pg *schedv1alpha1.PodGroup) { pg.Spec.ScheduleTimeoutSeconds = ptr.To(seconds) }
}

func withMinResources(rl map[v1.ResourceName]string) pgOption {
	return func(pg *schedv1alpha1.PodGroup) {
		pg.Spec.MinResources = v1.ResourceList{}
		for name, q := range rl {
			pg.Spec.MinResources[name] = resource.MustParse(q)
		}
	}
}

func createdAt(t time.Time) pgOption {
	return func(pg *schedv1alpha1.PodGroup) { pg.CreationTimestamp = metav1.NewTime(t) }
}

func inNamespace(ns string) pgOption {
	return func(pg *schedv1alpha1.PodGroup) { pg.Namespace = ns }
}

func makePG(name string, minMember int32, opts ...pgOption) *schedv1alpha1.PodGroup {
	pg := &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name, UID: types.UID("pg-" + name), CreationTimestamp: metav1.NewTime(baseTime)},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember},
	}
	for _, o := range opts {
		o(pg)
	}
	return pg
}

// unstructuredPG converts pg the way the scheduler's dynamic informer
// delivers it.
func unstructuredPG(t *testing.T, pg *schedv1alpha1.PodGroup) *unstructured.Unstructured {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pg)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion(schedv1alpha1.SchemeGroupVersion.String())
	u.SetKind("PodGroup")
	return u
}

func (e *testEnv) addPodGroups(pgs ...*schedv1alpha1.PodGroup) {
	e.t.Helper()
	for _, pg := range pgs {
		if err := e.podGroups.Add(pg); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *testEnv) updatePodGroup(pg *schedv1alpha1.PodGroup) {
	e.t.Helper()
	if err := e.podGroups.Update(pg); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) deletePodGroup(pg *schedv1alpha1.PodGroup) {
	e.t.Helper()
	if err := e.podGroups.Delete(pg); err != nil {
		e.t.Fatal(err)
	}
}

// addPods puts pods in the scheduler's pod informer and the group memory
// (as the plugin sees them), without running the plugin's handlers.
func (e *testEnv) addPods(pods ...*v1.Pod) {
	e.t.Helper()
	for _, pod := range pods {
		if err := e.pl.pods.Add(pod); err != nil {
			e.t.Fatal(err)
		}
		if key := podgroup.KeyOf(pod); key != "" {
			e.pl.groups.memberSeen(key, pod)
		}
	}
}

func (e *testEnv) updatePod(pod *v1.Pod) {
	e.t.Helper()
	if err := e.pl.pods.Update(pod); err != nil {
		e.t.Fatal(err)
	}
	if key := podgroup.KeyOf(pod); key != "" {
		e.pl.groups.memberSeen(key, pod)
	}
}

func (e *testEnv) deletePod(pod *v1.Pod) {
	e.t.Helper()
	if err := e.pl.pods.Delete(pod); err != nil {
		e.t.Fatal(err)
	}
	if key := podgroup.KeyOf(pod); key != "" {
		e.pl.groups.memberGone(key, pod.UID)
	}
}

// assumed returns the copy of pod the scheduler hands to Reserve, Permit and
// later extension points: NodeName is set on it, unlike in the informer.
func assumed(pod *v1.Pod, node string) *v1.Pod {
	p := pod.DeepCopy()
	p.Spec.NodeName = node
	return p
}

// reserveAndPermit runs the framework's Reserve and Permit for pod on node,
// as the scheduling cycle does. A pod told to wait is registered as waiting
// and a goroutine waits on its permit; outcome returns the result.
func (e *testEnv) reserveAndPermit(pod *v1.Pod, node string) (*fwk.Status, map[string]time.Duration) {
	e.t.Helper()
	state := framework.NewCycleState()
	p := assumed(pod, node)
	if s := e.fh.RunReservePluginsReserve(e.ctx, state, p, node); !s.IsSuccess() {
		e.t.Fatalf("Reserve %s: %v", pod.Name, s)
	}
	waits, s := e.fh.RunPermitPlugins(e.ctx, state, p, node)
	e.mu.Lock()
	e.states[pod.UID] = state
	e.mu.Unlock()
	if s.IsWait() {
		e.fh.AddWaitingPod(p, waits)
		ch := make(chan *fwk.Status, 1)
		e.mu.Lock()
		e.outcomes[pod.UID] = ch
		e.mu.Unlock()
		go func() { ch <- e.fh.WaitOnPermit(e.ctx, p) }()
	}
	return s, waits
}

// park brings pods to Permit in order on node and fails the test unless each
// is told to wait.
func (e *testEnv) park(node string, pods ...*v1.Pod) {
	e.t.Helper()
	for _, pod := range pods {
		if s, _ := e.reserveAndPermit(pod, node); !s.IsWait() {
			e.t.Fatalf("Permit %s: got %v, want Wait", pod.Name, s)
		}
	}
}

// outcome returns what WaitOnPermit returned for a parked pod.
func (e *testEnv) outcome(pod *v1.Pod) *fwk.Status {
	e.t.Helper()
	e.mu.Lock()
	ch := e.outcomes[pod.UID]
	e.mu.Unlock()
	if ch == nil {
		e.t.Fatalf("%s never waited at Permit", pod.Name)
	}
	select {
	case s := <-ch:
		ch <- s // keep it for later calls
		return s
	case <-time.After(outcomeTimeout):
		e.t.Fatalf("%s is still waiting at Permit", pod.Name)
		return nil
	}
}

// stillWaiting reports whether pod waits at Permit with no verdict yet.
func (e *testEnv) stillWaiting(pod *v1.Pod) bool {
	e.mu.Lock()
	ch := e.outcomes[pod.UID]
	e.mu.Unlock()
	if ch == nil {
		return false
	}
	// WaitOnPermit answers within microseconds of Allow/Reject; give the
	// goroutine a moment before concluding nobody answered.
	select {
	case s := <-ch:
		ch <- s
		return false
	case <-time.After(20 * time.Millisecond):
		return true
	}
}

// unreserve runs the framework's Unreserve for pod, as the binding cycle
// does after its Permit wait failed, with ctx as the cycle's context.
func (e *testEnv) unreserve(ctx context.Context, pod *v1.Pod, node string) {
	e.t.Helper()
	e.mu.Lock()
	state := e.states[pod.UID]
	e.mu.Unlock()
	if state == nil {
		state = framework.NewCycleState()
	}
	e.fh.RunReservePluginsUnreserve(ctx, state, assumed(pod, node), node)
}

// informerAdd puts pods in the pod informer and delivers their Add events
// to the plugin's handler, as the informer does: the handler runs after the
// cache holds the pod.
func (e *testEnv) informerAdd(pods ...*v1.Pod) {
	e.t.Helper()
	for _, pod := range pods {
		e.addPods(pod)
		e.pl.onPodAdd(pod)
	}
}

// informerBind shows pod bound to node in the pod informer and delivers the
// Update event to the plugin's handler.
func (e *testEnv) informerBind(pod *v1.Pod, node string) {
	e.t.Helper()
	old := pod.DeepCopy()
	if obj, ok, _ := e.pl.pods.Get(pod); ok {
		old = obj.(*v1.Pod)
	}
	bound := assumed(pod, node)
	e.updatePod(bound)
	e.pl.onPodUpdate(old, bound)
}

// informerDelete removes pod from the pod informer and delivers the Delete
// event to the plugin's handler.
func (e *testEnv) informerDelete(pod *v1.Pod) {
	e.t.Helper()
	e.deletePod(pod)
	e.pl.onPodDelete(pod)
}

// rejectAtPermit rejects a parked pod as another plugin (or the framework's
// timeout) would, waits for its verdict and runs its Unreserve with ctx.
func (e *testEnv) rejectAtPermit(ctx context.Context, pod *v1.Pod, node, plugin, msg string) *fwk.Status {
	e.t.Helper()
	wp := e.fh.GetWaitingPod(pod.UID)
	if wp == nil {
		e.t.Fatalf("%s is not waiting at Permit", pod.Name)
	}
	wp.Reject(plugin, msg)
	s := e.outcome(pod)
	e.unreserve(ctx, pod, node)
	return s
}

// releasing returns the group's released members, sorted, nil if none.
func releasing(tr *groupTracker, key string) []types.UID {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	g, ok := tr.groups[key]
	if !ok || len(g.releasing) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(g.releasing))
}

// reservedUIDs returns the current attempt's members, sorted, nil if none.
func reservedUIDs(tr *groupTracker, key string) []types.UID {
	m := tr.reservedMembers(key)
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}

// activationPending reports whether a requeue timer is claimed for key.
func activationPending(tr *groupTracker, key string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	g, ok := tr.groups[key]
	return ok && g.activationPending
}

// counterValue reads a counter, failing the test if it cannot. The plugin's
// metrics are process-wide, so tests compare values before and after.
func counterValue(t *testing.T, c metrics.CounterMetric) float64 {
	t.Helper()
	v, err := testutil.GetCounterMetricValue(c)
	if err != nil {
		t.Fatalf("reading a counter: %v", err)
	}
	return v
}

// admissions returns how many group admissions the plugin has counted.
func admissions(t *testing.T) float64 {
	t.Helper()
	return counterValue(t, groupsAdmitted)
}

// rejections returns how many group rejections for reason were counted.
func rejections(t *testing.T, reason string) float64 {
	t.Helper()
	return counterValue(t, groupRejections.WithLabelValues(reason))
}

// events drains the event recorder.
func (e *testEnv) events() []string {
	var out []string
	for {
		select {
		case ev := <-e.recorder.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// gangRejections drains the recorder and returns the GangRejected events.
func (e *testEnv) gangRejections() []string {
	var out []string
	for _, ev := range e.events() {
		if strings.Contains(ev, " GangRejected ") {
			out = append(out, ev)
		}
	}
	return out
}

// nodesWithCPU builds NodeInfos for nodes with the given free CPU (and 8Gi of memory) each.
func nodesWithCPU(cpus ...string) []fwk.NodeInfo {
	nodes := make([]*v1.Node, len(cpus))
	for i, cpu := range cpus {
		nodes[i] = st.MakeNode().Name("node" + string(rune('1'+i))).Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: "8Gi"}).Obj()
	}
	return tf.BuildNodeInfos(nodes)
}

// admitted is PreFilter's code for a member it lets through without a plan:
// Filter would have nothing to enforce, so PreFilter tells the framework to
// skip it.
const admitted = fwk.Skip

// assertStatus compares a status's code and checks its message contains
// every wanted fragment.
func assertStatus(t *testing.T, got *fwk.Status, wantCode fwk.Code, wantMsg ...string) {
	t.Helper()
	if got.Code() != wantCode {
		t.Errorf("status code: got %v (%q), want %v", got.Code(), got.Message(), wantCode)
	}
	for _, frag := range wantMsg {
		if !strings.Contains(got.Message(), frag) {
			t.Errorf("status message %q does not contain %q", got.Message(), frag)
		}
	}
}

func typesUID(name string) types.UID { return types.UID(name) }

// testSnapshot lets a test swap the cluster the framework's snapshot lister
// shows after the framework is built.
type testSnapshot struct {
	*internalcache.Snapshot
}

// setCluster makes the snapshot show these nodes with these placed pods.
func (e *testEnv) setCluster(pods []*v1.Pod, nodes []*v1.Node) {
	e.snapshot.Snapshot = internalcache.NewSnapshot(pods, nodes)
}

// newFit builds NodeResourcesFit with its default args.
func newFit(ctx context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args := &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
		Type:      schedconfig.LeastAllocated,
		Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
	}}
	return noderesources.NewFit(ctx, args, h, plfeature.Features{})
}

// updatePodThroughInformer replaces old with updated in the pod informer and
// delivers the Update event to the plugin's handler.
func (e *testEnv) updatePodThroughInformer(old, updated *v1.Pod) {
	e.t.Helper()
	if err := e.pl.pods.Update(updated); err != nil {
		e.t.Fatal(err)
	}
	e.pl.onPodUpdate(old, updated)
}
