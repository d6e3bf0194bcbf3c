package gang

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"

	"github.com/cosched/cosched/pkg/apis/config"
)

// TestPreemptorKeepsTheRoom: a group that preempts is not sent into a
// backoff by its own preemption; while its victims terminate its members
// are turned away without a rejection and hold their nominated nodes (all
// of them, recorded in their status); once the victims are gone the next
// member starts the attempt at once.
func TestPreemptorKeepsTheRoom(t *testing.T) {
	e := newTestEnv(t)
	evicted := e.recordEvictions()
	nodes := []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "2", "r1")}
	victims := []*v1.Pod{running("low-0", "low", "n1", "2", 1), running("low-1", "low", "n2", "2", 1)}
	pending := []*v1.Pod{pendingMember("m1", "2", 10), pendingMember("m2", "2", 10)}
	e.addPodGroups(makePG(testPG, 2))
	e.addPods(victims...)
	e.addPods(pending...)
	for _, p := range pending {
		if _, err := e.client.CoreV1().Pods(testNS).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.setCluster(victims, nodes)

	// The first member finds no room: the group is rejected, then preempts.
	state := framework.NewCycleState()
	_, s, _ := e.fh.RunPreFilterPlugins(e.ctx, state, pending[0])
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "cannot fit as a whole")
	if _, _, backingOff := e.pl.groups.backingOff(testKey, e.clock.Now()); !backingOff {
		t.Fatal("the rejection started no backoff; the test needs one to end")
	}
	res, s := e.pl.PostFilter(e.ctx, state, pending[0], framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.Success, "preempting PodGroup ns/low")
	if got := evicted(); len(got) != 2 {
		t.Fatalf("evicted %v, want both low members", got)
	}
	if _, _, backingOff := e.pl.groups.backingOff(testKey, e.clock.Now()); backingOff {
		t.Error("the group backs off after its own successful preemption")
	}
	planned := map[string]string{"m1": res.NominatingInfo.NominatedNodeName}

	// The other member holds its node in the nominator and in its status.
	nominated := func(name string) string {
		for _, ni := range []string{"n1", "n2"} {
			for _, pi := range e.fh.NominatedPodsForNode(ni) {
				if pi.GetPod().Name == name {
					return ni
				}
			}
		}
		return ""
	}
	planned["m2"] = nominated("m2")
	if planned["m2"] == "" || planned["m2"] == planned["m1"] {
		t.Fatalf("nominations %v, want m2 nominated to the node m1 does not take", planned)
	}
	err := wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.client.CoreV1().Pods(testNS).Get(ctx, "m2", metav1.GetOptions{})
		return err == nil && p.Status.NominatedNodeName == planned["m2"], nil
	})
	if err != nil {
		t.Errorf("m2's status never showed its nominated node %s", planned["m2"])
	}
	e.events()

	// While the victims terminate, members are turned away without a
	// rejection, a backoff or a cleared nomination.
	state = framework.NewCycleState()
	_, s, _ = e.fh.RunPreFilterPlugins(e.ctx, state, pending[1])
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "waits for 2 preempted pod(s) to terminate")
	res, s = e.pl.PostFilter(e.ctx, state, pending[1], framework.NewDefaultNodeToStatus())
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "preempted pod(s) to terminate")
	if res != nil {
		t.Errorf("PostFilter result %+v while the victims terminate, want none (the nomination stays)", res)
	}
	if got := e.gangRejections(); len(got) != 0 {
		t.Errorf("rejections while the victims terminate: %q", got)
	}
	if _, _, backingOff := e.pl.groups.backingOff(testKey, e.clock.Now()); backingOff {
		t.Error("the group backs off while its victims terminate")
	}
	if got := nominated("m2"); got != planned["m2"] {
		t.Errorf("m2 nominated to %q, want %q kept", got, planned["m2"])
	}

	// A lower-priority group recreated meanwhile finds the room held.
	e.addPodGroups(makePG("low", 2))
	for _, v := range victims {
		e.deletePod(v)
	}
	e.setCluster(nil, nodes)
	recreated := []*v1.Pod{
		member("low-0b", "low").Priority(1).Req(map[v1.ResourceName]string{v1.ResourceCPU: "2"}).Obj(),
		member("low-1b", "low").Priority(1).Req(map[v1.ResourceName]string{v1.ResourceCPU: "2"}).Obj(),
	}
	e.addPods(recreated...)
	_, s, _ = e.fh.RunPreFilterPlugins(e.ctx, framework.NewCycleState(), recreated[0])
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "PodGroup ns/low cannot fit as a whole")

	// The victims are gone: the preemptor's next member starts its attempt.
	_, s, _ = e.fh.RunPreFilterPlugins(e.ctx, framework.NewCycleState(), pending[1])
	if !s.IsSuccess() {
		t.Fatalf("PreFilter once the victims are gone: %v, want the attempt to start", s)
	}
}

// TestRoomEndsNoFitBackoff: a group backing off because it did not fit
// tries again as soon as an event that can make room reaches it and the fit
// check's arithmetic says it fits; without such an event, or while it still
// does not fit, the backoff holds.
func TestRoomEndsNoFitBackoff(t *testing.T) {
	tests := map[string]struct {
		event     func(e *testEnv, pod *v1.Pod)
		nodesThen []string
		wantStart bool
	}{
		"a node added that makes room": {
			event: func(e *testEnv, pod *v1.Pod) {
				_, _ = e.pl.isSchedulableAfterNodeChange(klog.Background(), pod, nil, nil)
			},
			nodesThen: []string{"2", "2"}, wantStart: true,
		},
		"a pod gone that frees room": {
			event: func(e *testEnv, pod *v1.Pod) {
				_, _ = e.pl.isSchedulableAfterRoomFreed(klog.Background(), pod, nil, nil)
			},
			nodesThen: []string{"2", "2"}, wantStart: true,
		},
		"room that is still not enough": {
			event: func(e *testEnv, pod *v1.Pod) {
				_, _ = e.pl.isSchedulableAfterNodeChange(klog.Background(), pod, nil, nil)
			},
			nodesThen: []string{"2", "1"},
		},
		"no event: the backoff holds": {
			nodesThen: []string{"2", "2"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 2))
			pods := members(2, "2")
			e.addPods(pods...)
			_, s := e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[0], nodesWithCPU("2"))
			assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "cannot fit as a whole")
			e.clock.Step(time.Second)
			if tc.event != nil {
				tc.event(e, pods[1])
			}
			_, s = e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[1], nodesWithCPU(tc.nodesThen...))
			if tc.wantStart {
				if !s.IsSuccess() && !s.IsSkip() {
					t.Fatalf("PreFilter after room appeared: %v, want the attempt to start", s)
				}
				return
			}
			assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "is backing off")
		})
	}
}

// TestFitCheckCountsNominatedRoom: room nominated to a pod of at least the
// group's priority (another group's preemption) is not free for the fit
// check, as it is not for Filter; lower-priority nominations and the
// group's own do not count.
func TestFitCheckCountsNominatedRoom(t *testing.T) {
	tests := map[string]struct {
		nominated *v1.Pod
		wantFit   bool
	}{
		"a higher-priority pod holds the node": {
			nominated: st.MakePod().Namespace(testNS).Name("vip").UID("vip").Priority(100).Req(map[v1.ResourceName]string{v1.ResourceCPU: "2"}).Obj(),
		},
		"a lower-priority nomination does not count": {
			nominated: st.MakePod().Namespace(testNS).Name("minor").UID("minor").Priority(-1).Req(map[v1.ResourceName]string{v1.ResourceCPU: "2"}).Obj(),
			wantFit:   true,
		},
		"nothing nominated": {wantFit: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 2))
			pods := members(2, "1")
			e.addPods(pods...)
			nodes := []*v1.Node{st.MakeNode().Name("node1").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "2", v1.ResourceMemory: "8Gi", v1.ResourcePods: "110"}).Obj()}
			if tc.nominated != nil {
				e.addPods(tc.nominated)
				pi, err := framework.NewPodInfo(tc.nominated)
				if err != nil {
					t.Fatal(err)
				}
				e.fh.AddNominatedPod(klog.Background(), pi, &fwk.NominatingInfo{NominatedNodeName: "node1", NominatingMode: fwk.ModeOverride})
			}
			_, s := e.pl.PreFilter(e.ctx, framework.NewCycleState(), pods[0], tf.BuildNodeInfos(nodes))
			if tc.wantFit {
				if !s.IsSuccess() && !s.IsSkip() {
					t.Fatalf("PreFilter: %v, want the group to fit", s)
				}
				return
			}
			assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "0/2 members fit", "best node has 0 free")
		})
	}
}

// TestMixedSizesArePlanned: under Atomic, a group whose members ask for
// different amounts follows the fit check's largest-first packing (a
// shortcut plan), so that it binds on its first attempt where one-by-one
// placement in queue order could strand a big member. Groups of one size,
// and MemberByMember, plan nothing below wholeGroupPlanMinMembers.
func TestMixedSizesArePlanned(t *testing.T) {
	tests := map[string]struct {
		cpus     []string
		strategy config.PlacementStrategy
		wantPlan bool
	}{
		"mixed sizes are planned":         {cpus: []string{"1", "1", "1", "2", "2"}, strategy: config.PlacementAtomic, wantPlan: true},
		"one size searches":               {cpus: []string{"1", "1", "1"}, strategy: config.PlacementAtomic},
		"member by member does not plan":  {cpus: []string{"1", "1", "2"}, strategy: config.PlacementMemberByMember},
		"the planned nodes are the packs": {cpus: []string{"2", "1", "1", "2"}, strategy: config.PlacementAtomic, wantPlan: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t, func(a *config.CoschedGangArgs) { a.PlacementStrategy = tc.strategy })
			e.addPodGroups(makePG(testPG, int32(len(tc.cpus))))
			var pods []*v1.Pod
			for i, cpu := range tc.cpus {
				pods = append(pods, pendingMember("m"+string(rune('a'+i)), cpu, 0))
			}
			e.addPods(pods...)
			nodes := []*v1.Node{cpuNode("n1", "3", "r"), cpuNode("n2", "3", "r"), cpuNode("n3", "3", "r")}
			e.setCluster(nil, nodes)
			_, s, _ := e.fh.RunPreFilterPlugins(e.ctx, framework.NewCycleState(), pods[0])
			if !s.IsSuccess() {
				t.Fatalf("PreFilter: %v", s)
			}
			plan := e.pl.groups.planOf(testKey)
			if !tc.wantPlan {
				if plan != nil {
					t.Fatalf("plan %+v, want none", plan)
				}
				return
			}
			if plan == nil || !plan.Shortcut || len(plan.Nodes) != len(pods) {
				t.Fatalf("plan = %+v, want a shortcut plan of every member", plan)
			}
			used := map[string]int64{}
			for _, p := range pods {
				used[plan.Nodes[string(p.UID)]] += p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
			}
			for node, milli := range used {
				if milli > 3000 {
					t.Errorf("plan puts %dm CPU on %s (3 CPU): %v", milli, node, plan.Nodes)
				}
			}
		})
	}
}
