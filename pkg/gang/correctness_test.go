package gang

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/legacyregistry"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/placement"
	"github.com/cosched/cosched/pkg/podgroup"
)

// The paths of issue 12 (R1, R2, R3, R5) through the plugin's real
// extension points and handlers. docs/design.md names the invariant each
// one protects.

// TestJoinerBindFailureLeavesNoReservation is R1: a member that joins a
// group that already runs reserves a node, and Permit lets it through
// without an admission. If its binding then fails, its reservation must go:
// kept, it counts toward the quorum of a later attempt although the member
// is pending again, and that attempt is admitted below minMember.
func TestJoinerBindFailureLeavesNoReservation(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(5, "") // m1..m5
	e.addPods(pods[:4]...)

	// m1..m3 are admitted and bound: the group runs.
	e.park("node1", pods[0], pods[1])
	if s, _ := e.reserveAndPermit(pods[2], "node1"); !s.IsSuccess() {
		t.Fatalf("Permit m3: %v, want the group admitted", s)
	}
	for _, p := range pods[:3] {
		e.informerBind(p, "node1")
	}
	// m4 joins the running group; its binding fails.
	if s, _ := e.reserveAndPermit(pods[3], "node1"); !s.IsSuccess() {
		t.Fatalf("Permit m4: %v, want it to join the running group", s)
	}
	e.unreserve(e.ctx, pods[3], "node1")
	if got := reservedUIDs(e.pl.groups, testKey); got != nil {
		t.Errorf("reservations after m4's failed bind: %v, want none (m4 is pending again)", got)
	}

	// m5 arrives, then two running members go: m3 runs, m4 and m5 pend.
	e.informerAdd(pods[4])
	e.informerDelete(assumed(pods[0], "node1"))
	e.informerDelete(assumed(pods[1], "node1"))

	// m5 finds a node: m3 bound and m5 reserved are 2 of 3.
	s, _ := e.reserveAndPermit(pods[4], "node1")
	assertStatus(t, s, fwk.Wait, "2/3 members")
	if s.IsSuccess() {
		t.Errorf("m5 was let go to bind with only m3 bound: the group would run 2 of its minMember 3 (m4's stale reservation counted)")
	}
}

// TestAdmissionNearTheFirstWaitersTimeout is R3: every member's Permit
// timer starts at its own Permit, so the first waiter's fires first. When
// the quorum is reached just as it fires, the timer can reject the first
// waiter before the admission's Allow reaches it; the others are let go and
// the first waiter's Unreserve looks like a bind failure after admission,
// which leaves bare pods partly bound. No attempt is admitted that close to
// its deadline: the first waiter's timer ends it as a timeout.
func TestAdmissionNearTheFirstWaitersTimeout(t *testing.T) {
	e := newTestEnv(t)
	// One second: the framework's timer of m1 runs in real time.
	e.addPodGroups(makePG(testPG, 2, withTimeout(1)))
	pods := members(2, "1") // bare pods: no controller to recreate them
	e.addPods(pods...)
	e.park("node1", pods[0])

	// m2 reserves its node...
	state := framework.NewCycleState()
	m2 := assumed(pods[1], "node1")
	if s := e.fh.RunReservePluginsReserve(e.ctx, state, m2, "node1"); !s.IsSuccess() {
		t.Fatalf("Reserve m2: %v", s)
	}
	// ...and reaches Permit as m1's wait runs out; m1's timer fires first.
	e.clock.Step(time.Second)
	assertStatus(t, e.outcome(pods[0]), fwk.Unschedulable, "timeout")
	waits, s := e.fh.RunPermitPlugins(e.ctx, state, m2, "node1")
	if s.IsSuccess() {
		t.Errorf("m2 was let go to bind although m1, its only sibling, had already timed out at Permit")
	}
	if s.IsWait() {
		e.fh.AddWaitingPod(m2, waits)
		ch := make(chan *fwk.Status, 1)
		e.mu.Lock()
		e.outcomes[m2.UID], e.states[m2.UID] = ch, state
		e.mu.Unlock()
		go func() { ch <- e.fh.WaitOnPermit(e.ctx, m2) }()
	}
	// m1's binding cycle unreserves it: the attempt failed as a timeout.
	e.unreserve(e.ctx, pods[0], "node1")
	if s.IsWait() {
		assertStatus(t, e.outcome(pods[1]), fwk.Unschedulable, "timed out after 1s")
	}
	for _, ev := range e.events() {
		if strings.Contains(ev, "GangBindFailed") || strings.Contains(ev, "GangReleased") {
			t.Errorf("m1's timeout was taken for a bind failure after admission: %q", ev)
		}
	}
	if got := e.pl.groups.sizes().reservations; got != 0 {
		t.Errorf("reservations left: %d", got)
	}
}

// TestAdmissionBeforeTheTimeout: a quorum reached within the group's
// timeout is admitted, however close to it (the framework's timer runs a
// margin past it).
func TestAdmissionBeforeTheTimeout(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2, withTimeout(10)))
	pods := members(2, "1")
	e.addPods(pods...)
	e.park("node1", pods[0])
	e.clock.Step(9999 * time.Millisecond)
	if s, _ := e.reserveAndPermit(pods[1], "node1"); !s.IsSuccess() {
		t.Errorf("Permit m2 1ms before the timeout: %v, want the group admitted", s)
	}
	if s := e.outcome(pods[0]); !s.IsSuccess() {
		t.Errorf("m1: %v, want allowed", s)
	}
}

// TestMemoryForgottenWhenGone is R5: whatever path a group takes, its entry,
// reservations and releasing members go once its pods or its PodGroup are
// gone.
func TestMemoryForgottenWhenGone(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *testEnv)
	}{
		{
			// Its rejection history served its members' queue order and
			// backoff; without members it serves nothing.
			name: "a group rejected as a whole, then its pods deleted; the PodGroup stays",
			run: func(t *testing.T, e *testEnv) {
				pods := members(2, "4")
				e.informerAdd(pods...)
				if _, s := e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[0], nodesWithCPU("1")); s.Code() != fwk.UnschedulableAndUnresolvable {
					t.Fatalf("PreFilter: %v, want the group turned away", s)
				}
				if e.pl.groups.size() != 1 {
					t.Fatalf("the rejection was not recorded")
				}
				for _, p := range pods {
					e.informerDelete(p)
				}
			},
		},
		{
			// Trace: PreFilter reads the PodGroup; it is deleted and
			// onPodGroupDelete forgets the group; PreFilter, still
			// planning or packing with the object it read, rejects it
			// (escalatedBackoff and reject create the entry again).
			name: "the PodGroup deleted while a member's PreFilter runs",
			run: func(t *testing.T, e *testEnv) {
				pods := members(2, "4")
				e.informerAdd(pods...)
				pg := e.pgObj()
				e.deletePodGroup(pg)
				e.pl.onPodGroupDelete(pg)
				e.pl.rejectGroup(testKey, pg, nil, "no_fit", "2/2 members fit (0 placed, 0 more fit of 2 needed)", false)
			},
		},
		{
			// Trace: Reserve reads the PodGroup; it is deleted and
			// forgotten; Reserve records the reservation; Permit finds
			// no PodGroup and rejects; Unreserve fails the "attempt".
			name: "a member reserves just after its PodGroup was deleted",
			run: func(t *testing.T, e *testEnv) {
				pods := members(2, "1")
				e.informerAdd(pods...)
				pg := e.pgObj()
				e.deletePodGroup(pg)
				e.pl.onPodGroupDelete(pg)
				e.pl.groups.reserve(testKey, pods[0].UID, "node1", e.clock.Now())
				state := framework.NewCycleState()
				if _, s := e.fh.RunPermitPlugins(e.ctx, state, assumed(pods[0], "node1"), "node1"); s.IsSuccess() || s.IsWait() {
					t.Fatalf("Permit without a PodGroup: %v", s)
				}
				e.unreserve(e.ctx, pods[0], "node1")
			},
		},
		{
			// Trace: the watch was away while the joiner bound and was
			// deleted; the informer delivers a tombstone with the last
			// state it saw (unbound). No Unreserve comes: the bind
			// succeeded.
			name: "a joiner bound and deleted while the watch was away (tombstone)",
			run: func(t *testing.T, e *testEnv) {
				e.addPodGroups(makePG("running", 1))
				joiner := member("j", "running").Obj()
				e.informerAdd(member("r", "running").Node("node1").Obj(), joiner)
				if s, _ := e.reserveAndPermit(joiner, "node1"); !s.IsSuccess() {
					t.Fatalf("Permit: %v, want the joiner let through", s)
				}
				e.deletePod(joiner)
				e.pl.onPodDelete(cache.DeletedFinalStateUnknown{Key: "ns/j", Obj: joiner})
				e.informerDelete(member("r", "running").Node("node1").Obj())
				// Its bind might still fail: the reservation waits out
				// the grace (settleAfterBind), then goes.
				e.clock.Step(tombstoneGrace)
				if err := wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, outcomeTimeout, true, func(context.Context) (bool, error) {
					return e.pl.groups.size() == 0, nil
				}); err != nil {
					t.Errorf("the joiner's reservation outlived the grace")
				}
			},
		},
		{
			// Cannot leak, recorded for the trace: a released member
			// either waits at Permit (rejected, then unreserved by its
			// binding cycle), sits between Reserve and Permit (Permit
			// finds it stale, the framework unreserves it), or binds
			// (settled). A deletion while it waits is a rejection.
			name: "a released member deleted before its Unreserve",
			run: func(t *testing.T, e *testEnv) {
				e.updatePodGroup(makePG(testPG, 3))
				pods := members(3, "1")
				e.informerAdd(pods...)
				e.park("node1", pods[0], pods[1])
				e.rejectAtPermit(e.ctx, pods[0], "node1", "SomePlugin", "failed")
				e.outcome(pods[1])
				e.informerDelete(pods[1])
				e.unreserve(e.ctx, pods[1], "node1")
				e.informerDelete(pods[0])
				e.informerDelete(pods[2])
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 2))
			tc.run(t, e)
			if diff := cmp.Diff(trackerSizes{}, e.pl.groups.sizes(), cmp.AllowUnexported(trackerSizes{})); diff != "" {
				t.Errorf("group memory left (-want +got):\n%s", diff)
			}
		})
	}
}

// pgObj returns testPG as the lister holds it.
func (e *testEnv) pgObj() *schedv1alpha1.PodGroup {
	e.t.Helper()
	ns, name, _ := cache.SplitMetaNamespaceKey(testKey)
	pg, err := e.pl.podGroups.PodGroups(ns).Get(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return pg
}

// TestMemoryGauges reads the gauges the stress test and the operator watch:
// they follow the group memory and are 0 when the workload is gone.
func TestMemoryGauges(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(3, "1")
	e.informerAdd(pods...)
	e.park("node1", pods[0], pods[1])
	e.rejectAtPermit(e.ctx, pods[0], "node1", "SomePlugin", "failed")
	e.outcome(pods[1])
	// m2 is released and not unreserved yet.
	waitGauges(t, map[string]float64{
		"cosched_gang_tracked_groups":    1,
		"cosched_gang_reservations":      0,
		"cosched_gang_releasing_members": 1,
	})
	e.unreserve(e.ctx, pods[1], "node1")
	e.park("node1", pods[1])
	waitGauges(t, map[string]float64{
		"cosched_gang_tracked_groups":    1,
		"cosched_gang_reservations":      1,
		"cosched_gang_releasing_members": 0,
	})
	for _, p := range pods {
		e.informerDelete(p)
	}
	e.unreserve(e.ctx, pods[1], "node1") // the scheduler rejects a deleted waiting pod
	waitGauges(t, map[string]float64{
		"cosched_gang_tracked_groups":    0,
		"cosched_gang_reservations":      0,
		"cosched_gang_releasing_members": 0,
	})
}

// waitGauges waits until the registry reports want (other tests' group
// memories leave the sums when their contexts end, asynchronously).
func waitGauges(t *testing.T, want map[string]float64) {
	t.Helper()
	var got map[string]float64
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, outcomeTimeout, true, func(context.Context) (bool, error) {
		got = map[string]float64{}
		families, err := legacyregistry.DefaultGatherer.Gather()
		if err != nil {
			return false, err
		}
		for _, f := range families {
			if _, ok := want[f.GetName()]; ok && len(f.GetMetric()) == 1 {
				got[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return cmp.Equal(want, got), nil
	})
	if err != nil {
		t.Errorf("gauges: got %v, want %v", got, want)
	}
}

// TestFilterKeepsMembersInPlan is R2's Filter: a planned member passes only
// its planned node, a member the plan does not cover only the planned
// domain, and members of groups without a plan every node. The scheduler
// tries a nominated or hinted node before it narrows to PreFilter's result,
// so the Filter is what holds a member to its plan there (the integration
// test TestAtomicPlacement/…nominated… shows the whole path).
func TestFilterKeepsMembersInPlan(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2), makePG("free", 1))
	pods := members(3, "1")
	e.informerAdd(pods...)
	free := member("f", "free").Obj()
	e.informerAdd(free)
	nodes := nodesWithCPU("4", "4", "4") // node1..node3
	e.setCluster(nil, []*v1.Node{nodes[0].Node(), nodes[1].Node(), nodes[2].Node()})
	// An attempt in flight: m3 holds node1, and the plan puts m1 there too;
	// m2 is not in the plan, which covers node1 and node2.
	e.pl.groups.reserve(testKey, "m3", "node1", e.clock.Now())
	e.pl.groups.setPlan(testKey, &placement.Plan{Domain: "rack-a", Nodes: map[string]string{"m1": "node1", "m3": "node1"}, DomainNodes: []string{"node1", "node2"}}, e.clock.Now())

	tests := []struct {
		pod      *v1.Pod
		wantPass []string
	}{
		{pod: pods[0], wantPass: []string{"node1"}},
		{pod: pods[1], wantPass: []string{"node1", "node2"}},
		{pod: free, wantPass: []string{"node1", "node2", "node3"}},
	}
	for _, tc := range tests {
		t.Run(tc.pod.Name, func(t *testing.T) {
			state := framework.NewCycleState()
			if _, s, _ := e.fh.RunPreFilterPlugins(e.ctx, state, tc.pod); !s.IsSuccess() {
				t.Fatalf("PreFilter: %v", s)
			}
			checkFilter(t, e, state, tc.pod, nodes, tc.wantPass, "outside the plan of PodGroup ns/pg (domain rack-a)")
		})
	}
}

// checkFilter runs the Filter plugins for pod on every node and compares
// the nodes that pass with wantPass; every other node must be refused as
// unresolvable with wantMsg.
func checkFilter(t *testing.T, e *testEnv, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo, wantPass []string, wantMsg string) {
	t.Helper()
	var pass []string
	for _, ni := range nodes {
		s := e.fh.RunFilterPlugins(e.ctx, state, pod, ni)
		switch {
		case s.IsSuccess():
			pass = append(pass, ni.Node().Name)
		case s.Code() != fwk.UnschedulableAndUnresolvable || !strings.Contains(s.Message(), wantMsg):
			t.Errorf("Filter on %s: %v", ni.Node().Name, s)
		}
	}
	if diff := cmp.Diff(wantPass, pass); diff != "" {
		t.Errorf("nodes passing Filter (-want +got):\n%s", diff)
	}
}

// TestSignPod: members that may be planned are never batched with other
// pods' results, including members whose PodGroup is not known yet (the
// queue signs pods when they are added, not when their PodGroup arrives).
func TestSignPod(t *testing.T) {
	e := newTestEnv(t)
	withKey := makePG("racked", 2)
	withKey.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: "rack"}
	e.addPodGroups(makePG(testPG, 2), withKey)
	tests := []struct {
		name     string
		pod      *v1.Pod
		unsigned bool
	}{
		{name: "plain pod", pod: plain("p").Obj()},
		{name: "member of a group without topology", pod: member("m", testPG).Obj()},
		{name: "member of a planned group", pod: member("r", "racked").Obj(), unsigned: true},
		{name: "member of a PodGroup not known yet", pod: member("u", "unknown").Obj(), unsigned: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, s := e.pl.SignPod(e.ctx, tc.pod)
			if got := !s.IsSuccess(); got != tc.unsigned {
				t.Errorf("SignPod: %v, want unsigned %v", s, tc.unsigned)
			}
		})
	}
}

// TestFilterKeepsJoinersInDomain: a member that joins a topology group
// already placed (no plan: the quorum is bound) stays in its siblings'
// domain; found by TestGangInvariants (a rack gang's extra member bound in
// another rack).
func TestFilterKeepsJoinersInDomain(t *testing.T) {
	racked := makePG("racked", 1)
	racked.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: "rack"}
	tests := []struct {
		name     string
		pg       *schedv1alpha1.PodGroup
		wantPass []string
	}{
		{name: "topology group", pg: racked, wantPass: []string{"node1", "node2"}},
		{name: "group without topology", pg: makePG("racked", 1), wantPass: []string{"node1", "node2", "node3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(tc.pg)
			var nodes []*v1.Node
			for i, rack := range []string{"a", "a", "b"} {
				nodes = append(nodes, st.MakeNode().Name(fmt.Sprintf("node%d", i+1)).Label("rack", rack).
					Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "4", v1.ResourceMemory: "8Gi"}).Obj())
			}
			bound := assumed(member("m1", "racked").Obj(), "node1")
			joiner := member("m2", "racked").Obj()
			e.informerAdd(bound, joiner)
			e.setCluster([]*v1.Pod{bound}, nodes)
			state := framework.NewCycleState()
			res, s, _ := e.fh.RunPreFilterPlugins(e.ctx, state, joiner)
			if !s.IsSuccess() {
				t.Fatalf("PreFilter: %v", s)
			}
			if len(tc.wantPass) < len(nodes) && (res == nil || !res.NodeNames.Equal(sets.New(tc.wantPass...))) {
				t.Errorf("PreFilterResult: got %v, want %v", res, tc.wantPass)
			}
			checkFilter(t, e, state, joiner, tf.BuildNodeInfos(nodes), tc.wantPass, "outside the domain rack=a where PodGroup ns/racked is placed")
		})
	}
}

// TestDeletedMemberNeverCountsTowardQuorum: a member deleted after it
// reserved keeps its reservation until its Unreserve, which may come only
// after its own Permit wait (deleted before the framework registered it as
// waiting); meanwhile it must not complete a quorum (found in review: the
// siblings would be admitted, its bind would fail, and bare siblings would
// stay bound below minMember).
func TestDeletedMemberNeverCountsTowardQuorum(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(4, "1")
	e.informerAdd(pods...)
	e.park("node1", pods[0], pods[1])
	e.informerDelete(pods[1]) // 3 pods remain: the quorum is still possible
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Fatalf("unexpected rejection: %q", evs)
	}
	s, _ := e.reserveAndPermit(pods[2], "node1")
	if !s.IsWait() {
		t.Fatalf("Permit of m3 with m2 deleted: got %v, want Wait (2/3 live members placed)", s)
	}
	if !e.stillWaiting(pods[0]) {
		t.Errorf("m1 was let go with a deleted member counted toward its quorum")
	}
	if s, _ := e.reserveAndPermit(pods[3], "node1"); !s.IsSuccess() {
		t.Fatalf("Permit of m4 completing the quorum: got %v, want Success", s)
	}
	for _, pod := range []*v1.Pod{pods[0], pods[2]} {
		if s := e.outcome(pod); !s.IsSuccess() {
			t.Errorf("%s: got %v, want admitted", pod.Name, s)
		}
	}
}

// TestAdmissionDeadlineFollowsALoweredTimeout: waiters that arrive after
// the PodGroup's timeout was lowered get shorter Permit timers; the attempt
// stops admitting before the shortest of them fires.
func TestAdmissionDeadlineFollowsALoweredTimeout(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3, withTimeout(60)))
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[0])
	e.updatePodGroup(makePG(testPG, 3, withTimeout(2)))
	e.park("node1", pods[1]) // its timer: 2 s + margin
	e.clock.Step(2 * time.Second)
	s, _ := e.reserveAndPermit(pods[2], "node1")
	if s.IsSuccess() {
		t.Errorf("the group was admitted after m2's timeout, which fires before its Allow could arrive")
	}
}

// TestAdmissionFromAnUpdateReachesALateWaiter: minMember is lowered (the
// informer's goroutine admits the group) just after a member's Permit
// returned Wait and before the framework registered it as waiting; it still
// gets its Allow instead of timing out after its sibling bound.
func TestAdmissionFromAnUpdateReachesALateWaiter(t *testing.T) {
	e := newTestEnv(t)
	pg := makePG(testPG, 3, withTimeout(30))
	e.addPodGroups(pg)
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[0])
	state := framework.NewCycleState()
	m2 := assumed(pods[1], "node1")
	if s := e.fh.RunReservePluginsReserve(e.ctx, state, m2, "node1"); !s.IsSuccess() {
		t.Fatalf("Reserve m2: %v", s)
	}
	waits, s := e.fh.RunPermitPlugins(e.ctx, state, m2, "node1")
	if !s.IsWait() {
		t.Fatalf("Permit m2: %v, want Wait", s)
	}
	lowered := makePG(testPG, 2, withTimeout(30))
	lowered.Generation = pg.Generation + 1
	e.updatePodGroup(lowered)
	e.pl.onPodGroupUpdate(pg, lowered)
	e.fh.AddWaitingPod(m2, waits)
	done := make(chan *fwk.Status, 1)
	go func() { done <- e.fh.WaitOnPermit(e.ctx, m2) }()
	select {
	case s := <-done:
		if !s.IsSuccess() {
			t.Errorf("m2: %v, want allowed", s)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("m2 never got its Allow after the group was admitted")
	}
	if s := e.outcome(pods[0]); !s.IsSuccess() {
		t.Errorf("m1: %v, want allowed", s)
	}
}

// rackedNodes returns nodes labelled rack=<racks[i]> with the given CPUs.
func rackedNodes(racks, cpus []string) []*v1.Node {
	nodes := make([]*v1.Node, len(racks))
	for i := range racks {
		nodes[i] = st.MakeNode().Name(fmt.Sprintf("node%d", i+1)).Label("rack", racks[i]).
			Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpus[i], v1.ResourceMemory: "8Gi", v1.ResourcePods: "110"}).Obj()
	}
	return nodes
}

func rackedPG(name string, minMember int32) *schedv1alpha1.PodGroup {
	pg := makePG(name, minMember)
	pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: "rack"}
	return pg
}

// TestPlanJoinsPlacedMembers: a topology group below its quorum whose
// placed members are still bound (a member was deleted and its controller
// recreated it) plans the rest into the placed members' domain, not into
// whichever domain is tightest; found by make soak-invariants, seed
// 220683943 (g811 whole on two hosts).
func TestPlanJoinsPlacedMembers(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(rackedPG("racked", 2))
	// Rack a is the tighter fit for one member; the placed member is in b.
	nodes := rackedNodes([]string{"a", "b"}, []string{"1", "4"})
	placed := assumed(member("m1", "racked").Req(map[v1.ResourceName]string{v1.ResourceCPU: "1"}).Obj(), "node2")
	recreated := member("m2", "racked").Req(map[v1.ResourceName]string{v1.ResourceCPU: "1"}).Obj()
	e.informerAdd(placed, recreated)
	e.setCluster([]*v1.Pod{placed}, nodes)

	res, s, _ := e.fh.RunPreFilterPlugins(e.ctx, framework.NewCycleState(), recreated)
	if !s.IsSuccess() {
		t.Fatalf("PreFilter: %v", s)
	}
	if res.AllNodes() || !res.NodeNames.Equal(sets.New("node2")) {
		t.Errorf("the recreated member may go to %v, want node2 (rack b, where m1 is)", res)
	}
}

// TestPlacedMembersOnAGoneNode: when every placed member of a topology
// group is on a node that is gone (its pods are about to be deleted), a
// member neither joins "anywhere" nor plans a new domain next to them: it
// waits, with the reason, until they are gone. Seed 220683943's g811: the
// joiner of a group still counted as running went to another host.
func TestPlacedMembersOnAGoneNode(t *testing.T) {
	tests := map[string]struct {
		minMember int32
		// wantRejected: the group is rejected (an attempt that cannot
		// start), rather than only the joiner turned away.
		wantRejected bool
	}{
		// The quorum counts the members on the gone node: m3 joins.
		"joiner": {minMember: 2},
		// Below the quorum: m3 would start an attempt next to them.
		"attempt": {minMember: 3, wantRejected: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(rackedPG("racked", tc.minMember))
			nodes := rackedNodes([]string{"a", "b"}, []string{"4", "4"})
			m1 := assumed(member("m1", "racked").Obj(), "gone-node")
			m2 := assumed(member("m2", "racked").Obj(), "gone-node")
			m3 := member("m3", "racked").Obj()
			e.informerAdd(m1, m2, m3)
			e.setCluster(nil, nodes)

			state := framework.NewCycleState()
			_, s, _ := e.fh.RunPreFilterPlugins(e.ctx, state, m3)
			assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "placed members are on node(s) gone-node, which are gone")
			if got := len(e.gangRejections()) > 0; got != tc.wantRejected {
				t.Errorf("group rejected: %v, want %v", got, tc.wantRejected)
			}
			if _, s := e.pl.PostFilter(e.ctx, state, m3, nil); s.IsSuccess() {
				t.Errorf("PostFilter let m3 through: %v", s)
			}
			if got := e.pl.groups.planOf(podgroup.Key(testNS, "racked")); got != nil {
				t.Errorf("a plan was made next to members on a gone node: %+v", got)
			}
		})
	}
}

// TestMemoryGaugesAfterStop: a stopped scheduler takes its share of the
// gauges back once; what its handlers and timers still do afterwards moves
// nothing (a restarted scheduler drove them below zero).
func TestMemoryGaugesAfterStop(t *testing.T) {
	registerMetrics()
	zero := map[string]float64{"cosched_gang_tracked_groups": 0, "cosched_gang_reservations": 0, "cosched_gang_releasing_members": 0}
	waitGauges(t, zero)
	ctx, stop := context.WithCancel(context.Background())
	tr := newGroupTracker()
	reportWhileRunning(ctx, tr)
	tr.reserve(testKey, "a", "node1", baseTime)
	waitGauges(t, map[string]float64{"cosched_gang_tracked_groups": 1, "cosched_gang_reservations": 1, "cosched_gang_releasing_members": 0})
	stop()
	waitGauges(t, zero)
	tr.settled(testKey, "a")
	waitGauges(t, zero)
}
