package gang

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/cosched/cosched/pkg/podgroup"
)

// TestMemberIndex drives the index through the informer handlers, as the
// pod cache changes, and checks the counts the extension points read.
func TestMemberIndex(t *testing.T) {
	wrap := func(p *v1.Pod) *st.PodWrapper { return &st.PodWrapper{Pod: *p.DeepCopy()} }
	deleting := func(p *v1.Pod) *v1.Pod { return wrap(p).Terminating().Obj() }
	bound := func(p *v1.Pod) *v1.Pod { return wrap(p).Node("node1").Obj() }
	a, b, c := member("a", testPG).Obj(), member("b", testPG).Obj(), member("c", testPG).Obj()
	type counts struct{ All, Live, Bound, PendingReserved int }
	tests := []struct {
		name string
		// run calls the handlers; reserved are the group's reservations.
		run      func(e *testEnv)
		reserved []types.UID
		want     counts
	}{
		{
			name: "added members are live and pending",
			run:  func(e *testEnv) { e.informerAdd(a, b, c) },
			want: counts{All: 3, Live: 3},
		},
		{
			name:     "a bound member counts as bound, not as a pending reservation",
			run:      func(e *testEnv) { e.informerAdd(a, b, c); e.informerBind(a, "node1") },
			reserved: []types.UID{"a", "b"},
			want:     counts{All: 3, Live: 3, Bound: 1, PendingReserved: 1},
		},
		{
			name: "a member being deleted counts for nothing but is still there",
			run: func(e *testEnv) {
				e.informerAdd(a, bound(b))
				e.updatePodThroughInformer(b, deleting(bound(b)))
			},
			reserved: []types.UID{"b"},
			want:     counts{All: 2, Live: 1},
		},
		{
			name:     "a deleted member is gone; its reservation counts for nothing",
			run:      func(e *testEnv) { e.informerAdd(a, b); e.informerDelete(b) },
			reserved: []types.UID{"a", "b"},
			want:     counts{All: 1, Live: 1, PendingReserved: 1},
		},
		{
			name: "a member relabeled into another group leaves this one",
			run: func(e *testEnv) {
				e.informerAdd(a, b)
				e.updatePodThroughInformer(b, wrap(b).Label(podgroup.Label, "other").Obj())
			},
			want: counts{All: 1, Live: 1},
		},
		{
			name: "an unbound member bound twice (a resync) is counted once",
			run: func(e *testEnv) {
				e.informerAdd(a)
				e.informerBind(a, "node1")
				e.updatePodThroughInformer(bound(a), bound(a))
			},
			want: counts{All: 1, Live: 1, Bound: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			tc.run(e)
			reserved := map[types.UID]reservation{}
			for _, uid := range tc.reserved {
				reserved[uid] = reservation{node: "node1"}
			}
			var got counts
			e.pl.groups.read(testKey, func(g *groupState) {
				got.All, got.Live, got.Bound = len(g.members.pods), g.members.live, g.members.bound
				_, got.PendingReserved = g.members.placed(reserved, "")
			})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMemberIndexForgetsEmptyGroups: the group memory forgets a group
// without attempts or history once it has no pods.
func TestMemberIndexForgetsEmptyGroups(t *testing.T) {
	e := newTestEnv(t)
	pods := members(3, "1")
	e.informerAdd(pods...)
	for _, p := range pods {
		e.informerDelete(p)
	}
	if e.pl.groups.has(testKey) {
		t.Error("the group memory holds the group after every member was deleted")
	}
}

// TestMemberIndexTrailsTheCache: the index is kept by the plugin's own
// informer handler, which may run a moment after the pod cache changed.
// Counting must never admit on what the index has not caught up with, and
// before the handler has seen the informer's first list the cache is
// counted instead.
func TestMemberIndexTrailsTheCache(t *testing.T) {
	t.Run("a member deleted from the cache, not yet from the index, completes no quorum", func(t *testing.T) {
		e := newTestEnv(t)
		e.addPodGroups(makePG(testPG, 3))
		pods := members(3, "1")
		e.informerAdd(pods...)
		e.park("node1", pods[0], pods[1])
		// m2 is deleted outright (unbound pods have no grace); the
		// plugin's handler has not run yet.
		if err := e.pl.pods.Delete(pods[1]); err != nil {
			t.Fatal(err)
		}
		if s, _ := e.reserveAndPermit(pods[2], "node1"); !s.IsWait() {
			t.Errorf("Permit m3: %v, want Wait: only m1 and m3 exist", s)
		}
	})
	t.Run("before the handler saw the first list, the cache is counted", func(t *testing.T) {
		e := newTestEnv(t)
		e.pl.groups.setSynced(func() bool { return false })
		e.addPodGroups(makePG(testPG, 2))
		pods := members(2, "1")
		for _, p := range pods {
			// In the cache; the handler has not run.
			if err := e.pl.pods.Add(p); err != nil {
				t.Fatal(err)
			}
		}
		if c := e.pl.countMembers(testKey, nil, false); c.live != 2 {
			t.Errorf("live = %d, want 2 from the pod cache", c.live)
		}
		e.park("node1", pods[0])
		if s, _ := e.reserveAndPermit(pods[1], "node1"); !s.IsSuccess() {
			t.Errorf("Permit m2: %v, want the group admitted", s)
		}
	})
}
