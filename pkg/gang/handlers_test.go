package gang

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
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

func TestOnPodDeleteIgnoresOtherObjects(t *testing.T) {
	e := newTestEnv(t)
	e.pl.onPodDelete(makePG(testPG, 1))
	e.pl.onPodDelete(cache.DeletedFinalStateUnknown{Key: "x", Obj: "not a pod"})
	if n := e.pl.groups.size(); n != 0 {
		t.Errorf("tracked groups: got %d, want 0", n)
	}
}

func TestOnPodGroupUpdate(t *testing.T) {
	tests := []struct {
		name     string
		pods     int
		old, new *schedv1alpha1.PodGroup
		// noPark leaves m1 and m2 unreserved.
		noPark    bool
		want      handlerOutcome
		wantMsg   string
		wantEvent string
	}{
		{
			name: "minMember lowered to what is reserved",
			pods: 3, old: makePG(testPG, 3), new: makePG(testPG, 2),
			want: allowed,
		},
		{
			name: "minMember lowered below what is reserved",
			pods: 3, old: makePG(testPG, 3), new: makePG(testPG, 1),
			want: allowed,
		},
		{
			name: "minMember lowered but still above what is reserved",
			pods: 4, old: makePG(testPG, 4), new: makePG(testPG, 3),
			want: untouched,
		},
		{
			name: "minMember raised beyond the pods that exist",
			pods: 3, old: makePG(testPG, 3), new: makePG(testPG, 4),
			want:      rejected,
			wantMsg:   "minMember changed from 3 to 4; only 3 pods exist",
			wantEvent: "Warning GangRejected minMember changed from 3 to 4; only 3 pods exist; released 2 waiting member(s)",
		},
		{
			name: "minMember raised within the pods that exist",
			pods: 4, old: makePG(testPG, 3), new: makePG(testPG, 4),
			want: untouched,
		},
		{
			name: "minMember unchanged",
			pods: 3, old: makePG(testPG, 3, withTimeout(10)), new: makePG(testPG, 3, withTimeout(20)),
			want: untouched,
		},
		{
			name: "another group changes",
			pods: 3, old: makePG("other", 3), new: makePG("other", 1),
			want: untouched,
		},
		{
			name: "nobody holds a reservation",
			pods: 3, old: makePG(testPG, 3), new: makePG(testPG, 1),
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
			})
		}
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
			if tt.want == rejected {
				e.deletePodGroup(pg)
			}
			e.pl.onPodGroupDelete(tt.deleted)
			checkParked(t, e, pods[:2], tt.want, "PodGroup ns/pg was deleted")
			if got := e.pl.groups.reservedCount(testKey) > 0; got != tt.wantGroup {
				t.Errorf("group still tracked: got %v, want %v", got, tt.wantGroup)
			}
		})
	}
}

// TestOnPodGroupDeleteThenUnreserve follows the rejected members of a
// deleted PodGroup through their Unreserve: the group was forgotten and
// should stay forgotten.
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
		e.outcome(pod)
		e.unreserve(e.ctx, pod, "node1")
	}
	if n := e.pl.groups.size(); n != 0 {
		t.Errorf("BUG: the deleted PodGroup is tracked again after its members' Unreserve (tracked groups: %d, rejectedAt %v): it is never dropped, and a PodGroup re-created under that name starts backing off",
			n, e.pl.groups.rejectedAt(testKey))
	}
	// Each member's Unreserve also counts as a new failed attempt.
	if waiters := e.clock.Waiters(); waiters > 1 {
		t.Errorf("BUG: %d backoff activations scheduled for one deleted group, want at most 1", waiters)
	}
}
