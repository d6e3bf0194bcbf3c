package gang

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/pkg/apis/config"
)

// TestWholeGroupPlan: a group at least wholeGroupPlanMinMembers big is
// planned at its first member with the cluster as one domain, and each
// member is narrowed to its planned node while that node has room; a member
// whose node filled up searches every node, and its failure is not a stale
// plan. Smaller groups, and the MemberByMember strategy, plan nothing.
func TestWholeGroupPlan(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode().Name("node1").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "2", v1.ResourceMemory: "8Gi", v1.ResourcePods: "110"}).Obj(),
		st.MakeNode().Name("node2").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "2", v1.ResourceMemory: "8Gi", v1.ResourcePods: "110"}).Obj(),
		st.MakeNode().Name("node3").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "2", v1.ResourceMemory: "8Gi", v1.ResourcePods: "110"}).Obj(),
	}
	tests := map[string]struct {
		from     int32
		strategy config.PlacementStrategy
		wantPlan bool
	}{
		"a group as big as the threshold is planned": {from: 3, strategy: config.PlacementAtomic, wantPlan: true},
		"a smaller group searches":                   {from: 4, strategy: config.PlacementAtomic},
		"zero turns planning off":                    {from: 0, strategy: config.PlacementAtomic},
		"member by member never plans":               {from: 3, strategy: config.PlacementMemberByMember},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t, func(a *config.CoschedGangArgs) {
				a.WholeGroupPlanMinMembers = &tc.from
				a.PlacementStrategy = tc.strategy
			})
			e.addPodGroups(makePG(testPG, 3))
			pods := members(3, "1")
			e.informerAdd(pods...)
			e.setCluster(nil, nodes)

			state := framework.NewCycleState()
			res, s, _ := e.fh.RunPreFilterPlugins(e.ctx, state, pods[0])
			if !s.IsSuccess() {
				t.Fatalf("PreFilter: %v", s)
			}
			plan := e.pl.groups.planOf(testKey)
			if !tc.wantPlan {
				if plan != nil || !res.AllNodes() {
					t.Fatalf("plan %+v, PreFilter narrowed to %v; want neither", plan, res)
				}
				return
			}
			if plan == nil || !plan.Shortcut || len(plan.Nodes) != 3 {
				t.Fatalf("plan = %+v, want a shortcut plan of 3 members", plan)
			}
			if want := sets.New(plan.Nodes["m1"]); res.AllNodes() || !res.NodeNames.Equal(want) {
				t.Errorf("m1 narrowed to %v, want its planned node %v", res, want)
			}
			checkFilter(t, e, state, pods[0], tf.BuildNodeInfos(nodes), []string{plan.Nodes["m1"]}, "outside the plan of PodGroup ns/pg")

			// m1 holds its node; another pod takes m2's planned node.
			e.pl.groups.reserve(testKey, "m1", plan.Nodes["m1"], e.clock.Now())
			taken := plain("taker").Req(map[v1.ResourceName]string{v1.ResourceCPU: "2"}).Node(plan.Nodes["m2"]).Obj()
			e.setCluster([]*v1.Pod{taken}, nodes)
			state = framework.NewCycleState()
			res, s, _ = e.fh.RunPreFilterPlugins(e.ctx, state, pods[1])
			if !s.IsSuccess() || !res.AllNodes() {
				t.Fatalf("m2 after its node filled: %v, narrowed to %v; want a search of every node", s, res)
			}
			// Had m2 failed its search, that is no stale plan.
			_, s = e.pl.PostFilter(e.ctx, state, pods[1], nil)
			assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "member ns/m2 found no node")
			if strings.Contains(s.Message(), "planned node") {
				t.Errorf("PostFilter: %q, want no stale plan for a member that searched every node", s.Message())
			}
		})
	}
}

// TestShortcutPlanGoneStale: a member narrowed to its planned node that
// fails there drops the plan as stale, as an atomic plan does.
func TestShortcutPlanGoneStale(t *testing.T) {
	e := newTestEnv(t, func(a *config.CoschedGangArgs) { a.WholeGroupPlanMinMembers = ptr.To[int32](2) })
	e.addPodGroups(makePG(testPG, 2))
	pods := members(2, "1")
	e.informerAdd(pods...)
	nodes := []*v1.Node{st.MakeNode().Name("node1").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "4", v1.ResourceMemory: "8Gi", v1.ResourcePods: "110"}).Obj()}
	e.setCluster(nil, nodes)
	state := framework.NewCycleState()
	if _, s, _ := e.fh.RunPreFilterPlugins(e.ctx, state, pods[0]); !s.IsSuccess() {
		t.Fatalf("PreFilter: %v", s)
	}
	_, s := e.pl.PostFilter(e.ctx, state, pods[0], nil)
	assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "no longer fits its planned node node1")
}
