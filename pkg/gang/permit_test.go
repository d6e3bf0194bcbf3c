package gang

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
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
	bound := func(name, node string) *v1.Pod { return member(name, testPG).Node(node).Obj() }
	tests := []struct {
		name      string
		args      func(*config.CoschedGangArgs)
		podGroups []*schedv1alpha1.PodGroup
		informer  []*v1.Pod
		// before are members that reserve (without Permit) before pod does.
		before []string
		// released are members that reserved and were then rejected with
		// their group, and have not run Unreserve yet.
		released []string
		pod      *v1.Pod
		wantCode fwk.Code
		wantMsg  []string
		wantWait time.Duration
		// wantAdmitted: the call admits the group (an attempt reached its
		// quorum), as opposed to letting a member join a running group.
		wantAdmitted bool
	}{
		{
			name:     "pod outside any group",
			informer: []*v1.Pod{plain("p").Obj()},
			pod:      plain("p").Obj(),
			wantCode: fwk.Success,
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
			name:         "quorum member passes and admits the group",
			podGroups:    []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:     []*v1.Pod{m("m1"), m("m2"), m("m3")},
			before:       []string{"m1", "m2"},
			pod:          m("m3"),
			wantCode:     fwk.Success,
			wantAdmitted: true,
		},
		{
			name:         "bound members count toward quorum",
			podGroups:    []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:     []*v1.Pod{m("m1"), bound("m2", "node2"), bound("m3", "node3")},
			pod:          m("m1"),
			wantCode:     fwk.Success,
			wantAdmitted: true,
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
			name:      "extra member after the quorum is bound joins without an admission",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{bound("m1", "node1"), bound("m2", "node2"), m("m3")},
			pod:       m("m3"),
			wantCode:  fwk.Success,
		},
		{
			name:      "extra member joins a bound quorum while others are still reserved",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{bound("m1", "node1"), bound("m2", "node2"), m("m3"), m("m4")},
			before:    []string{"m3"},
			pod:       m("m4"),
			wantCode:  fwk.Success,
		},
		{
			name:         "a terminating bound member is not part of the bound quorum",
			podGroups:    []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:     []*v1.Pod{bound("m1", "node1"), member("m2", testPG).Node("node2").Terminating().Obj(), m("m3")},
			pod:          m("m3"),
			wantCode:     fwk.Success,
			wantAdmitted: true,
		},
		{
			name:      "a bound quorum is needed in full: one short means waiting",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{bound("m1", "node1"), m("m2"), m("m3")},
			pod:       m("m3"),
			wantCode:  fwk.Wait,
			wantMsg:   []string{"2/3 members"},
			wantWait:  time.Minute,
		},
		{
			// Regression: reservations of a rejected attempt admitted a
			// member arriving right after the rejection.
			name:      "reservations of a rejected attempt do not count",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			released:  []string{"m1", "m2"},
			pod:       m("m3"),
			wantCode:  fwk.Wait,
			wantMsg:   []string{"1/3 members"},
			wantWait:  time.Minute,
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
			for _, name := range tt.released {
				e.pl.groups.reserve(testKey, typesUID(name), "node1", e.clock.Now())
			}
			if len(tt.released) > 0 {
				e.pl.groups.reject(testKey, "earlier failure", phaseBackingOff, e.clock.Now(), 0)
			}
			for _, name := range tt.before {
				e.pl.groups.reserve(testKey, typesUID(name), "node1", e.clock.Now())
			}
			p := assumed(tt.pod, "node1")
			if s := e.pl.Reserve(e.ctx, framework.NewCycleState(), p, "node1"); !s.IsSuccess() {
				t.Fatalf("Reserve: %v", s)
			}
			before := admissions(t)
			s, wait := e.pl.Permit(e.ctx, framework.NewCycleState(), p, "node1")
			assertStatus(t, s, tt.wantCode, tt.wantMsg...)
			// The framework's timer runs admitMargin past the group's
			// timeout (permitTimer), within the framework's cap.
			if want := permitTimer(tt.wantWait); tt.wantWait != 0 && wait != want {
				t.Errorf("wait: got %v, want %v (timeout %v)", wait, want, tt.wantWait)
			} else if tt.wantWait == 0 && wait != 0 {
				t.Errorf("wait: got %v, want 0", wait)
			}
			if got := admissions(t) - before; got != map[bool]float64{true: 1}[tt.wantAdmitted] {
				t.Errorf("admissions counted: got %v, want admitted %v", got, tt.wantAdmitted)
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
	admittedBefore := admissions(t)

	s, waits := e.reserveAndPermit(pods[0], "node1")
	assertStatus(t, s, fwk.Wait, "waiting for quorum: 1/3")
	if diff := cmp.Diff(map[string]time.Duration{Name: 31 * time.Second}, waits); diff != "" { // 30 s + admitMargin
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
	if got := admissions(t) - admittedBefore; got != 1 {
		t.Errorf("admissions counted: got %v, want 1", got)
	}
	// The members keep their reservations until the pod cache shows them
	// bound.
	if diff := cmp.Diff([]types.UID{"m1", "m2", "m3"}, reservedUIDs(e.pl.groups, testKey)); diff != "" {
		t.Errorf("reservations after admission (-want +got):\n%s", diff)
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
	e.pl.groups.reserve(testKey, "reserved", "node1", e.clock.Now())
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
	timeoutsBefore := rejections(t, "timeout")

	// m1's wait times out: the framework rejects it, then unreserves it.
	e.clock.Step(time.Minute)
	assertStatus(t, e.rejectAtPermit(e.ctx, pods[0], "node1", Name, "rejected due to timeout"), fwk.Unschedulable, "timeout")

	for _, pod := range pods[1:3] {
		assertStatus(t, e.outcome(pod), fwk.Unschedulable, "PodGroup ns/pg was rejected as a whole: timed out after 1m0s waiting for quorum with 3 member(s) reserved")
		if e.fh.GetWaitingPod(pod.UID) != nil {
			t.Errorf("%s is still a waiting pod", pod.Name)
		}
	}
	if n := e.pl.groups.reservedCount(testKey); n != 0 {
		t.Errorf("reservations left after the rejection: %d", n)
	}
	if diff := cmp.Diff([]types.UID{"m2", "m3"}, releasing(e.pl.groups, testKey)); diff != "" {
		t.Errorf("released members before their Unreserve (-want +got):\n%s", diff)
	}
	// Their binding cycles unreserve them in turn: echoes of one failure.
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
	if got := rejections(t, "timeout") - timeoutsBefore; got != 1 {
		t.Errorf("timeout rejections counted: got %v, want 1", got)
	}
	if got := releasing(e.pl.groups, testKey); got != nil {
		t.Errorf("released members left after their Unreserve: %v", got)
	}
	if _, left, ok := e.pl.groups.backingOff(testKey, e.clock.Now()); !ok || left != 5*time.Second {
		t.Errorf("backoff: got %v, %v, want 5s", left, ok)
	}
	if n := e.clock.Waiters(); n != 1 {
		t.Errorf("requeue timers: got %d, want 1", n)
	}

	// The next attempt fails for another reason: reported afresh.
	e.clock.Step(5 * time.Second)
	e.activator.take()
	e.park("node1", pods[1], pods[2])
	e.rejectAtPermit(e.ctx, pods[1], "node1", "SomePlugin", "bind failed")
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
// pending members are requeued once the backoff ends. The timer runs on the
// plugin's own context: the scheduler cancels a cycle's context as soon as
// the cycle ends, and stops the timer only when it shuts down.
func TestUnreserveActivatesAfterBackoff(t *testing.T) {
	tests := []struct {
		name string
		// cycleCanceled: the context passed to Unreserve is already
		// canceled (regression: the timer checked it and never fired).
		cycleCanceled bool
		// stopScheduler cancels the plugin's context during the backoff.
		stopScheduler bool
		want          [][]string
	}{
		{name: "cycle context live", want: [][]string{{"ns/m1", "ns/m2", "ns/m3"}}},
		{name: "cycle context already canceled", cycleCanceled: true, want: [][]string{{"ns/m1", "ns/m2", "ns/m3"}}},
		{name: "scheduler stopped during the backoff: nothing is activated", stopScheduler: true},
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
			defer cancel()
			if tt.cycleCanceled {
				cancel()
			}
			e.rejectAtPermit(cycleCtx, pods[0], "node1", "SomePlugin", "failed")
			e.outcome(pods[1])
			e.unreserve(cycleCtx, pods[1], "node1")
			if n := e.clock.Waiters(); n != 1 {
				t.Errorf("requeue timers: got %d, want 1", n)
			}
			if tt.stopScheduler {
				e.stopScheduler()
			}

			e.clock.Step(4 * time.Second)
			if got := e.activator.take(); len(got) != 0 {
				t.Errorf("activated %v during the backoff", got)
			}
			e.clock.Step(time.Second)
			if diff := cmp.Diff(tt.want, e.activator.take()); diff != "" {
				t.Errorf("activations after the backoff (-want +got):\n%s", diff)
			}
			if n := e.clock.Waiters(); n != 0 {
				t.Errorf("timers left: %d", n)
			}
			if activationPending(e.pl.groups, testKey) {
				t.Errorf("the fired timer still holds the group's claim")
			}
		})
	}
}

func TestPostFilter(t *testing.T) {
	m := func(name string) *v1.Pod {
		return member(name, testPG).Req(map[v1.ResourceName]string{v1.ResourceCPU: "1"}).Obj()
	}
	bound := func(name string) *v1.Pod {
		return member(name, testPG).Req(map[v1.ResourceName]string{v1.ResourceCPU: "1"}).Node("node9").Obj()
	}
	tests := []struct {
		name      string
		podGroups []*schedv1alpha1.PodGroup
		informer  []*v1.Pod
		// parked members wait at Permit before pod's PostFilter.
		parked []*v1.Pod
		// preFilterRejected: this plugin's PreFilter turned pod away in
		// the same cycle.
		preFilterRejected bool
		pod               *v1.Pod
		wantCode          fwk.Code
		wantMsg           []string
		// wantEvent is a prefix of the GangRejected event, "" for none.
		wantEvent  string
		wantParked handlerOutcome
		wantGroup  bool
	}{
		{
			name:     "pod outside any group: Unschedulable, so preemption still runs",
			pod:      plain("p").Obj(),
			wantCode: fwk.Unschedulable,
		},
		{
			name:       "member with waiting siblings",
			podGroups:  []*schedv1alpha1.PodGroup{makePG(testPG, 4)},
			informer:   []*v1.Pod{m("m1"), m("m2"), m("m3"), m("m4")},
			parked:     []*v1.Pod{m("m1"), m("m2")},
			pod:        m("m4"),
			wantCode:   fwk.UnschedulableAndUnresolvable,
			wantMsg:    []string{"PodGroup ns/pg: 2/4 members placed; member ns/m4 found no node"},
			wantEvent:  "Warning GangRejected 2/4 members placed; member ns/m4 found no node; released 2 waiting member(s)",
			wantParked: rejected,
			wantGroup:  true,
		},
		{
			name:      "first member of its group",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 4)},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3"), m("m4")},
			pod:       m("m1"),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"PodGroup ns/pg: 0/4 members placed; member ns/m1 found no node"},
			wantEvent: "Warning GangRejected 0/4 members placed; member ns/m1 found no node",
			wantGroup: true,
		},
		{
			name:      "bound members below the quorum: the attempt still fails",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{bound("m1"), m("m2"), m("m3")},
			parked:    []*v1.Pod{m("m2")},
			pod:       m("m3"),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"2/3 members placed; member ns/m3 found no node"},
			wantEvent: "Warning GangRejected 2/3 members placed; member ns/m3 found no node; released 1 waiting member(s)",
			// m2 waits for m3.
			wantParked: rejected,
			wantGroup:  true,
		},
		{
			name:      "member of a group whose quorum is bound: plain Unschedulable, nothing rejected",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{bound("m1"), bound("m2"), m("m3")},
			pod:       m("m3"),
			wantCode:  fwk.Unschedulable,
		},
		{
			name:     "member of a missing PodGroup: nothing to reject",
			informer: []*v1.Pod{m("m1")},
			pod:      m("m1"),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"PodGroup ns/pg does not exist"},
		},
		{
			name:              "after the plugin's own PreFilter rejection: no side effects",
			podGroups:         []*schedv1alpha1.PodGroup{makePG(testPG, 4)},
			informer:          []*v1.Pod{m("m1"), m("m2"), m("m3"), m("m4")},
			parked:            []*v1.Pod{m("m1"), m("m2")},
			preFilterRejected: true,
			pod:               m("m4"),
			wantCode:          fwk.UnschedulableAndUnresolvable,
			wantMsg:           []string{"PodGroup ns/pg was turned away before filtering"},
			wantParked:        untouched,
			wantGroup:         true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(tt.podGroups...)
			e.addPods(tt.informer...)
			e.park("node1", tt.parked...)
			state := framework.NewCycleState()
			if tt.preFilterRejected {
				state.Write(preFilterRejectedKey, preFilterRejected{})
			}
			res, s := e.pl.PostFilter(e.ctx, state, tt.pod, framework.NewDefaultNodeToStatus())
			// A turned-away member drops any nomination left from an earlier
			// wait at Permit; other pods nominate nothing here.
			wantClear := s.Code() == fwk.UnschedulableAndUnresolvable
			if gotClear := res != nil && res.NominatingInfo != nil && res.NominatingInfo.NominatingMode == fwk.ModeOverride && res.NominatingInfo.NominatedNodeName == ""; gotClear != wantClear {
				t.Errorf("PostFilterResult %+v: clears the nomination = %v, want %v", res, gotClear, wantClear)
			}
			if !wantClear && res != nil {
				t.Errorf("PostFilterResult: got %v, want nil", res)
			}
			assertStatus(t, s, tt.wantCode, tt.wantMsg...)
			checkParked(t, e, tt.parked, tt.wantParked, "PodGroup ns/pg was rejected as a whole")
			evs := e.gangRejections()
			switch {
			case tt.wantEvent == "" && len(evs) != 0:
				t.Errorf("unexpected events %q", evs)
			case tt.wantEvent != "" && (len(evs) != 1 || !strings.HasPrefix(evs[0], tt.wantEvent)):
				t.Errorf("events: got %q, want one starting %q", evs, tt.wantEvent)
			}
			_, _, backingOff := e.pl.groups.backingOff(testKey, e.clock.Now())
			if want := tt.wantEvent != ""; backingOff != want {
				t.Errorf("backing off: got %v, want %v", backingOff, want)
			}
			if got := e.pl.groups.size() > 0; got != tt.wantGroup {
				t.Errorf("group tracked: got %v, want %v", got, tt.wantGroup)
			}
			// PostFilter never sets a requeue timer: the member waits for
			// a cluster event that can make room.
			if n := e.clock.Waiters(); n != 0 {
				t.Errorf("requeue timers: got %d, want 0", n)
			}
		})
	}
}

// TestPostFilterDuringBackoff: a member that another plugin's PreFilter or
// the Filter plugins turned away while its group backs off (no attempt in
// progress) is an echo of the group's failure: PostFilter turns it away
// without reporting again, extending the backoff or replacing its reason.
func TestPostFilterDuringBackoff(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(3, "1")
	e.addPods(pods...)
	_, s := e.pl.PostFilter(e.ctx, framework.NewCycleState(), pods[0], framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "0/3 members placed; member ns/m1 found no node")
	if evs := e.gangRejections(); len(evs) != 1 {
		t.Fatalf("first failure: got events %q, want one", evs)
	}
	e.clock.Step(2 * time.Second)
	_, s = e.pl.PostFilter(e.ctx, framework.NewCycleState(), pods[1], framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "member ns/m2 found no node")
	if evs := e.gangRejections(); len(evs) != 0 {
		t.Errorf("echo reported again: %q", evs)
	}
	reason, left, ok := e.pl.groups.backingOff(testKey, e.clock.Now())
	if !ok || left != 3*time.Second || !strings.Contains(reason, "member ns/m1 found no node") {
		t.Errorf("backoff: got (%q, %v, %v), want m1's reason with 3s left", reason, left, ok)
	}
	// Once the backoff is over, a failure is news again.
	e.clock.Step(3 * time.Second)
	e.pl.PostFilter(e.ctx, framework.NewCycleState(), pods[2], framework.NewDefaultNodeToStatus())
	if evs := e.gangRejections(); len(evs) != 1 {
		t.Errorf("after the backoff: got events %q, want one", evs)
	}
}

// TestPostFilterThroughFramework checks the framework stops at the
// plugin's verdict for members (no preemption after it) and goes on for
// other pods and for members joining a running group.
func TestPostFilterThroughFramework(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2), makePG("running", 1))
	pods := members(2, "1")
	e.addPods(pods...)
	e.addPods(member("r1", "running").Node("node1").Obj(), member("r2", "running").Obj())

	_, s := e.fh.RunPostFilterPlugins(e.ctx, framework.NewCycleState(), pods[0], framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "found no node")
	if s.Plugin() != Name {
		t.Errorf("rejector: got %q, want %q", s.Plugin(), Name)
	}
	_, s = e.fh.RunPostFilterPlugins(e.ctx, framework.NewCycleState(), plain("p").Obj(), framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.Unschedulable)
	_, s = e.fh.RunPostFilterPlugins(e.ctx, framework.NewCycleState(), member("r2", "running").Obj(), framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.Unschedulable)
}

// TestPermitCountsRejectedReservations (regression): once the group's
// attempt has failed, the members it rejected still hold their reservations
// until their binding cycles run Unreserve, which the scheduler does
// concurrently with the next scheduling cycles. A sibling scheduled in that
// window must not count them toward the quorum: it would be admitted alone
// while the rest of the group is being released.
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
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "backing off")
	// Even past PreFilter (say the backoff is disabled), m4 waits alone.
	s, _ = e.reserveAndPermit(pods[3], "node2")
	assertStatus(t, s, fwk.Wait, "waiting for quorum: 1/3")
	// The released members' Unreserve neither counts nor rejects m4's
	// attempt.
	for _, pod := range pods[:2] {
		e.unreserve(e.ctx, pod, "node1")
	}
	if !e.stillWaiting(pods[3]) {
		t.Errorf("m4 no longer waits: %v", e.outcome(pods[3]))
	}
	if diff := cmp.Diff([]types.UID{"m4"}, reservedUIDs(e.pl.groups, testKey)); diff != "" {
		t.Errorf("current attempt (-want +got):\n%s", diff)
	}
}

// TestPermitAfterSiblingsBound (regression): members that were admitted and
// bound but that the pod cache does not show bound yet still count; they
// stop being reservations only once the cache shows them on a node.
func TestPermitAfterSiblingsBound(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	pods := members(4, "1")
	e.addPods(pods...)
	e.park("node1", pods[0])
	if s, _ := e.reserveAndPermit(pods[1], "node1"); !s.IsSuccess() {
		t.Fatalf("quorum member: %v", s)
	}
	assertStatus(t, e.outcome(pods[0]), fwk.Success)
	// m1 and m2 are bound; the informer has not delivered them yet.
	admittedBefore := admissions(t)
	s, _ := e.reserveAndPermit(pods[2], "node1")
	assertStatus(t, s, fwk.Success)
	if got := admissions(t) - admittedBefore; got != 1 {
		t.Errorf("admissions: got %v, want 1 (the reservations still make the quorum)", got)
	}
	// The pod cache catches up with m1 only: m2 still counts as reserved.
	e.informerBind(pods[0], "node1")
	if diff := cmp.Diff([]types.UID{"m2", "m3"}, reservedUIDs(e.pl.groups, testKey)); diff != "" {
		t.Errorf("reservations after m1 shows bound (-want +got):\n%s", diff)
	}
	// Then m2: the quorum is bound, and m4 joins it without an admission.
	e.informerBind(pods[1], "node1")
	admittedBefore = admissions(t)
	s, _ = e.reserveAndPermit(pods[3], "node1")
	assertStatus(t, s, fwk.Success)
	if got := admissions(t) - admittedBefore; got != 0 {
		t.Errorf("admissions: got %v, want 0 (m4 joins a running group)", got)
	}
	e.informerBind(pods[2], "node1")
	e.informerBind(pods[3], "node1")
	if n := e.pl.groups.size(); n != 0 {
		t.Errorf("tracked groups once every member shows bound: got %d, want 0", n)
	}
}

// TestPermitMemberOfRejectedAttempt: a member's Reserve and Permit run back
// to back in its scheduling cycle, while a sibling's binding cycle may fail
// at any moment. If the group is rejected between the two, the member's
// reservation is released with the others (it counts for nothing) but it is
// not waiting yet, so it is not turned away either.
func TestPermitMemberOfRejectedAttempt(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[0])
	// m2's cycle: Reserve...
	state := framework.NewCycleState()
	p := assumed(pods[1], "node1")
	if s := e.fh.RunReservePluginsReserve(e.ctx, state, p, "node1"); !s.IsSuccess() {
		t.Fatalf("Reserve m2: %v", s)
	}
	// ...meanwhile m1's wait is rejected by another plugin: the group's
	// attempt fails and m2's reservation is released with m1's.
	e.rejectAtPermit(e.ctx, pods[0], "node1", "SomePlugin", "failed")
	if diff := cmp.Diff([]types.UID{"m2"}, releasing(e.pl.groups, testKey)); diff != "" {
		t.Fatalf("released members (-want +got):\n%s", diff)
	}
	// ...then m2's Permit.
	_, s := e.fh.RunPermitPlugins(e.ctx, state, p, "node1")
	if s.IsWait() {
		t.Errorf("BUG (permit.go Permit): m2's reservation was released with its rejected group (tracker: releasing), yet Permit makes it wait (%q): it holds node1 for its whole timeout while counting for nothing, and its timeout's Unreserve is an echo that sets no requeue timer; Permit should turn away a member whose reservation is no longer part of the current attempt", s.Message())
	}
	if !e.pl.groups.waitingSince(testKey).IsZero() {
		t.Errorf("BUG (permit.go Permit): the released member started a new attempt's wait (waitingSince %v) during the group's backoff", e.pl.groups.waitingSince(testKey))
	}
}

// TestPermitAdmissionRacesRejection: a sibling's binding cycle can fail (its
// wait times out, or another plugin rejects it) and reject the group,
// releasing every reservation, just before a member's Permit counts the
// group. groupTracker.permit counts (reading the group's members) and admits
// under one lock, so this is the only window: the member whose Permit comes
// after must not be let through alone, and the rejection must stand.
func TestPermitAdmissionRacesRejection(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(3, "1")
	e.addPods(pods...)
	e.park("node1", pods[0], pods[1])
	state := framework.NewCycleState()
	p := assumed(pods[2], "node1")
	if s := e.fh.RunReservePluginsReserve(e.ctx, state, p, "node1"); !s.IsSuccess() {
		t.Fatalf("Reserve m3: %v", s)
	}
	// m1's wait is rejected between m3's Reserve and its Permit.
	e.rejectAtPermit(e.ctx, pods[0], "node1", "SomePlugin", "failed")
	_, s := e.fh.RunPermitPlugins(e.ctx, state, p, "node1")
	assertStatus(t, e.outcome(pods[1]), fwk.Unschedulable, "rejected as a whole")
	if s.IsSuccess() {
		t.Errorf("m3 was let through alone after its group was rejected: its reservation belongs to no current attempt")
	}
	if _, _, ok := e.pl.groups.backingOff(testKey, e.clock.Now()); !ok {
		t.Errorf("the rejection's backoff was erased by a stale admission")
	}
}
