package gang

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	"k8s.io/utils/ptr"
)

// owned gives pod a controller, as a Job or operator would.
func owned(pod *v1.Pod) *v1.Pod {
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "job", UID: "job-uid", Controller: ptr.To(true)}}
	return pod
}

func TestBindFailureAfterAdmission(t *testing.T) {
	tests := []struct {
		name      string
		minMember int32
		// nodeDeleted: the node goes away before the member's bind fails.
		nodeDeleted bool
		pods        func() []*v1.Pod
		wantEvicted []string
		wantEvent   string
	}{
		{
			name:        "siblings with controllers are released so the group retries whole",
			minMember:   3,
			pods:        func() []*v1.Pod { p := members(3, "1"); owned(p[0]); owned(p[1]); owned(p[2]); return p },
			wantEvicted: []string{"m1", "m2"},
			wantEvent:   "Warning GangReleased member ns/m3 failed to bind to node node1 after the group was admitted; releasing 2 bound or admitted sibling(s)",
		},
		{
			name:        "the node deleted first: the release still happens",
			minMember:   3,
			nodeDeleted: true,
			pods:        func() []*v1.Pod { p := members(3, "1"); owned(p[0]); owned(p[1]); owned(p[2]); return p },
			wantEvicted: []string{"m1", "m2"},
			wantEvent:   "Warning GangReleased member ns/m3 failed to bind to node node1 after the group was admitted",
		},
		{
			name:      "bare siblings keep their nodes: deleting them would lose them",
			minMember: 3,
			pods:      func() []*v1.Pod { p := members(3, "1"); owned(p[0]); return p },
			wantEvent: "Warning GangBindFailed member ns/m3 failed to bind to node node1 after the group was admitted; 2 sibling(s) keep their nodes because no controller would recreate them ([m2])",
		},
		{
			name:      "the group keeps its quorum without the member: nothing to release",
			minMember: 2,
			pods:      func() []*v1.Pod { p := members(3, "1"); owned(p[0]); owned(p[1]); owned(p[2]); return p },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			evicted := e.recordEvictions()
			e.addPodGroups(makePG(testPG, tc.minMember))
			pods := tc.pods()
			e.addPods(pods...)
			// All three reach Permit; the quorum lets the waiting ones go.
			for _, p := range pods {
				e.reserveAndPermit(p, "node1")
			}
			for _, p := range pods[:tc.minMember-1] {
				if s := e.outcome(p); !s.IsSuccess() {
					t.Fatalf("%s not allowed: %v", p.Name, s)
				}
			}
			e.events()
			if tc.nodeDeleted {
				e.pl.onNodeDelete(st.MakeNode().Name("node1").Obj())
			}
			// m3's binding fails; the framework unreserves it.
			e.unreserve(e.ctx, pods[2], "node1")
			if len(tc.wantEvicted) > 0 {
				if err := wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, outcomeTimeout, true, func(_ context.Context) (bool, error) {
					return len(evicted()) == len(tc.wantEvicted), nil
				}); err != nil {
					t.Fatalf("evicted %v, want %v", evicted(), tc.wantEvicted)
				}
			} else {
				time.Sleep(50 * time.Millisecond)
			}
			if diff := cmp.Diff(tc.wantEvicted, evicted(), cmpEmptyStrings); diff != "" {
				t.Errorf("evicted (-want +got):\n%s", diff)
			}
			var got []string
			for _, ev := range e.events() {
				if tc.nodeDeleted && strings.Contains(ev, "GangRejected") {
					continue
				}
				if strings.Contains(ev, "GangReleased") || strings.Contains(ev, "GangBindFailed") {
					got = append(got, ev)
				}
			}
			switch {
			case tc.wantEvent == "" && len(got) != 0:
				t.Errorf("unexpected events %q", got)
			case tc.wantEvent != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.wantEvent)):
				t.Errorf("events %q, want one starting %q", got, tc.wantEvent)
			}
			// A released group backs off before it is admitted again: a
			// binding refused for good would otherwise cycle it through
			// partly bound as fast as its controller recreates members.
			_, _, backingOff := e.pl.groups.backingOff(testKey, e.pl.clock.Now())
			if want := len(tc.wantEvicted) > 0; backingOff != want {
				t.Errorf("backing off after the bind failure = %v, want %v", backingOff, want)
			}
			// The siblings' own Unreserve (their cancelled bindings) is
			// not a second failure.
			e.unreserve(e.ctx, pods[1], "node1")
			if _, again := e.pl.groups.admittedSiblings(testKey, pods[0].UID); again {
				t.Errorf("a second member's Unreserve is treated as another bind failure")
			}
		})
	}
}

// TestTombstoneOfABindingMember (review F7): the informer delivers a
// member's deletion as a tombstone while its binding cycle may still run. Its
// reservation must stay until its Unreserve: that Unreserve is the bind
// failure that releases the sibling already bound, and without the
// reservation it would be taken for a stale member's and the sibling would
// run alone. A member whose cycle is over (bound while the watch was away)
// gets no Unreserve: its reservation goes after tombstoneGrace.
func TestTombstoneOfABindingMember(t *testing.T) {
	tests := []struct {
		name string
		// inPreBind: the framework lists it in PreBind; otherwise it may be
		// in its Bind call, or done.
		inPreBind bool
		// bindFails: its Unreserve comes; otherwise nothing more comes.
		bindFails   bool
		wantEvicted []string
	}{
		{name: "in PreBind: its Unreserve releases the bound sibling", inPreBind: true, bindFails: true, wantEvicted: []string{"m1"}},
		{name: "in its Bind call: its Unreserve releases the bound sibling", bindFails: true, wantEvicted: []string{"m1"}},
		{name: "cycle over: the reservation goes after the grace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			evicted := e.recordEvictions()
			pods := e.ownedPair()
			e.park("node1", pods[0])
			if s, _ := e.reserveAndPermit(pods[1], "node1"); !s.IsSuccess() {
				t.Fatalf("Permit %s: %v, want the quorum admitted", pods[1].Name, s)
			}
			if s := e.outcome(pods[0]); !s.IsSuccess() {
				t.Fatalf("%s not allowed: %v", pods[0].Name, s)
			}
			e.informerBind(pods[0], "node1")
			if tc.inPreBind {
				e.fh.AddPodInPreBind(pods[1].UID, func(error) {})
			}
			e.deletePod(pods[1])
			e.pl.onPodDelete(cache.DeletedFinalStateUnknown{Key: "ns/m2", Obj: pods[1]})
			if n := e.pl.groups.reservedCount(testKey); n != 1 {
				t.Fatalf("%d reservations right after the tombstone, want m2's", n)
			}
			if !tc.bindFails {
				e.clock.Step(tombstoneGrace)
				if err := wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, outcomeTimeout, true, func(_ context.Context) (bool, error) {
					return e.pl.groups.reservedCount(testKey) == 0, nil
				}); err != nil {
					t.Errorf("m2's reservation outlived the grace after its tombstone")
				}
				return
			}
			e.fh.RemovePodInPreBind(pods[1].UID)
			// Its binding fails: the pod is gone.
			e.unreserve(e.ctx, pods[1], "node1")
			expectEvicted(t, evicted, tc.wantEvicted, "the sibling runs without its group")
		})
	}
}

// TestBindFailureReleasesMembersBoundBefore: a member bound before the
// attempt (recreated and bound while its group still ran) is part of what
// stays bound when the member admitted next fails to bind; below the quorum
// it is released too, or the group would run partly bound while the refusal
// lasts (make soak-invariants, seed 413156424).
func TestBindFailureReleasesMembersBoundBefore(t *testing.T) {
	e := newTestEnv(t)
	evicted := e.recordEvictions()
	pods := e.ownedPair()
	e.informerBind(pods[0], "node1")
	if s, _ := e.reserveAndPermit(pods[1], "node1"); !s.IsSuccess() {
		t.Fatalf("Permit %s: %v, want admitted with its bound sibling", pods[1].Name, s)
	}
	e.unreserve(e.ctx, pods[1], "node1")
	expectEvicted(t, evicted, []string{"m1"}, "it runs alone below the quorum")
}

// expectEvicted waits until want were evicted, and fails with why if not.
func expectEvicted(t *testing.T, evicted func() []string, want []string, why string) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, outcomeTimeout, true, func(context.Context) (bool, error) {
		return len(evicted()) == len(want), nil
	}); err != nil {
		t.Fatalf("evicted %v, want %v: %s", evicted(), want, why)
	}
	if diff := cmp.Diff(want, evicted()); diff != "" {
		t.Errorf("evicted (-want +got):\n%s", diff)
	}
}

// ownedPair adds testPG with minMember 2 and two members owned by a
// controller, through the informer.
func (e *testEnv) ownedPair() []*v1.Pod {
	e.addPodGroups(makePG(testPG, 2))
	pods := members(2, "1")
	owned(pods[0])
	owned(pods[1])
	e.informerAdd(pods...)
	return pods
}

// TestLaterBindFailureOfAnAdmittedSibling: the first member to fail finds
// the group at its quorum with a sibling still binding, so nothing is
// released; when that sibling's binding fails too, the group is below its
// quorum with a member bound, and that member must be released. Before, the
// first failure ended the admission, the second was taken for an ordinary
// member's failure, and the bound member ran alone while the refusals lasted
// (make soak-invariants, seed 31337001: g808, minMember 2, two bindings
// refused for good).
func TestLaterBindFailureOfAnAdmittedSibling(t *testing.T) {
	e := newTestEnv(t)
	evicted := e.recordEvictions()
	e.addPodGroups(makePG(testPG, 2))
	pods := members(3, "1")
	for _, p := range pods {
		owned(p)
	}
	e.addPods(pods...)
	for _, p := range pods {
		e.reserveAndPermit(p, "node1")
	}
	if s := e.outcome(pods[0]); !s.IsSuccess() {
		t.Fatalf("%s not allowed: %v", pods[0].Name, s)
	}
	e.informerBind(pods[0], "node1")
	// m3 fails: m1 bound and m2 still binding make the quorum of 2.
	e.unreserve(e.ctx, pods[2], "node1")
	time.Sleep(50 * time.Millisecond)
	if got := evicted(); len(got) != 0 {
		t.Fatalf("evicted %v while the group still held its quorum", got)
	}
	// m2 fails as well: m1 is bound alone.
	e.unreserve(e.ctx, pods[1], "node1")
	expectEvicted(t, evicted, []string{"m1"}, "the bound member runs without its group")
	var released []string
	for _, ev := range e.events() {
		if strings.Contains(ev, "GangReleased") {
			released = append(released, ev)
		}
	}
	if len(released) != 1 || !strings.Contains(released[0], "member ns/m2 failed to bind") {
		t.Errorf("events %q, want one GangReleased for m2's failure", released)
	}
}
