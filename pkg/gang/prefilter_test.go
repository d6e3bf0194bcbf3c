package gang

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
)

func TestPreFilter(t *testing.T) {
	cpu := func(name, q string) *v1.Pod {
		return member(name, testPG).Req(map[v1.ResourceName]string{v1.ResourceCPU: q}).Obj()
	}
	bound := func(name, q, node string) *v1.Pod {
		return member(name, testPG).Req(map[v1.ResourceName]string{v1.ResourceCPU: q}).Node(node).Obj()
	}
	tests := []struct {
		name      string
		podGroups []*schedv1alpha1.PodGroup
		informer  []*v1.Pod
		// reserved members hold reservations before the call.
		reserved   []string
		pod        *v1.Pod
		nodes      []fwk.NodeInfo
		wantCode   fwk.Code
		wantMsg    []string
		wantEvents []string
	}{
		{
			name:     "pod outside any group is skipped",
			pod:      plain("p").Obj(),
			nodes:    nodesWithCPU("1"),
			wantCode: fwk.Skip,
		},
		{
			name:     "missing PodGroup",
			informer: []*v1.Pod{cpu("m1", "1")},
			pod:      cpu("m1", "1"),
			nodes:    nodesWithCPU("4"),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"PodGroup ns/pg does not exist"},
		},
		{
			name:      "quorum lost since PreEnqueue",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{cpu("m1", "1"), cpu("m2", "1")},
			pod:       cpu("m1", "1"),
			nodes:     nodesWithCPU("4"),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"waiting for quorum: 2/3 pods of PodGroup ns/pg exist"},
		},
		{
			name:      "group fits",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{cpu("m1", "1"), cpu("m2", "1"), cpu("m3", "1")},
			pod:       cpu("m1", "1"),
			nodes:     nodesWithCPU("2", "1"),
			wantCode:  admitted,
		},
		{
			name:      "quorum fits although not every member does",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{cpu("m1", "1"), cpu("m2", "1"), cpu("m3", "1")},
			pod:       cpu("m1", "1"),
			nodes:     nodesWithCPU("1", "1"),
			wantCode:  admitted,
		},
		{
			name:      "fragmented free room: 2 x 750m cannot hold 1-CPU members",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{cpu("m1", "1"), cpu("m2", "1")},
			pod:       cpu("m1", "1"),
			nodes:     nodesWithCPU("750m", "750m"),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg: []string{
				"PodGroup ns/pg cannot fit as a whole",
				"0/2 members fit (0 placed, 0 more fit of 2 needed)",
				"member needs cpu 1, best node has 750m",
			},
			wantEvents: []string{"Warning GangRejected 0/2 members fit"},
		},
		{
			name:       "the pod itself counts before the informer lists it",
			podGroups:  []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:   []*v1.Pod{cpu("m2", "1")},
			pod:        cpu("m1", "2"),
			nodes:      nodesWithCPU("1", "1"),
			wantCode:   fwk.UnschedulableAndUnresolvable,
			wantMsg:    []string{"1/2 members fit", "member needs cpu 2, best node has 1"},
			wantEvents: []string{"Warning GangRejected 1/2 members fit"},
		},
		{
			name:      "bound members count as placed",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{cpu("m1", "1"), bound("m2", "1", "node9"), bound("m3", "1", "node9")},
			pod:       cpu("m1", "1"),
			nodes:     nodesWithCPU("1"),
			wantCode:  admitted,
		},
		{
			name:       "bound members count, the rest still must fit",
			podGroups:  []*schedv1alpha1.PodGroup{makePG(testPG, 4)},
			informer:   []*v1.Pod{cpu("m1", "1"), cpu("m2", "1"), bound("m3", "1", "node9"), bound("m4", "1", "node9")},
			pod:        cpu("m1", "1"),
			nodes:      nodesWithCPU("1500m"),
			wantCode:   fwk.UnschedulableAndUnresolvable,
			wantMsg:    []string{"3/4 members fit (2 placed, 1 more fit of 2 needed)"},
			wantEvents: []string{"Warning GangRejected 3/4 members fit"},
		},
		{
			name: "minResources above the cluster's free total",
			podGroups: []*schedv1alpha1.PodGroup{
				makePG(testPG, 2, withMinResources(map[v1.ResourceName]string{v1.ResourceCPU: "10"})),
			},
			informer:   []*v1.Pod{cpu("m1", "1"), cpu("m2", "1")},
			pod:        cpu("m1", "1"),
			nodes:      nodesWithCPU("2", "2"),
			wantCode:   fwk.UnschedulableAndUnresolvable,
			wantMsg:    []string{"minResources needs cpu 10, the cluster has 4 free"},
			wantEvents: []string{"Warning GangRejected minResources needs cpu 10, the cluster has 4 free"},
		},
		{
			name: "minResources within the cluster's free total",
			podGroups: []*schedv1alpha1.PodGroup{
				makePG(testPG, 2, withMinResources(map[v1.ResourceName]string{v1.ResourceCPU: "4"})),
			},
			informer: []*v1.Pod{cpu("m1", "1"), cpu("m2", "1")},
			pod:      cpu("m1", "1"),
			nodes:    nodesWithCPU("2", "2"),
			wantCode: admitted,
		},
		{
			name: "minResources counts what bound members already hold",
			podGroups: []*schedv1alpha1.PodGroup{
				makePG(testPG, 2, withMinResources(map[v1.ResourceName]string{v1.ResourceCPU: "5"})),
			},
			informer: []*v1.Pod{cpu("m1", "1"), bound("m2", "2", "node9")},
			pod:      cpu("m1", "1"),
			nodes:    nodesWithCPU("2", "1"),
			wantCode: admitted,
		},
		{
			name: "minResources no longer gates members once the quorum is bound",
			podGroups: []*schedv1alpha1.PodGroup{
				makePG(testPG, 1, withMinResources(map[v1.ResourceName]string{v1.ResourceMemory: "64Gi"})),
			},
			informer: []*v1.Pod{cpu("m1", "1"), bound("m2", "1", "node9")},
			pod:      cpu("m1", "1"),
			nodes:    nodesWithCPU("2"),
			wantCode: admitted,
		},
		{
			name:      "a member joining a bound quorum is not packed",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{cpu("m1", "1"), cpu("m2", "1"), bound("m3", "1", "node9"), bound("m4", "1", "node9")},
			pod:       cpu("m1", "1"),
			nodes:     nodesWithCPU("100m"),
			wantCode:  admitted,
		},
		{
			name: "minResources still gates a group short of its quorum",
			podGroups: []*schedv1alpha1.PodGroup{
				makePG(testPG, 2, withMinResources(map[v1.ResourceName]string{v1.ResourceMemory: "64Gi"})),
			},
			informer:   []*v1.Pod{cpu("m1", "1"), bound("m2", "1", "node9")},
			pod:        cpu("m1", "1"),
			nodes:      nodesWithCPU("2"),
			wantCode:   fwk.UnschedulableAndUnresolvable,
			wantMsg:    []string{"minResources needs memory 64Gi, the cluster has 8Gi free"},
			wantEvents: []string{"Warning GangRejected minResources needs memory 64Gi"},
		},
		{
			name:      "members being deleted count neither as pods nor as placed",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer: []*v1.Pod{cpu("m1", "1"), cpu("m2", "1"),
				member("m3", testPG).Req(map[v1.ResourceName]string{v1.ResourceCPU: "1"}).Node("node9").Terminating().Obj()},
			pod:        cpu("m1", "1"),
			nodes:      nodesWithCPU("1"),
			wantCode:   fwk.UnschedulableAndUnresolvable,
			wantMsg:    []string{"1/2 members fit (0 placed, 1 more fit of 2 needed)"},
			wantEvents: []string{"Warning GangRejected 1/2 members fit"},
		},
		{
			name:      "no check while the group holds reservations",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{cpu("m1", "1"), cpu("m2", "1"), cpu("m3", "1")},
			reserved:  []string{"m1"},
			pod:       cpu("m2", "1"),
			nodes:     nodesWithCPU("100m"),
			wantCode:  admitted,
		},
		{
			name:      "quorum still checked while the group holds reservations",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{cpu("m1", "1"), cpu("m2", "1")},
			reserved:  []string{"m1"},
			pod:       cpu("m2", "1"),
			nodes:     nodesWithCPU("4"),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"waiting for quorum: 2/3 pods"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(tt.podGroups...)
			e.addPods(tt.informer...)
			for _, name := range tt.reserved {
				e.pl.groups.reserve(testKey, typesUID(name), "node9", e.clock.Now())
			}
			state := framework.NewCycleState()
			res, s := e.pl.PreFilter(e.ctx, state, tt.pod, tt.nodes)
			if res != nil {
				t.Errorf("PreFilterResult: got %v, want nil (all nodes)", res)
			}
			assertStatus(t, s, tt.wantCode, tt.wantMsg...)
			// A rejection leaves its marker for PostFilter; a pass or a
			// skip does not.
			_, err := state.Read(preFilterRejectedKey)
			if marked, want := err == nil, s.IsRejected(); marked != want {
				t.Errorf("rejection marker in the cycle state: got %v, want %v", marked, want)
			}
			// PreFilter never sets a requeue timer unless the group backs off.
			if n := e.clock.Waiters(); n != 0 {
				t.Errorf("requeue timers: got %d, want 0", n)
			}
			evs := e.gangRejections()
			if len(evs) != len(tt.wantEvents) {
				t.Fatalf("events: got %q, want %d matching %q", evs, len(tt.wantEvents), tt.wantEvents)
			}
			for i, want := range tt.wantEvents {
				if !strings.HasPrefix(evs[i], want) {
					t.Errorf("event %d: got %q, want prefix %q", i, evs[i], want)
				}
			}
		})
	}
}

// TestPreFilterBackoff follows a group that did not fit: it backs off,
// turns members away cheaply meanwhile, and checks again afterwards.
func TestPreFilterBackoff(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	pods := members(2, "1")
	e.addPods(pods...)
	tooSmall, bigEnough := nodesWithCPU("750m", "750m"), nodesWithCPU("1", "1")
	state := framework.NewCycleState()

	_, s := e.pl.PreFilter(e.ctx, state, pods[0], tooSmall)
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "cannot fit as a whole")
	if evs := e.gangRejections(); len(evs) != 1 {
		t.Fatalf("after the rejection: got events %q, want one GangRejected", evs)
	}
	if got := e.pl.groups.rejectedAt(testKey); !got.Equal(baseTime) {
		t.Errorf("rejectedAt: got %v, want %v", got, baseTime)
	}

	steps := []struct {
		name     string
		advance  time.Duration
		pod      *v1.Pod
		nodes    []fwk.NodeInfo
		wantCode fwk.Code
		wantMsg  []string
		// wantEvents is how many GangRejected events the call records.
		wantEvents int
		// wantActivated are the activations the clock step fired.
		wantActivated [][]string
		// wantTimers is how many requeue timers are set after the call.
		wantTimers int
	}{
		{
			name:     "sibling right after is turned away without a check",
			pod:      pods[1],
			nodes:    bigEnough,
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"PodGroup ns/pg is backing off for 5s after it was rejected: 0/2 members fit"},
			// It will be requeued when the backoff ends.
			wantTimers: 1,
		},
		{
			name:     "still backing off, with the time left",
			advance:  3 * time.Second,
			pod:      pods[0],
			nodes:    bigEnough,
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"backing off for 2s"},
			// One timer per backoff, however many members are turned away.
			wantTimers: 1,
		},
		{
			name:       "backoff over: the check runs again and fails again",
			advance:    2 * time.Second,
			pod:        pods[0],
			nodes:      tooSmall,
			wantCode:   fwk.UnschedulableAndUnresolvable,
			wantMsg:    []string{"cannot fit as a whole"},
			wantEvents: 1,
			// The step to the backoff's end fired the timer.
			wantActivated: [][]string{{"ns/m1", "ns/m2"}},
		},
		{
			// A second "does not fit" in a row doubles the backoff.
			name:     "backing off again, twice as long, after the second rejection",
			advance:  4900 * time.Millisecond,
			pod:      pods[1],
			nodes:    bigEnough,
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"backing off for 5.1s"},
			// A new backoff, a new timer.
			wantTimers: 1,
		},
		{
			name:     "second backoff over: the group fits now",
			advance:  5100 * time.Millisecond,
			pod:      pods[0],
			nodes:    bigEnough,
			wantCode: admitted,
			// The step fired the second backoff's timer.
			wantActivated: [][]string{{"ns/m1", "ns/m2"}},
		},
	}
	for _, step := range steps {
		e.clock.Step(step.advance)
		_, s := e.pl.PreFilter(e.ctx, state, step.pod, step.nodes)
		if s.Code() != step.wantCode {
			t.Fatalf("%s: got %v %q, want %v", step.name, s.Code(), s.Message(), step.wantCode)
		}
		for _, frag := range step.wantMsg {
			if !strings.Contains(s.Message(), frag) {
				t.Errorf("%s: message %q does not contain %q", step.name, s.Message(), frag)
			}
		}
		if evs := e.gangRejections(); len(evs) != step.wantEvents {
			t.Errorf("%s: got events %q, want %d GangRejected", step.name, evs, step.wantEvents)
		}
		if diff := cmp.Diff(step.wantActivated, e.activator.take()); diff != "" {
			t.Errorf("%s: activations (-want +got):\n%s", step.name, diff)
		}
		if n := e.clock.Waiters(); n != step.wantTimers {
			t.Errorf("%s: requeue timers: got %d, want %d", step.name, n, step.wantTimers)
		}
	}
	if got := e.pl.groups.rejectedAt(testKey); !got.Equal(baseTime.Add(5 * time.Second)) {
		t.Errorf("rejectedAt after the second rejection: got %v, want %v", got, baseTime.Add(5*time.Second))
	}
}

// TestPreFilterBackoffDisabled: with podGroupBackoffSeconds 0 a rejected
// group is checked again on its next member.
func TestPreFilterBackoffDisabled(t *testing.T) {
	e := newTestEnv(t, func(a *config.CoschedGangArgs) { a.PodGroupBackoffSeconds = new(int64) })
	e.addPodGroups(makePG(testPG, 2))
	pods := members(2, "1")
	e.addPods(pods...)
	_, s := e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[0], nodesWithCPU("750m", "750m"))
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "cannot fit as a whole")
	_, s = e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[1], nodesWithCPU("1", "1"))
	assertStatus(t, s, admitted)
}

// TestPreFilterBackoffIgnoredWhileReserved: members that follow a member
// holding a reservation are not turned away by an old backoff.
func TestPreFilterBackoffIgnoredWhileReserved(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	pods := members(2, "1")
	e.addPods(pods...)
	e.pl.groups.reject(testKey, "earlier failure", phaseBackingOff, baseTime, time.Minute)
	_, s := e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[1], nodesWithCPU("1", "1"))
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "backing off for 1m0s after it was rejected: earlier failure")
	e.pl.groups.reserve(testKey, pods[0].UID, "node1", e.clock.Now())
	_, s = e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[1], nodesWithCPU("1", "1"))
	assertStatus(t, s, admitted)
}

// TestPreFilterRejectionThenPostFilter (regression) runs what the scheduler
// runs when PreFilter rejects a member: the scheduler treats the rejection as
// "no node fits" and runs PostFilter for the same pod, with the same cycle
// state. The group's attempt failed once, so it is reported once, and
// members turned away during the backoff neither report again nor extend
// the backoff nor replace its reason.
func TestPreFilterRejectionThenPostFilter(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(3, "1")
	e.addPods(pods...)
	tooSmall := nodesWithCPU("750m", "750m", "750m")
	rejectionsBefore := rejections(t, "no_fit") + rejections(t, "member_unschedulable")

	cycle := func(pod *v1.Pod, wantMsg string) {
		t.Helper()
		state := framework.NewCycleState()
		_, s := e.pl.PreFilter(e.ctx, state, pod, tooSmall)
		assertStatus(t, s, fwk.UnschedulableAndUnresolvable, wantMsg)
		_, s = e.fh.RunPostFilterPlugins(e.ctx, state, pod, framework.NewDefaultNodeToStatus())
		assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "PodGroup ns/pg was turned away before filtering")
	}
	// The first member: PreFilter finds the group cannot fit.
	cycle(pods[0], "cannot fit as a whole")
	// Its siblings come next in the queue and are turned away by the backoff.
	e.clock.Step(time.Second)
	for _, pod := range pods[1:] {
		cycle(pod, "backing off")
	}

	if evs := e.gangRejections(); len(evs) != 1 {
		t.Errorf("one failed attempt recorded %d GangRejected events, want 1:\n%s", len(evs), strings.Join(evs, "\n"))
	}
	if got := rejections(t, "no_fit") + rejections(t, "member_unschedulable") - rejectionsBefore; got != 1 {
		t.Errorf("rejections counted: got %v, want 1", got)
	}
	reason, left, ok := e.pl.groups.backingOff(testKey, e.clock.Now())
	if !ok {
		t.Fatal("group not backing off")
	}
	if left != 4*time.Second {
		t.Errorf("backoff left 1s after the rejection: got %v, want 4s (members turned away must not extend it)", left)
	}
	if !strings.Contains(reason, "members fit") {
		t.Errorf("backoff reason %q lost the fit shortfall PreFilter found", reason)
	}
	if got := e.pl.groups.rejectedAt(testKey); !got.Equal(baseTime) {
		t.Errorf("rejectedAt: got %v, want %v", got, baseTime)
	}
}

func TestEscalatedBackoff(t *testing.T) {
	tr := newGroupTracker()
	var got []time.Duration
	for range 6 {
		got = append(got, tr.noFitBackoff(testKey, 5*time.Second))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoffs (-want +got):\n%s", diff)
	}
	// Admission ends the streak.
	tr.reserve(testKey, "m1", "node1", baseTime)
	tr.admitAll(testKey, baseTime)
	if b := tr.noFitBackoff(testKey, 5*time.Second); b != 5*time.Second {
		t.Errorf("after admission: backoff %v, want 5s", b)
	}
}

func TestMemberDisagreement(t *testing.T) {
	withScheduler := func(p *v1.Pod, name string) *v1.Pod { p.Spec.SchedulerName = name; return p }
	tests := []struct {
		name                           string
		pods                           []*v1.Pod
		wantSchedulers, wantPriorities string
	}{
		{name: "agree", pods: []*v1.Pod{member("a", testPG).Obj(), member("b", testPG).Obj()}},
		{
			name:           "schedulers differ",
			pods:           []*v1.Pod{withScheduler(member("a", testPG).Obj(), "cosched"), withScheduler(member("b", testPG).Obj(), "default-scheduler"), withScheduler(member("c", testPG).Obj(), "cosched")},
			wantSchedulers: "cosched: a, c; default-scheduler: b",
		},
		{
			name:           "priorities differ",
			pods:           []*v1.Pod{member("driver", testPG).Priority(100).Obj(), member("e1", testPG).Obj(), member("e2", testPG).Obj(), member("e3", testPG).Obj(), member("e4", testPG).Obj()},
			wantPriorities: "0: e1, e2, e3, 1 more; 100: driver",
		},
		{
			name: "members being deleted do not count",
			pods: []*v1.Pod{member("a", testPG).Obj(), func() *v1.Pod {
				p := withScheduler(member("b", testPG).Obj(), "other")
				p.DeletionTimestamp = &metav1.Time{Time: baseTime}
				return p
			}()},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, p := memberDisagreement(tc.pods)
			if s != tc.wantSchedulers || p != tc.wantPriorities {
				t.Errorf("got (%q, %q), want (%q, %q)", s, p, tc.wantSchedulers, tc.wantPriorities)
			}
		})
	}
}

// TestPreFilterMembersDisagree: a group split across schedulers is turned
// away as a whole with a reason; differing priorities only warn.
func TestPreFilterMembersDisagree(t *testing.T) {
	e := newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	a := member("a", testPG).Obj()
	b := member("b", testPG).Obj()
	b.Spec.SchedulerName = "default-scheduler"
	e.addPods(a, b)
	_, s := e.pl.PreFilter(e.ctx, framework.NewCycleState(), a, nodesWithCPU("4"))
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "members name different schedulers", "default-scheduler: b")
	if evs := e.gangRejections(); len(evs) != 1 {
		t.Errorf("GangRejected events %q, want one", evs)
	}

	e = newTestEnv(t)
	e.addPodGroups(makePG(testPG, 2))
	e.addPods(member("a", testPG).Priority(10).Obj(), member("b", testPG).Obj())
	_, s = e.pl.PreFilter(e.ctx, framework.NewCycleState(), member("a", testPG).Priority(10).Obj(), nodesWithCPU("4"))
	assertStatus(t, s, admitted)
	var warned []string
	for _, ev := range e.events() {
		if strings.Contains(ev, "MembersDisagree") {
			warned = append(warned, ev)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "0: b; 10: a") {
		t.Errorf("MembersDisagree events %q, want one naming both priorities", warned)
	}
}
