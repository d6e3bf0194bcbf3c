package gang

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
)

func TestReserve(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	pods := members(2, "")
	e.addPods(pods...)
	other := plain("p").Obj()
	e.addPods(other)
	for _, pod := range []*v1.Pod{pods[0], other} {
		if s := e.pl.Reserve(e.ctx, framework.NewCycleState(), assumed(pod, "node1"), "node1"); !s.IsSuccess() {
			t.Fatalf("Reserve %s: %v", pod.Name, s)
		}
	}
	want := map[string]string{"m1": "node1"}
	got := map[string]string{}
	for uid, node := range e.pl.groups.reservedMembers(testKey) {
		got[string(uid)] = node
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reservations (-want +got):\n%s", diff)
	}
	if n := e.pl.groups.size(); n != 1 {
		t.Errorf("tracked groups: got %d, want 1 (a pod outside any group is not tracked)", n)
	}
}

func TestPermit(t *testing.T) {
	m := func(name string) *v1.Pod { return member(name, testPG).Obj() }
	tests := []struct {
		name      string
		args      func(*config.CoschedGangArgs)
		podGroups []*schedv1alpha1.PodGroup
		informer  []*v1.Pod
		// before are members that reserve (without Permit) before pod does.
		before   []string
		pod      *v1.Pod
		wantCode fwk.Code
		wantMsg  []string
		wantWait time.Duration
	}{
		{
			name:     "pod outside any group",
			informer: []*v1.Pod{plain("p").Obj()},
			pod:      plain("p").Obj(),
			wantCode: fwk.Success,
		},
		{
			name:     "PodGroup deleted",
			informer: []*v1.Pod{m("m1")},
			pod:      m("m1"),
			wantCode: fwk.Unschedulable,
			wantMsg:  []string{"PodGroup ns/pg was deleted"},
		},
		{
			name:      "first member waits for the PodGroup's scheduleTimeoutSeconds",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3, withTimeout(30))},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			pod:       m("m1"),
			wantCode:  fwk.Wait,
			wantMsg:   []string{"waiting for quorum: 1/3 members of PodGroup ns/pg have a place"},
			wantWait:  30 * time.Second,
		},
		{
			name:      "no scheduleTimeoutSeconds: the args' default",
			args:      func(a *config.CoschedGangArgs) { a.PermitWaitingTimeSeconds = new(int64(42)) },
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			pod:       m("m1"),
			wantCode:  fwk.Wait,
			wantWait:  42 * time.Second,
		},
		{
			name:      "zero scheduleTimeoutSeconds: the args' default",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3, withTimeout(0))},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			pod:       m("m1"),
			wantCode:  fwk.Wait,
			wantWait:  60 * time.Second,
		},
		{
			name:      "scheduleTimeoutSeconds above the framework's cap",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3, withTimeout(3600))},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			pod:       m("m1"),
			wantCode:  fwk.Wait,
			wantWait:  15 * time.Minute,
		},
		{
			name:      "second member still short of quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			before:    []string{"m1"},
			pod:       m("m2"),
			wantCode:  fwk.Wait,
			wantMsg:   []string{"2/3 members"},
			wantWait:  time.Minute,
		},
		{
			name:      "quorum member passes",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			before:    []string{"m1", "m2"},
			pod:       m("m3"),
			wantCode:  fwk.Success,
		},
		{
			name:      "bound members count toward quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), member("m2", testPG).Node("node2").Obj(), member("m3", testPG).Node("node3").Obj()},
			pod:       m("m1"),
			wantCode:  fwk.Success,
		},
		{
			name:      "members being deleted do not count",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{m("m1"), member("m2", testPG).Node("node2").Terminating().Obj()},
			pod:       m("m1"),
			wantCode:  fwk.Wait,
			wantMsg:   []string{"1/2 members"},
			wantWait:  time.Minute,
		},
		{
			name:      "extra member after the quorum is bound",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{member("m1", testPG).Node("node1").Obj(), member("m2", testPG).Node("node2").Obj(), m("m3")},
			pod:       m("m3"),
			wantCode:  fwk.Success,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mutate []func(*config.CoschedGangArgs)
			if tt.args != nil {
				mutate = append(mutate, tt.args)
			}
			e := newTestEnv(t, mutate...)
			e.addPodGroups(tt.podGroups...)
			e.addPods(tt.informer...)
			for _, name := range tt.before {
				e.pl.groups.reserve(testKey, typesUID(name), "node1")
			}
			p := assumed(tt.pod, "node1")
			if s := e.pl.Reserve(e.ctx, framework.NewCycleState(), p, "node1"); !s.IsSuccess() {
				t.Fatalf("Reserve: %v", s)
			}
			s, wait := e.pl.Permit(e.ctx, framework.NewCycleState(), p, "node1")
			assertStatus(t, s, tt.wantCode, tt.wantMsg...)
			if wait != tt.wantWait {
				t.Errorf("wait: got %v, want %v", wait, tt.wantWait)
			}
		})
	}
}

// TestPermitQuorumAllowsWaiting runs a three-member group through Reserve
// and Permit: the first two wait, the third lets everyone go.
func TestPermitQuorumAllowsWaiting(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3, withTimeout(30)))
	pods := members(3, "1")
	e.addPods(pods...)

	s, waits := e.reserveAndPermit(pods[0], "node1")
	assertStatus(t, s, fwk.Wait, "waiting for quorum: 1/3")
	if diff := cmp.Diff(map[string]time.Duration{Name: 30 * time.Second}, waits); diff != "" {
		t.Errorf("wait times (-want +got):\n%s", diff)
	}
	// The first waiter pulls its pending siblings into the active queue.
	if diff := cmp.Diff([][]string{{"ns/m2", "ns/m3"}}, e.activator.take()); diff != "" {
		t.Errorf("activations after the first waiter (-want +got):\n%s", diff)
	}
	if got := e.pl.groups.waitingSince(testKey); !got.Equal(baseTime) {
		t.Errorf("waitingSince: got %v, want %v", got, baseTime)
	}

	e.clock.Step(2 * time.Second)
	s, _ = e.reserveAndPermit(pods[1], "node2")
	assertStatus(t, s, fwk.Wait, "waiting for quorum: 2/3")
	if got := e.activator.take(); len(got) != 0 {
		t.Errorf("the second waiter activated %v, want nothing", got)
	}
	if e.fh.GetWaitingPod(pods[0].UID) == nil || e.fh.GetWaitingPod(pods[1].UID) == nil {
		t.Fatal("m1 and m2 should be waiting pods")
	}

	s, _ = e.reserveAndPermit(pods[2], "node3")
	assertStatus(t, s, fwk.Success)
	for _, pod := range pods[:2] {
		if s := e.outcome(pod); !s.IsSuccess() {
			t.Errorf("%s: got %v, want allowed", pod.Name, s)
		}
	}
	if got := e.pl.groups.waitingSince(testKey); !got.IsZero() {
		t.Errorf("waitingSince after admission: got %v, want zero", got)
	}
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Errorf("unexpected rejections: %q", evs)
	}
}

// TestPermitFirstWaiterActivation checks which siblings the first waiter
// activates: pending ones only.
func TestPermitFirstWaiterActivation(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 5))
	e.addPods(
		member("m1", testPG).Obj(),
		member("m2", testPG).Obj(),
		member("bound", testPG).Node("node9").Obj(),
		member("leaving", testPG).Terminating().Obj(),
		member("reserved", testPG).Obj(),
		member("o1", "other").Obj(),
		plain("p").Obj(),
	)
	e.pl.groups.reserve(testKey, "reserved", "node1")
	e.park("node1", member("m1", testPG).Obj())
	if diff := cmp.Diff([][]string{{"ns/m2"}}, e.activator.take()); diff != "" {
		t.Errorf("activations (-want +got):\n%s", diff)
	}
}

// TestUnreserveRejectsGroup: when one waiting member fails (here its Permit
// wait times out), every other waiting member is rejected and the group's
// rejection is announced once.
func TestUnreserveRejectsGroup(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 4))
	pods := members(4, "1")
	e.addPods(pods...)
	e.park("node1", pods[:3]...)
	e.activator.take()

	// m1's wait times out: the framework rejects it, then unreserves it.
	e.clock.Step(time.Minute)
	e.fh.GetWaitingPod(pods[0].UID).Reject(Name, "rejected due to timeout")
	assertStatus(t, e.outcome(pods[0]), fwk.Unschedulable, "timeout")
	e.unreserve(e.ctx, pods[0], "node1")

	for _, pod := range pods[1:3] {
		assertStatus(t, e.outcome(pod), fwk.Unschedulable, "PodGroup ns/pg was rejected as a whole: timed out after 1m0s waiting for quorum with 3 member(s) reserved")
		if e.fh.GetWaitingPod(pod.UID) != nil {
			t.Errorf("%s is still a waiting pod", pod.Name)
		}
	}
	// Their binding cycles unreserve them in turn.
	for _, pod := range pods[1:3] {
		e.unreserve(e.ctx, pod, "node1")
	}
	evs := e.gangRejections()
	if len(evs) != 1 {
		t.Fatalf("got %d GangRejected events, want 1: %q", len(evs), evs)
	}
	if want := "Warning GangRejected timed out after 1m0s waiting for quorum with 3 member(s) reserved; released 2 waiting member(s)"; evs[0] != want {
		t.Errorf("event:\n got %q\nwant %q", evs[0], want)
	}
	if n := e.pl.groups.reservedCount(testKey); n != 0 {
		t.Errorf("reservations left: %d", n)
	}
	if _, left, ok := e.pl.groups.backingOff(testKey, e.clock.Now()); !ok || left != 5*time.Second {
		t.Errorf("backoff: got %v, %v, want 5s", left, ok)
	}

	// The next attempt fails for another reason: reported afresh.
	e.clock.Step(5 * time.Second)
	e.park("node1", pods[1], pods[2])
	e.fh.GetWaitingPod(pods[1].UID).Reject("SomePlugin", "bind failed")
	e.outcome(pods[1])
	e.unreserve(e.ctx, pods[1], "node1")
	assertStatus(t, e.outcome(pods[2]), fwk.Unschedulable, "member ns/m2 failed after reserving node node1")
	e.unreserve(e.ctx, pods[2], "node1")
	evs = e.gangRejections()
	if len(evs) != 1 || !strings.Contains(evs[0], "member ns/m2 failed after reserving node node1; released 1 waiting member(s)") {
		t.Errorf("second attempt: got events %q, want one naming m2's failure", evs)
	}
}

// TestUnreserveIgnoresOthers: Unreserve of a pod outside any group leaves
// the tracker and the waiting members alone.
func TestUnreserveIgnoresOthers(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[0])
	p := plain("p").Obj()
	e.addPods(p)
	e.unreserve(e.ctx, p, "node2")
	if !e.stillWaiting(pods[0]) {
		t.Errorf("m1 no longer waits")
	}
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Errorf("unexpected events %q", evs)
	}
	if _, _, ok := e.pl.groups.backingOff(testKey, e.clock.Now()); ok {
		t.Errorf("group backing off")
	}
}

// TestUnreserveActivatesAfterBackoff: after a rejection at Permit the group's
// pending members are requeued once the backoff ends.
func TestUnreserveActivatesAfterBackoff(t *testing.T) {
	tests := []struct {
		name string
		// cancelCycle cancels Unreserve's context once it returns, as the
		// scheduler does with its per-cycle contexts.
		cancelCycle bool
	}{
		{name: "context still live"},
		{name: "cycle context canceled after Unreserve, as in the scheduler", cancelCycle: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 3))
			pods := members(3, "1")
			e.addPods(pods...)
			e.park("node1", pods[0], pods[1])
			e.activator.take()

			cycleCtx, cancel := context.WithCancel(e.ctx)
			e.fh.GetWaitingPod(pods[0].UID).Reject("SomePlugin", "failed")
			e.outcome(pods[0])
			e.unreserve(cycleCtx, pods[0], "node1")
			if tt.cancelCycle {
				cancel()
			}
			e.outcome(pods[1])
			e.unreserve(e.ctx, pods[1], "node1")

			e.clock.Step(4 * time.Second)
			if got := e.activator.take(); len(got) != 0 {
				t.Errorf("activated %v during the backoff", got)
			}
			e.clock.Step(time.Second)
			want := [][]string{{"ns/m1", "ns/m2", "ns/m3"}}
			if diff := cmp.Diff(want, e.activator.take()); diff != "" {
				prefix := ""
				if tt.cancelCycle {
					prefix = "BUG: activateAfterBackoff checks the Unreserve cycle's context, which the scheduler cancels as soon as the cycle ends; "
				}
				t.Errorf("%sactivations after the backoff (-want +got):\n%s", prefix, diff)
			}
			cancel()
		})
	}
}

func TestPostFilter(t *testing.T) {
	tests := []struct {
		name      string
		podGroups []*schedv1alpha1.PodGroup
		// parked members wait at Permit before pod's PostFilter.
		parked   int
		pod      *v1.Pod
		wantCode fwk.Code
		wantMsg  []string
		// wantEvent is a prefix of the GangRejected event, "" for none.
		wantEvent string
	}{
		{
			name:     "pod outside any group: Unschedulable, so preemption still runs",
			pod:      plain("p").Obj(),
			wantCode: fwk.Unschedulable,
		},
		{
			name:      "member with waiting siblings",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 4)},
			parked:    2,
			pod:       member("m4", testPG).Obj(),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"PodGroup ns/pg: 2/4 members placed; member ns/m4 found no node"},
			wantEvent: "Warning GangRejected 2/4 members placed; member ns/m4 found no node; released 2 waiting member(s)",
		},
		{
			name:      "first member of its group",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 4)},
			pod:       member("m1", testPG).Obj(),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"PodGroup ns/pg: 0/4 members placed; member ns/m1 found no node"},
			wantEvent: "Warning GangRejected 0/4 members placed; member ns/m1 found no node",
		},
		{
			name:     "member of a missing PodGroup",
			pod:      member("m1", testPG).Obj(),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"PodGroup ns/pg: 0/1 members placed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(tt.podGroups...)
			pods := members(4, "1")
			e.addPods(pods...)
			e.addPods(tt.pod)
			e.park("node1", pods[:tt.parked]...)
			res, s := e.pl.PostFilter(e.ctx, framework.NewCycleState(), tt.pod, framework.NewDefaultNodeToStatus())
			if res != nil {
				t.Errorf("PostFilterResult: got %v, want nil", res)
			}
			assertStatus(t, s, tt.wantCode, tt.wantMsg...)
			for _, pod := range pods[:tt.parked] {
				assertStatus(t, e.outcome(pod), fwk.Unschedulable, "PodGroup ns/pg was rejected as a whole")
			}
			evs := e.gangRejections()
			switch {
			case tt.wantEvent == "" && len(evs) != 0:
				t.Errorf("unexpected events %q", evs)
			case tt.wantEvent != "" && (len(evs) != 1 || !strings.HasPrefix(evs[0], tt.wantEvent)):
				t.Errorf("events: got %q, want one starting %q", evs, tt.wantEvent)
			}
		})
	}
}

// TestPostFilterThroughFramework checks the framework stops at the
// plugin's verdict for members (no preemption after it) and goes on for
// other pods.
func TestPostFilterThroughFramework(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	pods := members(2, "1")
	e.addPods(pods...)
	_, s := e.fh.RunPostFilterPlugins(e.ctx, framework.NewCycleState(), pods[0], framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "found no node")
	if s.Plugin() != Name {
		t.Errorf("rejector: got %q, want %q", s.Plugin(), Name)
	}
	_, s = e.fh.RunPostFilterPlugins(e.ctx, framework.NewCycleState(), plain("p").Obj(), framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.Unschedulable)
}

// TestPostBind: once every member of an admitted group is bound the
// tracker forgets the group.
func TestPostBind(t *testing.T) {
	tests := []struct {
		name string
		// rejectFirst fails one attempt (and waits out its backoff) before
		// the group is admitted.
		rejectFirst bool
		// bind is how many of the three members get bound.
		bind      int
		wantSize  int
		wantCount int
	}{
		{name: "all bound", bind: 3, wantSize: 0},
		{name: "all bound after an earlier rejection", rejectFirst: true, bind: 3, wantSize: 0},
		{name: "one still binding", bind: 2, wantSize: 1, wantCount: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 3))
			pods := members(3, "1")
			e.addPods(pods...)
			if tt.rejectFirst {
				e.park("node1", pods[0])
				e.fh.GetWaitingPod(pods[0].UID).Reject("SomePlugin", "failed")
				e.outcome(pods[0])
				e.unreserve(e.ctx, pods[0], "node1")
				e.clock.Step(5 * time.Second)
			}
			e.park("node1", pods[0], pods[1])
			if s, _ := e.reserveAndPermit(pods[2], "node1"); !s.IsSuccess() {
				t.Fatalf("quorum member: %v", s)
			}
			for _, pod := range pods[:tt.bind] {
				e.postBind(pod, "node1")
			}
			if got := e.pl.groups.size(); got != tt.wantSize {
				t.Errorf("tracked groups: got %d, want %d", got, tt.wantSize)
			}
			if got := e.pl.groups.reservedCount(testKey); got != tt.wantCount {
				t.Errorf("reservations: got %d, want %d", got, tt.wantCount)
			}
			if !e.pl.groups.rejectedAt(testKey).IsZero() {
				t.Errorf("rejectedAt not cleared by the admission")
			}
		})
	}
}

// TestPostBindIgnoresOthers: PostBind of a pod outside any group tracks
// nothing.
func TestPostBindIgnoresOthers(t *testing.T) {
	e := newTestEnv(t)
	e.postBind(plain("p").Obj(), "node1")
	if got := e.pl.groups.size(); got != 0 {
		t.Errorf("tracked groups: got %d, want 0", got)
	}
}

// TestPermitCountsRejectedReservations: once the group's attempt has failed,
// the members it rejected still hold their reservations until their binding
// cycles run Unreserve, which the scheduler does concurrently with the next
// scheduling cycles. A sibling scheduled in that window must not count them
// toward the quorum: it would be admitted alone while the rest of the group
// is being released.
func TestPermitCountsRejectedReservations(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(4, "1")
	e.addPods(pods...)
	e.park("node1", pods[0], pods[1])

	// m3 finds no node: the attempt fails and m1, m2 are rejected.
	_, s := e.pl.PostFilter(e.ctx, framework.NewCycleState(), pods[2], framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable)
	for _, pod := range pods[:2] {
		assertStatus(t, e.outcome(pod), fwk.Unschedulable, "rejected as a whole")
	}
	// Before their binding cycles unreserve them, m4's scheduling cycle runs.
	_, s = e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[3], nodesWithCPU("4"))
	if s.IsSuccess() {
		t.Errorf("BUG: PreFilter let m4 start while its group's attempt was failing (no backoff, no fit check)")
	}
	s, _ = e.reserveAndPermit(pods[3], "node2")
	if s.IsSuccess() {
		t.Errorf("BUG: Permit admitted m4 alone, counting the reservations of rejected m1 and m2 toward quorum 3")
	}
}

// TestPermitAfterSiblingsBound: members that PostBind already forgot but
// that the pod informer does not show as bound yet must still count.
func TestPermitAfterSiblingsBound(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[0])
	if s, _ := e.reserveAndPermit(pods[1], "node1"); !s.IsSuccess() {
		t.Fatalf("quorum member: %v", s)
	}
	e.postBind(pods[0], "node1")
	e.postBind(pods[1], "node1")
	// The informer has not delivered the bound pods yet.
	s, _ := e.reserveAndPermit(pods[2], "node1")
	if s.IsSuccess() {
		return
	}
	t.Errorf("BUG: extra member after a bound quorum got %v %q, want Success: PostBind dropped the reservations before the informer shows NodeName, so the quorum is not counted and the member waits out its whole timeout", s.Code(), s.Message())
	// Once the informer catches up, the member passes on its next try.
	for _, pod := range pods[:2] {
		e.updatePod(assumed(pod, "node1"))
	}
	e.fh.GetWaitingPod(pods[2].UID).Reject("test", "retry")
	e.outcome(pods[2])
	e.unreserve(e.ctx, pods[2], "node1")
	e.clock.Step(time.Minute)
	if s, _ := e.pl.Permit(e.ctx, framework.NewCycleState(), assumed(pods[2], "node1"), "node1"); !s.IsSuccess() {
		t.Errorf("with the informer caught up: got %v %q, want Success", s.Code(), s.Message())
	}
}
