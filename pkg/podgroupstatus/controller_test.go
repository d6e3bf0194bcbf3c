package podgroupstatus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	clientfeatures "k8s.io/client-go/features"
	clientfeaturestesting "k8s.io/client-go/features/testing"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"
	schedexternalversions "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"
)

const (
	pollInterval = 10 * time.Millisecond
	pollTimeout  = 10 * time.Second
)

type fixture struct {
	kube       *k8sfake.Clientset
	pgClient   *schedfake.Clientset
	recorder   *events.FakeRecorder
	controller *Controller
}

// newFixture builds a controller on fake clients holding objs and waits for
// its informers to sync. The informers stop when the test ends.
func newFixture(t *testing.T, ctx context.Context, pgs []*schedv1alpha1.PodGroup, pods []*v1.Pod) *fixture {
	t.Helper()
	// The generated PodGroup informers predate client-go's opt-out for fake
	// clients, so their reflectors would wait forever for the initial-events
	// bookmark that the fake watch never sends.
	clientfeaturestesting.SetFeatureDuringTest(t, clientfeatures.WatchListClient, false)
	var kubeObjs, pgObjs []runtime.Object
	for _, pod := range pods {
		kubeObjs = append(kubeObjs, pod)
	}
	for _, pg := range pgs {
		pgObjs = append(pgObjs, pg)
	}
	f := &fixture{
		kube: k8sfake.NewClientset(kubeObjs...),
		// schedfake.NewClientset cannot patch PodGroups: its field manager
		// lacks their schema.
		pgClient: schedfake.NewSimpleClientset(pgObjs...),
		recorder: events.NewFakeRecorder(100),
	}

	podFactory := NewMemberPodInformerFactory(f.kube, 0)
	pgFactory := schedexternalversions.NewSharedInformerFactory(f.pgClient, 0)
	controller, err := NewController(f.kube, f.pgClient,
		pgFactory.Scheduling().V1alpha1().PodGroups(), podFactory.Core().V1().Pods(), f.recorder)
	if err != nil {
		t.Fatalf("NewController: %v", err)
	}
	controller.clock = testingclock.NewFakePassiveClock(now.Time)
	// Short, to keep the tests fast; TestDebounce sets its own.
	controller.debounce = 20 * time.Millisecond
	f.controller = controller

	informerCtx, stopInformers := context.WithCancel(ctx)
	podFactory.Start(informerCtx.Done())
	pgFactory.Start(informerCtx.Done())
	t.Cleanup(func() {
		stopInformers()
		podFactory.Shutdown()
		pgFactory.Shutdown()
	})
	if !cache.WaitForCacheSync(ctx.Done(), controller.pgSynced, controller.podsSynced) {
		t.Fatal("informers did not sync")
	}
	f.pgClient.ClearActions()
	return f
}

// patch is the part of a patch action that matters to the API server.
type patch struct {
	Subresource string
	Data        string
}

func (f *fixture) patches() []patch {
	var patches []patch
	for _, action := range f.pgClient.Actions() {
		if p, ok := action.(clienttesting.PatchAction); ok {
			patches = append(patches, patch{Subresource: p.GetSubresource(), Data: string(p.GetPatch())})
		}
	}
	return patches
}

func (f *fixture) events() []string {
	var recorded []string
	for {
		select {
		case event := <-f.recorder.Events:
			recorded = append(recorded, event)
		default:
			return recorded
		}
	}
}

func withAnnotation(pg *schedv1alpha1.PodGroup, scheduled string) *schedv1alpha1.PodGroup {
	pg.Annotations = map[string]string{ScheduledMembersAnnotation: scheduled}
	return pg
}

func withResourceVersion(pg *schedv1alpha1.PodGroup, rv string) *schedv1alpha1.PodGroup {
	pg.ResourceVersion = rv
	return pg
}

func TestSync(t *testing.T) {
	tests := map[string]struct {
		pgs         []*schedv1alpha1.PodGroup
		pods        []*v1.Pod
		key         string
		reactor     clienttesting.ReactionFunc
		wantErr     func(error) bool
		wantPatches []patch
		wantEvents  []string
	}{
		"group reaching running gets status and annotation": {
			pgs: []*schedv1alpha1.PodGroup{withResourceVersion(podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: earlier,
			}), "7")},
			pods: []*v1.Pod{running("a"), running("b")},
			key:  "ns/pg",
			wantPatches: []patch{
				{Subresource: "status", Data: `{"metadata":{"resourceVersion":"7"},"status":{"phase":"Running","occupiedBy":"","running":2,"succeeded":0,"failed":0,"scheduleStartTime":"2026-01-01T10:00:00Z"}}`},
				{Data: `{"metadata":{"annotations":{"cosched.dev/scheduled-members":"2"}}}`},
			},
			wantEvents: []string{"Normal Running 2/2 members running, 0 succeeded, quorum is 2"},
		},
		"nothing is written when nothing changed": {
			pgs: []*schedv1alpha1.PodGroup{withAnnotation(podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 2, ScheduleStartTime: earlier,
			}), "2")},
			pods: []*v1.Pod{running("a"), running("b")},
			key:  "ns/pg",
		},
		"only the annotation is written when only placement changed": {
			pgs: []*schedv1alpha1.PodGroup{withAnnotation(podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: earlier,
			}), "1")},
			pods: []*v1.Pod{member("a", onNode("n1")), member("b", onNode("n2"))},
			key:  "ns/pg",
			wantPatches: []patch{
				{Data: `{"metadata":{"annotations":{"cosched.dev/scheduled-members":"2"}}}`},
			},
		},
		"pods of the same group name in another namespace do not count": {
			pgs: []*schedv1alpha1.PodGroup{podGroup(2, schedv1alpha1.PodGroupStatus{})},
			pods: []*v1.Pod{
				member("a"),
				member("b", inNamespace("other"), onNode("n"), inPhase(v1.PodRunning)),
				member("c", inNamespace("other"), onNode("n"), inPhase(v1.PodRunning)),
			},
			key: "ns/pg",
			// A new group is Pending without a write (an empty phase reads
			// as Pending), and no annotation is needed for zero scheduled
			// members.
		},
		"counters dropping to zero are written": {
			pgs: []*schedv1alpha1.PodGroup{withAnnotation(podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 2, ScheduleStartTime: earlier,
			}), "2")},
			key: "ns/pg",
			wantPatches: []patch{
				{Subresource: "status", Data: `{"status":{"phase":"Pending","occupiedBy":"","running":0,"succeeded":0,"failed":0,"scheduleStartTime":"2026-01-01T10:00:00Z"}}`},
				{Data: `{"metadata":{"annotations":{"cosched.dev/scheduled-members":"0"}}}`},
			},
			wantEvents: []string{"Normal Pending 0/2 pods exist, quorum is 2"},
		},
		"failed members are named": {
			pgs: []*schedv1alpha1.PodGroup{withAnnotation(podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 2, ScheduleStartTime: earlier,
			}), "2")},
			pods: []*v1.Pod{running("a"), member("b", onNode("n"), inPhase(v1.PodFailed))},
			key:  "ns/pg",
			wantPatches: []patch{
				{Subresource: "status", Data: `{"status":{"phase":"Failed","occupiedBy":"","running":1,"succeeded":0,"failed":1,"scheduleStartTime":"2026-01-01T10:00:00Z"}}`},
			},
			wantEvents: []string{"Warning Failed 1 member failed: ns/b"},
		},
		"lost members are reported": {
			pgs: []*schedv1alpha1.PodGroup{withAnnotation(podGroup(4, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 4, ScheduleStartTime: earlier,
			}), "4")},
			pods: []*v1.Pod{running("a"), running("b")},
			key:  "ns/pg",
			wantPatches: []patch{
				{Subresource: "status", Data: `{"status":{"phase":"Unknown","occupiedBy":"","running":2,"succeeded":0,"failed":0,"scheduleStartTime":"2026-01-01T10:00:00Z"}}`},
				{Data: `{"metadata":{"annotations":{"cosched.dev/scheduled-members":"2"}}}`},
			},
			wantEvents: []string{"Warning Unknown 2/4 members remain after members were deleted; quorum is 4"},
		},
		"quorum of members is reported as scheduling": {
			pgs: []*schedv1alpha1.PodGroup{podGroup(2, schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupPending})},
			pods: []*v1.Pod{
				member("a", ownedBy("Job", "job", true)),
				member("b", ownedBy("Job", "job", true)),
			},
			key: "ns/pg",
			wantPatches: []patch{
				{Subresource: "status", Data: `{"status":{"phase":"Scheduling","occupiedBy":"ns/job","running":0,"succeeded":0,"failed":0,"scheduleStartTime":"2026-01-01T11:00:00Z"}}`},
			},
			wantEvents: []string{"Normal Scheduling 0/2 members scheduled, 0 running, quorum is 2"},
		},
		"deleted PodGroup is ignored": {
			pods: []*v1.Pod{running("a")},
			key:  "ns/pg",
		},
		"terminating PodGroup is left alone": {
			pgs: []*schedv1alpha1.PodGroup{func() *schedv1alpha1.PodGroup {
				pg := podGroup(1, schedv1alpha1.PodGroupStatus{})
				pg.DeletionTimestamp = ptr.To(earlier)
				pg.Finalizers = []string{"example.com/keep"}
				return pg
			}()},
			pods: []*v1.Pod{running("a")},
			key:  "ns/pg",
		},
		"PodGroup deleted before the write is not an error": {
			pgs:  []*schedv1alpha1.PodGroup{podGroup(1, schedv1alpha1.PodGroupStatus{})},
			pods: []*v1.Pod{running("a")},
			key:  "ns/pg",
			reactor: func(action clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "podgroups"}, "pg")
			},
			wantPatches: []patch{
				{Subresource: "status", Data: `{"status":{"phase":"Running","occupiedBy":"","running":1,"succeeded":0,"failed":0,"scheduleStartTime":"2026-01-01T11:00:00Z"}}`},
			},
		},
		"conflict is returned without an event": {
			pgs:  []*schedv1alpha1.PodGroup{withResourceVersion(podGroup(1, schedv1alpha1.PodGroupStatus{}), "3")},
			pods: []*v1.Pod{running("a")},
			key:  "ns/pg",
			reactor: func(action clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "podgroups"}, "pg", fmt.Errorf("stale"))
			},
			wantErr: apierrors.IsConflict,
			wantPatches: []patch{
				{Subresource: "status", Data: `{"metadata":{"resourceVersion":"3"},"status":{"phase":"Running","occupiedBy":"","running":1,"succeeded":0,"failed":0,"scheduleStartTime":"2026-01-01T11:00:00Z"}}`},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			f := newFixture(t, ctx, tc.pgs, tc.pods)
			if tc.reactor != nil {
				f.pgClient.PrependReactor("patch", "podgroups", tc.reactor)
			}
			successBefore := counterValue(t, resultSuccess)

			err := f.controller.sync(ctx, tc.key)
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Errorf("sync() error = %v, want a different error", err)
				}
			} else if err != nil {
				t.Errorf("sync() error = %v", err)
			}
			if diff := cmp.Diff(tc.wantPatches, f.patches()); diff != "" {
				t.Errorf("patches mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEvents, f.events()); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
			if tc.reactor == nil {
				if got, want := counterValue(t, resultSuccess)-successBefore, float64(len(tc.wantPatches)); got != want {
					t.Errorf("successful updates counted = %v, want %v", got, want)
				}
			}
		})
	}
}

func counterValue(t *testing.T, result string) float64 {
	t.Helper()
	value, err := testutil.GetCounterMetricValue(statusUpdates.WithLabelValues(result))
	if err != nil {
		t.Fatalf("reading status update counter: %v", err)
	}
	return value
}

// TestRun drives the controller through informer events only.
func TestRun(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := newFixture(t, ctx,
		[]*schedv1alpha1.PodGroup{podGroup(2, schedv1alpha1.PodGroupStatus{})},
		[]*v1.Pod{member("a"), member("b")})

	done := f.run(ctx)

	// Existing groups are synced when Run starts.
	waitForPodGroup(t, ctx, f, func(pg *schedv1alpha1.PodGroup) bool {
		return pg.Status.Phase == schedv1alpha1.PodGroupScheduling
	})

	f.startRunning(t, ctx, "a", "b")
	pg := waitForPodGroup(t, ctx, f, func(pg *schedv1alpha1.PodGroup) bool {
		return pg.Status.Phase == schedv1alpha1.PodGroupRunning && pg.Annotations[ScheduledMembersAnnotation] == "2"
	})
	if pg.Status.Running != 2 || !pg.Status.ScheduleStartTime.Equal(&now) {
		t.Errorf("status = %+v, want 2 running since %v", pg.Status, now)
	}

	// Deleting a member is seen through the pod informer.
	if err := f.kube.CoreV1().Pods(testNamespace).Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting pod: %v", err)
	}
	waitForPodGroup(t, ctx, f, func(pg *schedv1alpha1.PodGroup) bool {
		return pg.Status.Phase == schedv1alpha1.PodGroupUnknown && pg.Annotations[ScheduledMembersAnnotation] == "1"
	})

	cancel()
	<-done
	var reasons []string
	for _, event := range f.events() {
		reasons = append(reasons, strings.Fields(event)[1])
	}
	if diff := cmp.Diff([]string{"Scheduling", "Running", "Unknown"}, reasons); diff != "" {
		t.Errorf("event reasons mismatch (-want +got):\n%s", diff)
	}
	if f.controller.running() {
		t.Error("controller still accepts work after Run returned")
	}
}

// TestDebounce: members that change together make one write, not one per
// member. Without the debounce each pod update below is synced on its own:
// five writes instead of three.
func TestDebounce(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := newFixture(t, ctx,
		[]*schedv1alpha1.PodGroup{podGroup(2, schedv1alpha1.PodGroupStatus{})},
		[]*v1.Pod{member("a"), member("b")})
	f.controller.debounce = 300 * time.Millisecond

	done := f.run(ctx)
	waitForPodGroup(t, ctx, f, func(pg *schedv1alpha1.PodGroup) bool {
		return pg.Status.Phase == schedv1alpha1.PodGroupScheduling
	})
	f.startRunning(t, ctx, "a", "b")
	waitForPodGroup(t, ctx, f, func(pg *schedv1alpha1.PodGroup) bool {
		return pg.Status.Phase == schedv1alpha1.PodGroupRunning && pg.Annotations[ScheduledMembersAnnotation] == "2"
	})
	// Our own writes come back as PodGroup updates; their syncs must find
	// nothing left to write.
	time.Sleep(3 * f.controller.debounce)
	cancel()
	<-done
	var got []string
	for _, p := range f.patches() {
		kind := p.Subresource
		if kind == "" {
			kind = "metadata"
		}
		got = append(got, kind)
	}
	if diff := cmp.Diff([]string{"status", "status", "metadata"}, got); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

func TestMemberOnly(t *testing.T) {
	full := running("a")
	ownedBy("Job", "job", true)(full)
	full.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	full.Annotations = map[string]string{"big": strings.Repeat("x", 100)}
	full.Spec.Containers = []v1.Container{{Name: "c", Image: "i"}}
	obj, err := memberOnly(full)
	if err != nil {
		t.Fatal(err)
	}
	stripped := obj.(*v1.Pod)
	if stripped.ManagedFields != nil || stripped.Annotations != nil || stripped.Spec.Containers != nil {
		t.Errorf("memberOnly kept more than the status needs: %+v", stripped)
	}
	pg := podGroup(1, schedv1alpha1.PodGroupStatus{})
	if diff := cmp.Diff(Compute(pg, []*v1.Pod{full}, now), Compute(pg, []*v1.Pod{stripped}, now)); diff != "" {
		t.Errorf("the stripped pod computes another status (-full +stripped):\n%s", diff)
	}
}

// run runs the controller until ctx ends; the channel closes when Run returned.
func (f *fixture) run(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.controller.Run(ctx, 1)
	}()
	return done
}

// startRunning makes the named pods run on a node.
func (f *fixture) startRunning(t *testing.T, ctx context.Context, names ...string) {
	t.Helper()
	for _, name := range names {
		pod := running(name)
		// The controller ignores updates that keep the resourceVersion, as
		// periodic resyncs do; the fake client does not bump it.
		pod.ResourceVersion = "2"
		if _, err := f.kube.CoreV1().Pods(testNamespace).Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating pod %s: %v", name, err)
		}
	}
}

func waitForPodGroup(t *testing.T, ctx context.Context, f *fixture, condition func(*schedv1alpha1.PodGroup) bool) *schedv1alpha1.PodGroup {
	t.Helper()
	var pg *schedv1alpha1.PodGroup
	err := wait.PollUntilContextTimeout(ctx, pollInterval, pollTimeout, true, func(ctx context.Context) (bool, error) {
		var err error
		pg, err = f.pgClient.SchedulingV1alpha1().PodGroups(testNamespace).Get(ctx, testGroup, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return condition(pg), nil
	})
	if err != nil {
		t.Fatalf("waiting for PodGroup: %v; last seen: %+v", err, pg)
	}
	return pg
}

// running reports whether the controller currently accepts work.
func (c *Controller) running() bool {
	c.queueLock.RLock()
	defer c.queueLock.RUnlock()
	return c.queue != nil
}

// Event recorders resolve the regarding object's kind through client-go's
// scheme; without the registration in init() PodGroup events are dropped.
func TestPodGroupIsInClientGoScheme(t *testing.T) {
	ref, err := reference.GetReference(scheme.Scheme, podGroup(1, schedv1alpha1.PodGroupStatus{}))
	if err != nil {
		t.Fatalf("GetReference() error = %v", err)
	}
	if ref.Kind != "PodGroup" || ref.APIVersion != schedv1alpha1.SchemeGroupVersion.String() {
		t.Errorf("reference = %s %s, want PodGroup %s", ref.APIVersion, ref.Kind, schedv1alpha1.SchemeGroupVersion)
	}
}

func TestNewControllerToleratesExistingIndex(t *testing.T) {
	kube := k8sfake.NewClientset()
	pgClient := schedfake.NewClientset()
	podInformer := NewMemberPodInformerFactory(kube, 0).Core().V1().Pods()
	pgInformer := schedexternalversions.NewSharedInformerFactory(pgClient, 0).Scheduling().V1alpha1().PodGroups()
	for i := range 2 {
		if _, err := NewController(kube, pgClient, pgInformer, podInformer, events.NewFakeRecorder(1)); err != nil {
			t.Fatalf("NewController #%d: %v", i+1, err)
		}
	}
}
