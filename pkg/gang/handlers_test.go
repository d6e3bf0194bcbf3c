package gang

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clientfeatures "k8s.io/client-go/features"
	clientfeaturestesting "k8s.io/client-go/features/testing"
	"k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

// handlerOutcome is what a handler did to the parked members m1 and m2.
type handlerOutcome int

const (
	untouched handlerOutcome = iota
	allowed
	rejected
)

func (o handlerOutcome) String() string {
	return [...]string{"still waiting", "allowed", "rejected"}[o]
}

// checkParked compares the fate of the parked members with want.
func checkParked(t *testing.T, e *testEnv, parked []*v1.Pod, want handlerOutcome, wantMsg string) {
	t.Helper()
	for _, pod := range parked {
		if want == untouched {
			if !e.stillWaiting(pod) {
				t.Errorf("%s: got %v, want still waiting", pod.Name, e.outcome(pod))
			}
			continue
		}
		s := e.outcome(pod)
		switch want {
		case allowed:
			if !s.IsSuccess() {
				t.Errorf("%s: got %v %q, want allowed", pod.Name, s.Code(), s.Message())
			}
		case rejected:
			assertStatus(t, s, fwk.Unschedulable, wantMsg)
		}
	}
}

func TestOnPodDelete(t *testing.T) {
	tests := []struct {
		name string
		// pods is how many members exist (m1..mN); m1 and m2 wait at Permit
		// unless park is false.
		pods    int
		noPark  bool
		deleted *v1.Pod
		// tombstone delivers the deleted pod as a DeletedFinalStateUnknown.
		tombstone bool
		want      handlerOutcome
		wantMsg   string
		wantEvent string
	}{
		{
			name:      "member leaves the group below quorum",
			pods:      3,
			deleted:   member("m3", testPG).Obj(),
			want:      rejected,
			wantMsg:   "PodGroup ns/pg was rejected as a whole: member ns/m3 was deleted; 2/3 pods remain",
			wantEvent: "Warning GangRejected member ns/m3 was deleted; 2/3 pods remain; released 2 waiting member(s)",
		},
		{
			name:      "deletion seen late, through a tombstone",
			pods:      3,
			deleted:   member("m3", testPG).Obj(),
			tombstone: true,
			want:      rejected,
			wantMsg:   "member ns/m3 was deleted",
		},
		{
			name:      "a waiting member itself is deleted",
			pods:      3,
			deleted:   member("m1", testPG).Obj(),
			want:      rejected,
			wantMsg:   "member ns/m1 was deleted; 2/3 pods remain",
			wantEvent: "Warning GangRejected member ns/m1 was deleted; 2/3 pods remain; released 2 waiting member(s)",
		},
		{
			name:    "spare member deleted, quorum still possible",
			pods:    4,
			deleted: member("m4", testPG).Obj(),
			want:    untouched,
		},
		{
			name:    "pod of another group",
			pods:    3,
			deleted: member("o1", "other").Obj(),
			want:    untouched,
		},
		{
			name:    "pod outside any group",
			pods:    3,
			deleted: plain("p").Obj(),
			want:    untouched,
		},
		{
			name:    "nobody holds a reservation",
			pods:    3,
			noPark:  true,
			deleted: member("m3", testPG).Obj(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 3), makePG("other", 1))
			pods := members(tt.pods, "1")
			e.addPods(pods...)
			e.addPods(tt.deleted)
			var parked []*v1.Pod
			if !tt.noPark {
				parked = pods[:2]
				e.park("node1", parked...)
			}
			e.deletePod(tt.deleted)
			var obj any = tt.deleted
			if tt.tombstone {
				obj = cache.DeletedFinalStateUnknown{Key: tt.deleted.Namespace + "/" + tt.deleted.Name, Obj: tt.deleted}
			}
			e.pl.onPodDelete(obj)
			checkParked(t, e, parked, tt.want, tt.wantMsg)
			evs := e.gangRejections()
			if tt.want != rejected {
				if len(evs) != 0 {
					t.Errorf("unexpected events %q", evs)
				}
				if _, _, ok := e.pl.groups.backingOff(testKey, e.clock.Now()); ok {
					t.Errorf("group backing off without a rejection")
				}
				return
			}
			if len(evs) != 1 || (tt.wantEvent != "" && evs[0] != tt.wantEvent) {
				t.Errorf("events: got %q, want [%q]", evs, tt.wantEvent)
			}
		})
	}
}

// A member of an admitted group that finishes right after it bound leaves
// the scheduler's informer as a delete (terminal pods are filtered out)
// while its siblings' binds are still settling: that is no rejection.
func TestOnPodDeleteAfterAdmission(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[:2]...)
	if s, _ := e.reserveAndPermit(pods[2], "node1"); !s.IsSuccess() {
		t.Fatalf("Permit of the quorum's last member: got %v, want Success", s)
	}
	for _, pod := range pods[:2] {
		if s := e.outcome(pod); !s.IsSuccess() {
			t.Fatalf("%s: got %v, want admitted", pod.Name, s)
		}
	}
	finished := assumed(pods[0], "node1")
	finished.Status.Phase = v1.PodSucceeded
	e.deletePod(finished)
	e.pl.onPodDelete(finished)
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Errorf("a finished member of an admitted group rejected it: %q", evs)
	}
	if _, _, ok := e.pl.groups.backingOff(testKey, e.clock.Now()); ok {
		t.Errorf("admitted group backing off after a member finished")
	}
}

func TestOnPodDeleteIgnoresOtherObjects(t *testing.T) {
	e := newTestEnv(t)
	e.pl.onPodDelete(makePG(testPG, 1))
	e.pl.onPodDelete(cache.DeletedFinalStateUnknown{Key: "x", Obj: "not a pod"})
	if n := e.pl.groups.size(); n != 0 {
		t.Errorf("tracked groups: got %d, want 0", n)
	}
}

// TestOnPodDeleteSettlesBoundMember: a member whose deletion shows it on a
// node no longer holds a reservation, and a group that keeps its quorum is
// left alone.
func TestOnPodDeleteSettlesBoundMember(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[0])
	if s, _ := e.reserveAndPermit(pods[1], "node1"); !s.IsSuccess() {
		t.Fatalf("quorum member: %v", s)
	}
	// The informer missed m1's bind and delivers its deletion with its
	// final state.
	e.deletePod(pods[0])
	e.pl.onPodDelete(cache.DeletedFinalStateUnknown{Key: "ns/m1", Obj: assumed(pods[0], "node1")})
	if diff := cmp.Diff([]types.UID{"m2"}, reservedUIDs(e.pl.groups, testKey)); diff != "" {
		t.Errorf("reservations (-want +got):\n%s", diff)
	}
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Errorf("unexpected events %q", evs)
	}
}

func TestOnPodAdd(t *testing.T) {
	m := func(name string) *v1.Pod { return member(name, testPG).Obj() }
	elsewhere := func(name string) *v1.Pod { return member(name, testPG).SchedulerName("other-scheduler").Obj() }
	tests := []struct {
		name      string
		podGroups []*schedv1alpha1.PodGroup
		// cached are in the pod cache before the event.
		cached []*v1.Pod
		// reserved hold reservations before the event.
		reserved []string
		added    any
		want     [][]string
		// wantReserved are the reservations left after the event.
		wantReserved []types.UID
	}{
		{
			name:      "the member completing the quorum activates the pending members",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			cached:    []*v1.Pod{m("m1"), m("m2")},
			added:     m("m3"),
			want:      [][]string{{"ns/m1", "ns/m2", "ns/m3"}},
		},
		{
			name:      "a member for another scheduler completes the quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			cached:    []*v1.Pod{m("m1"), m("m2")},
			added:     elsewhere("m3"),
			want:      [][]string{{"ns/m1", "ns/m2", "ns/m3"}},
		},
		{
			name:      "a bound member seen after a restart completes the quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			cached:    []*v1.Pod{m("m1"), m("m2")},
			added:     member("m3", testPG).Node("node1").Obj(),
			want:      [][]string{{"ns/m1", "ns/m2"}},
		},
		{
			name:      "reserved, bound and terminating members are not activated",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 4)},
			cached: []*v1.Pod{m("m1"), m("m2"), member("m3", testPG).Node("node1").Obj(),
				member("gone", testPG).Terminating().Obj()},
			reserved:     []string{"m2"},
			added:        m("m4"),
			want:         [][]string{{"ns/m1", "ns/m4"}},
			wantReserved: []types.UID{"m2"},
		},
		{
			name:      "still short of the quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			cached:    []*v1.Pod{m("m1")},
			added:     m("m2"),
		},
		{
			name:      "a terminating pod does not complete the quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			cached:    []*v1.Pod{m("m1"), m("m2")},
			added:     member("m3", testPG).Terminating().Obj(),
		},
		{
			// The cache may be ahead of this event (its predecessors' Add
			// handlers may not have run), so past the quorum still wakes
			// the pending members; activating active pods is harmless.
			name:      "a member beyond the quorum still activates the pending members",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			cached:    []*v1.Pod{m("m1"), m("m2")},
			added:     m("m3"),
			want:      [][]string{{"ns/m1", "ns/m2", "ns/m3"}},
		},
		{
			name:         "a member added bound settles its reservation",
			podGroups:    []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			cached:       []*v1.Pod{m("m1"), m("m2"), m("m3")},
			reserved:     []string{"m1", "m4"},
			added:        member("m4", testPG).Node("node1").Obj(),
			want:         [][]string{{"ns/m2", "ns/m3"}},
			wantReserved: []types.UID{"m1"},
		},
		{
			name:   "PodGroup missing",
			cached: []*v1.Pod{m("m1"), m("m2")},
			added:  m("m3"),
		},
		{
			name:      "pod of another group",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 1), makePG("other", 3)},
			cached:    []*v1.Pod{m("m1")},
			added:     member("o1", "other").Obj(),
		},
		{
			name:      "pod outside any group",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 1)},
			cached:    []*v1.Pod{m("m1")},
			added:     plain("p").Obj(),
		},
		{
			name:      "not a pod",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 1)},
			cached:    []*v1.Pod{m("m1")},
			added:     makePG(testPG, 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(tt.podGroups...)
			e.addPods(tt.cached...)
			for _, name := range tt.reserved {
				e.pl.groups.reserve(testKey, typesUID(name), "node1", e.clock.Now())
			}
			if pod, ok := tt.added.(*v1.Pod); ok {
				e.addPods(pod)
			}
			e.pl.onPodAdd(tt.added)
			if diff := cmp.Diff(tt.want, e.activator.take()); diff != "" {
				t.Errorf("activations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantReserved, reservedUIDs(e.pl.groups, testKey)); diff != "" {
				t.Errorf("reservations (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOnPodAddHandlerBehindCache: a shared informer updates its cache before
// it hands the event to the handlers, asynchronously, so a handler may run
// when later pods are already cached (a burst of creations, the initial list
// after a restart). When the members that complete the quorum are not this
// scheduler's (the case onPodAdd exists for), their Add handlers all see
// more pods than the quorum, and the gated members of this scheduler are
// never activated.
func TestOnPodAddHandlerBehindCache(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	ours := []*v1.Pod{member("m1", testPG).Obj(), member("m2", testPG).Obj()}
	theirs := []*v1.Pod{
		member("x1", testPG).SchedulerName("other-scheduler").Obj(),
		member("x2", testPG).SchedulerName("other-scheduler").Obj(),
	}
	e.addPods(ours...)
	// x1 and x2 are created back to back: the cache holds both before the
	// handler sees x1's Add.
	e.addPods(theirs...)
	for _, pod := range theirs {
		e.pl.onPodAdd(pod)
	}
	if got := e.activator.take(); len(got) == 0 {
		t.Errorf("BUG (handlers.go onPodAdd, `live == MinMember`): x1 and x2 (another scheduler's) brought the group to 4/3 pods, but each Add handler ran with both already cached, saw live=4 != quorum 3, and activated nothing; gated m1 and m2 stay gated until some unrelated event")
	}
}

func TestOnPodUpdate(t *testing.T) {
	m1 := member("m1", testPG).Obj()
	tests := []struct {
		name     string
		old, new any
		// wantSettled: m1's reservation is gone.
		wantSettled bool
	}{
		{name: "the cache shows the member bound", old: m1, new: assumed(m1, "node1"), wantSettled: true},
		{name: "still unbound", old: m1, new: member("m1", testPG).Label("extra", "x").Obj()},
		{name: "already bound", old: assumed(m1, "node1"), new: assumed(m1, "node1")},
		{name: "bound member of another group", old: member("m1", "other").Obj(), new: member("m1", "other").Node("node1").Obj()},
		{name: "pod outside any group", old: plain("m1").Obj(), new: plain("m1").Node("node1").Obj()},
		{name: "not pods", old: makePG(testPG, 1), new: makePG(testPG, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 2))
			e.addPods(m1)
			e.pl.groups.reserve(testKey, "m1", "node1", e.clock.Now())
			e.pl.groups.reserve(testKey, "m2", "node1", e.clock.Now())
			e.pl.onPodUpdate(tt.old, tt.new)
			want := []types.UID{"m1", "m2"}
			if tt.wantSettled {
				want = []types.UID{"m2"}
			}
			if diff := cmp.Diff(want, reservedUIDs(e.pl.groups, testKey)); diff != "" {
				t.Errorf("reservations (-want +got):\n%s", diff)
			}
			if got := e.activator.take(); len(got) != 0 {
				t.Errorf("unexpected activations %v", got)
			}
		})
	}
}

// TestPodCacheSettlesReservations: an admitted group's members hold their
// reservations until the pod cache shows them bound; once every member is,
// the tracker forgets the group.
func TestPodCacheSettlesReservations(t *testing.T) {
	tests := []struct {
		name string
		// rejectFirst fails one attempt (and waits out its backoff) before
		// the group is admitted.
		rejectFirst bool
		// bind is how many of the three members the cache shows bound.
		bind         int
		wantSize     int
		wantReserved []types.UID
	}{
		{name: "all bound", bind: 3},
		{name: "all bound after an earlier rejection", rejectFirst: true, bind: 3},
		{name: "one still binding", bind: 2, wantSize: 1, wantReserved: []types.UID{"m3"}},
		{name: "none bound yet", bind: 0, wantSize: 1, wantReserved: []types.UID{"m1", "m2", "m3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 3))
			pods := members(3, "1")
			e.addPods(pods...)
			if tt.rejectFirst {
				e.park("node1", pods[0])
				e.rejectAtPermit(e.ctx, pods[0], "node1", "SomePlugin", "failed")
				e.clock.Step(5 * time.Second)
			}
			e.park("node1", pods[0], pods[1])
			if s, _ := e.reserveAndPermit(pods[2], "node1"); !s.IsSuccess() {
				t.Fatalf("quorum member: %v", s)
			}
			for _, pod := range pods[:tt.bind] {
				e.informerBind(pod, "node1")
			}
			if got := e.pl.groups.size(); got != tt.wantSize {
				t.Errorf("tracked groups: got %d, want %d", got, tt.wantSize)
			}
			if diff := cmp.Diff(tt.wantReserved, reservedUIDs(e.pl.groups, testKey)); diff != "" {
				t.Errorf("reservations (-want +got):\n%s", diff)
			}
			if !e.pl.groups.rejectedAt(testKey).IsZero() {
				t.Errorf("rejectedAt not cleared by the admission")
			}
			if _, _, ok := e.pl.groups.backingOff(testKey, e.clock.Now()); ok {
				t.Errorf("backoff not cleared by the admission")
			}
		})
	}
}

func TestOnPodGroupAdd(t *testing.T) {
	pending := []string{"ns/m1", "ns/m2"}
	tests := []struct {
		name  string
		added func(t *testing.T) any
		want  [][]string
	}{
		{name: "typed", added: func(*testing.T) any { return makePG(testPG, 3) }, want: [][]string{pending}},
		{name: "unstructured", added: func(t *testing.T) any { return unstructuredPG(t, makePG(testPG, 3)) }, want: [][]string{pending}},
		{name: "a group with no pods", added: func(*testing.T) any { return makePG("empty", 3) }},
		{name: "same name in another namespace", added: func(*testing.T) any { return makePG(testPG, 3, inNamespace("elsewhere")) }},
		{name: "not a PodGroup", added: func(*testing.T) any { return member("m1", testPG).Obj() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPods(
				member("m1", testPG).Obj(),
				member("m2", testPG).Obj(),
				member("m3", testPG).Node("node1").Obj(),
				member("m4", testPG).Terminating().Obj(),
				member("o1", "other").Obj(),
			)
			if pg, err := asPodGroup(tt.added(t)); err == nil && pg != nil {
				e.addPodGroups(pg)
			}
			e.pl.onPodGroupAdd(tt.added(t))
			if diff := cmp.Diff(tt.want, e.activator.take()); diff != "" {
				t.Errorf("activations (-want +got):\n%s", diff)
			}
			if n := e.pl.groups.size(); n != 0 {
				t.Errorf("tracked groups: got %d, want 0", n)
			}
		})
	}
}

func TestOnPodGroupUpdate(t *testing.T) {
	// pg returns testPG at a generation: the API server bumps it on every
	// spec change, not on status updates.
	pg := func(minMember int32, generation int64, opts ...pgOption) *schedv1alpha1.PodGroup {
		p := makePG(testPG, minMember, opts...)
		p.Generation = generation
		return p
	}
	tests := []struct {
		name     string
		pods     int
		old, new *schedv1alpha1.PodGroup
		// noPark leaves m1 and m2 unreserved.
		noPark    bool
		want      handlerOutcome
		wantMsg   string
		wantEvent string
		// wantActivated are the activations the update causes.
		wantActivated [][]string
	}{
		{
			name: "minMember lowered to what is reserved",
			pods: 3, old: pg(3, 1), new: pg(2, 2),
			want: allowed,
		},
		{
			name: "minMember lowered below what is reserved",
			pods: 3, old: pg(3, 1), new: pg(1, 2),
			want: allowed,
		},
		{
			name: "minMember lowered but still above what is reserved",
			pods: 4, old: pg(4, 1), new: pg(3, 2),
			want: untouched,
		},
		{
			name: "minMember raised beyond the pods that exist",
			pods: 3, old: pg(3, 1), new: pg(4, 2),
			want:      rejected,
			wantMsg:   "minMember changed from 3 to 4; only 3 pods exist",
			wantEvent: "Warning GangRejected minMember changed from 3 to 4; only 3 pods exist; released 2 waiting member(s)",
		},
		{
			name: "minMember raised within the pods that exist",
			pods: 4, old: pg(3, 1), new: pg(4, 2),
			want: untouched,
		},
		{
			name: "minMember changed without a generation (objects built by hand)",
			pods: 3, old: pg(3, 0), new: pg(2, 0),
			want: allowed,
		},
		{
			name: "another spec field changed",
			pods: 3, old: pg(3, 1, withTimeout(10)), new: pg(3, 2, withTimeout(20)),
			want: untouched,
		},
		{
			name: "status-only update",
			pods: 3, old: pg(3, 1), new: pg(3, 1, withTimeout(20)),
			want: untouched,
		},
		{
			name: "another group changes",
			pods: 3, old: makePG("other", 3), new: makePG("other", 1),
			want: untouched,
		},
		{
			name: "nobody holds a reservation: a spec change activates the pending members",
			pods: 3, old: pg(3, 1), new: pg(2, 2),
			noPark:        true,
			wantActivated: [][]string{{"ns/m1", "ns/m2", "ns/m3"}},
		},
		{
			name: "nobody holds a reservation: a raised minMember activates them too",
			pods: 3, old: pg(3, 1), new: pg(5, 2),
			noPark:        true,
			wantActivated: [][]string{{"ns/m1", "ns/m2", "ns/m3"}},
		},
		{
			name: "nobody holds a reservation: a status-only update activates nothing",
			pods: 3, old: pg(3, 1), new: pg(3, 1),
			noPark: true,
		},
	}
	for _, tt := range tests {
		for _, form := range []string{"typed", "unstructured"} {
			t.Run(tt.name+"/"+form, func(t *testing.T) {
				e := newTestEnv(t)
				e.addPodGroups(tt.old)
				if tt.old.Name != testPG {
					e.addPodGroups(makePG(testPG, 3))
				}
				pods := members(tt.pods, "1")
				e.addPods(pods...)
				var parked []*v1.Pod
				if !tt.noPark {
					parked = pods[:2]
					e.park("node1", parked...)
				}
				e.activator.take()
				e.updatePodGroup(tt.new)
				var oldObj, newObj any = tt.old, tt.new
				if form == "unstructured" {
					oldObj, newObj = unstructuredPG(t, tt.old), unstructuredPG(t, tt.new)
				}
				e.pl.onPodGroupUpdate(oldObj, newObj)
				checkParked(t, e, parked, tt.want, tt.wantMsg)
				evs := e.gangRejections()
				switch {
				case tt.want != rejected && len(evs) != 0:
					t.Errorf("unexpected events %q", evs)
				case tt.want == rejected && (len(evs) != 1 || evs[0] != tt.wantEvent):
					t.Errorf("events: got %q, want [%q]", evs, tt.wantEvent)
				}
				if tt.want == allowed && !e.pl.groups.waitingSince(testKey).IsZero() {
					t.Errorf("the admitted attempt still has a waitingSince")
				}
				if diff := cmp.Diff(tt.wantActivated, e.activator.take()); diff != "" {
					t.Errorf("activations (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestOnPodGroupUpdateIgnoresOtherObjects(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	e.addPods(members(3, "1")...)
	e.pl.onPodGroupUpdate(nil, makePG(testPG, 1))
	e.pl.onPodGroupUpdate(makePG(testPG, 3), member("m1", testPG).Obj())
	e.pl.onPodGroupUpdate(member("m1", testPG).Obj(), makePG(testPG, 1))
	if got := e.activator.take(); len(got) != 0 {
		t.Errorf("unexpected activations %v", got)
	}
	if n := e.pl.groups.size(); n != 0 {
		t.Errorf("tracked groups: got %d, want 0", n)
	}
}

func TestOnPodGroupDelete(t *testing.T) {
	tests := []struct {
		name      string
		deleted   any
		want      handlerOutcome
		wantGroup bool
	}{
		{name: "typed", deleted: makePG(testPG, 3), want: rejected},
		{name: "tombstone", deleted: cache.DeletedFinalStateUnknown{Key: testKey, Obj: makePG(testPG, 3)}, want: rejected},
		{name: "another group", deleted: makePG("other", 3), want: untouched, wantGroup: true},
		{name: "not a PodGroup", deleted: member("m1", testPG).Obj(), want: untouched, wantGroup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			pg := makePG(testPG, 3)
			e.addPodGroups(pg, makePG("other", 3))
			pods := members(3, "1")
			e.addPods(pods...)
			e.park("node1", pods[:2]...)
			deletedBefore := rejections(t, "podgroup_deleted")
			if tt.want == rejected {
				e.deletePodGroup(pg)
			}
			e.pl.onPodGroupDelete(tt.deleted)
			checkParked(t, e, pods[:2], tt.want, "PodGroup ns/pg was deleted")
			if got := e.pl.groups.reservedCount(testKey) > 0; got != tt.wantGroup {
				t.Errorf("group still tracked: got %v, want %v", got, tt.wantGroup)
			}
			if got, want := rejections(t, "podgroup_deleted")-deletedBefore, map[bool]float64{true: 1}[tt.want == rejected]; got != want {
				t.Errorf("podgroup_deleted rejections counted: got %v, want %v", got, want)
			}
		})
	}
}

// TestOnPodGroupDeleteThenUnreserve (regression) follows the rejected members
// of a deleted PodGroup through their Unreserve: the group was forgotten and
// stays forgotten, so a PodGroup re-created under that name starts afresh.
func TestOnPodGroupDeleteThenUnreserve(t *testing.T) {
	e := newTestEnv(t)
	pg := makePG(testPG, 3)
	e.addPodGroups(pg)
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[:2]...)
	e.deletePodGroup(pg)
	e.pl.onPodGroupDelete(pg)
	for _, pod := range pods[:2] {
		assertStatus(t, e.outcome(pod), fwk.Unschedulable, "PodGroup ns/pg was deleted")
		e.unreserve(e.ctx, pod, "node1")
	}
	if n := e.pl.groups.size(); n != 0 {
		t.Errorf("the deleted PodGroup is tracked again after its members' Unreserve (tracked groups: %d, rejectedAt %v)",
			n, e.pl.groups.rejectedAt(testKey))
	}
	if waiters := e.clock.Waiters(); waiters != 0 {
		t.Errorf("%d requeue timers set for a deleted group, want none", waiters)
	}
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Errorf("unexpected events %q", evs)
	}
	// Re-created: its members are scheduled at once.
	e.addPodGroups(makePG(testPG, 3))
	_, s := e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[0], nodesWithCPU("4"))
	assertStatus(t, s, admitted)
}

// TestReserveAfterPodGroupDeleted: a member that passed PreFilter reaches
// Reserve just after its PodGroup was deleted (onPodGroupDelete has already
// forgotten the group). Reserve tracks the group again, Permit turns the
// member away, and its Unreserve rejects the group as a failed attempt: the
// deleted PodGroup is tracked again, now with a rejection that is never
// cleared, and a PodGroup re-created under that name starts backing off.
func TestReserveAfterPodGroupDeleted(t *testing.T) {
	e := newTestEnv(t)
	pg := makePG(testPG, 2)
	e.addPodGroups(pg)
	pods := members(2, "1")
	e.addPods(pods...)
	// m1's cycle passed PreFilter and Filter; then the PodGroup goes.
	_, s := e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[0], nodesWithCPU("4"))
	assertStatus(t, s, admitted)
	e.deletePodGroup(pg)
	e.pl.onPodGroupDelete(pg)
	p := assumed(pods[0], "node1")
	assertStatus(t, e.pl.Reserve(e.ctx, framework.NewCycleState(), p, "node1"), fwk.UnschedulableAndUnresolvable, "PodGroup ns/pg was deleted")
	e.unreserve(e.ctx, p, "node1")
	if n := e.pl.groups.size(); n != 0 {
		_, left, _ := e.pl.groups.backingOff(testKey, e.clock.Now())
		t.Errorf("BUG (permit.go Reserve/Unreserve): the deleted PodGroup ns/pg is tracked again (tracked groups: %d, rejectedAt %v, backoff left %v): Reserve re-creates the group without checking the PodGroup exists, and Unreserve then rejects it as a failed attempt; the entry is never dropped (rejectedAt stays set) and a PodGroup re-created under that name backs off",
			n, e.pl.groups.rejectedAt(testKey), left)
	}
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Errorf("unexpected events %q", evs)
	}
}

// TestInformerWiring runs the informers newPlugin hooks into: the plugin's
// handlers must be registered on the scheduler's pod informer and on the
// PodGroup informer, and react to what the API server sends.
func TestInformerWiring(t *testing.T) {
	// The generated PodGroup fake clientset predates streaming lists: it
	// never sends the bookmark a watch-list reflector waits for.
	clientfeaturestesting.SetFeatureDuringTest(t, clientfeatures.WatchListClient, false)
	e := newTestEnv(t)
	ctx, stopInformers := context.WithCancel(e.ctx)
	e.informerFactory.Start(ctx.Done())
	e.pgFactory.Start(ctx.Done())
	t.Cleanup(func() {
		stopInformers()
		e.informerFactory.Shutdown()
		e.pgFactory.Shutdown()
	})
	syncCtx, cancel := context.WithTimeout(ctx, outcomeTimeout)
	defer cancel()
	for typ, ok := range e.informerFactory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			t.Fatalf("%v informer did not sync", typ)
		}
	}
	for typ, ok := range e.pgFactory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			t.Fatalf("%v informer did not sync", typ)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, outcomeTimeout, true, func(context.Context) (bool, error) {
			return cond(), nil
		})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	var activations [][]string
	activated := func(want ...string) func() bool {
		return func() bool {
			activations = append(activations, e.activator.take()...)
			for _, call := range activations {
				if slices.Equal(call, want) {
					activations = nil
					return true
				}
			}
			return false
		}
	}

	pods := members(3, "1")
	for _, pod := range pods[:2] {
		if _, err := e.client.CoreV1().Pods(testNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("m1 and m2 in the pod cache", func() bool { return len(podgroup.Members(e.pl.pods, testKey)) == 2 })

	// The PodGroup arrives after its pods: onPodGroupAdd releases them.
	if _, err := e.pgClient.SchedulingV1alpha1().PodGroups(testNS).Create(ctx, makePG(testPG, 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("activation on the PodGroup's creation", activated("ns/m1", "ns/m2"))

	// The third member is another scheduler's: onPodAdd completes the
	// quorum.
	third := pods[2].DeepCopy()
	third.Spec.SchedulerName = "other-scheduler"
	if _, err := e.client.CoreV1().Pods(testNS).Create(ctx, third, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("activation on the quorum's completion", activated("ns/m1", "ns/m2", "ns/m3"))

	// m1 is reserved, then bound: onPodUpdate settles it.
	e.pl.groups.reserve(testKey, "m1", "node1", e.clock.Now())
	e.pl.groups.reserve(testKey, "m2", "node1", e.clock.Now())
	if _, err := e.client.CoreV1().Pods(testNS).Update(ctx, assumed(pods[0], "node1"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("m1's reservation to settle", func() bool { return e.pl.groups.reservedCount(testKey) == 1 })

	// The PodGroup's spec changes: with m2 reserved and the new quorum
	// already placed, the group is admitted.
	admittedBefore := admissions(t)
	lowered := makePG(testPG, 2)
	lowered.Generation = 2
	if _, err := e.pgClient.SchedulingV1alpha1().PodGroups(testNS).Update(ctx, lowered, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("admission on the PodGroup's update", func() bool { return admissions(t) > admittedBefore })

	// m2 is deleted while reserved: onPodDelete rejects the group, which is
	// short of its quorum with m2 gone.
	if err := e.client.CoreV1().Pods(testNS).Delete(ctx, "m3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.client.CoreV1().Pods(testNS).Delete(ctx, "m2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the group's rejection on m2's deletion", func() bool {
		_, _, ok := e.pl.groups.backingOff(testKey, e.clock.Now())
		return ok
	})

	// The PodGroup is deleted: onPodGroupDelete forgets the group.
	if err := e.pgClient.SchedulingV1alpha1().PodGroups(testNS).Delete(ctx, testPG, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the group to be forgotten", func() bool { return e.pl.groups.size() == 0 })
}

// A joiner binding into a running group does not wait at Permit: members
// that finish meanwhile reject nothing.
func TestOnPodDeleteWhileAJoinerBinds(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	pods := members(3, "1")
	m1, m2 := assumed(pods[0], "node1"), assumed(pods[1], "node1")
	e.addPods(m1, m2, pods[2])
	if s, _ := e.reserveAndPermit(pods[2], "node1"); !s.IsSuccess() {
		t.Fatalf("Permit of a joiner of a running group: got %v, want Success", s)
	}
	for _, m := range []*v1.Pod{m1, m2} {
		done := m.DeepCopy()
		done.Status.Phase = v1.PodSucceeded
		e.deletePod(done)
		e.pl.onPodDelete(done)
	}
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Errorf("members finishing while a joiner binds rejected the group: %q", evs)
	}
}
