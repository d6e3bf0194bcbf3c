package preemption

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/cosched/cosched/pkg/podgroup"
)

// cpuSim is a Simulator on whole CPUs alone: a member fits a node with its
// request free. It checks that every change is reverted in order.
type cpuSim struct {
	free    []int64
	byName  map[string]int
	members []int64
	undo    []func()
}

func newCPUSim(nodes []fwk.NodeInfo, members []*v1.Pod) *cpuSim {
	s := &cpuSim{byName: map[string]int{}}
	for i, ni := range nodes {
		s.byName[ni.Node().Name] = i
		s.free = append(s.free, ni.GetAllocatable().GetMilliCPU()-ni.GetRequested().GetMilliCPU())
	}
	for _, m := range members {
		s.members = append(s.members, m.Spec.Containers[0].Resources.Requests.Cpu().MilliValue())
	}
	return s
}

func (s *cpuSim) Fits(m, n int) bool { return s.free[n] >= s.members[m] }
func (s *cpuSim) Place(m, n int)     { s.change(n, -s.members[m]) }
func (s *cpuSim) Checkpoint() int    { return len(s.undo) }

func (s *cpuSim) Remove(p *v1.Pod) bool {
	if n, ok := s.byName[p.Spec.NodeName]; ok {
		s.change(n, p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue())
	}
	return true
}

func (s *cpuSim) change(n int, delta int64) {
	s.free[n] += delta
	s.undo = append(s.undo, func() { s.free[n] -= delta })
}

func (s *cpuSim) Revert(to int) {
	for len(s.undo) > to {
		s.undo[len(s.undo)-1]()
		s.undo = s.undo[:len(s.undo)-1]
	}
}

// cpuNode has cpu whole CPUs and a rack label.
func cpuNode(name, cpu, rack string) *v1.Node {
	return st.MakeNode().Name(name).Label("rack", rack).Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu}).Obj()
}

// placedOn is a pod of group ("" for a plain pod) on node.
func placedOn(name, group, node, cpu string, priority int32) *v1.Pod {
	w := st.MakePod().Namespace("ns").Name(name).UID(name).Node(node).Priority(priority).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu}).Label("app", name)
	if group != "" {
		w = w.Label(podgroup.Label, group)
	}
	return w.Obj()
}

// toPlace is n members of ns/pg asking cpu each at priority 10.
func toPlace(n int, cpu string) []*v1.Pod {
	var out []*v1.Pod
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		out = append(out, st.MakePod().Namespace("ns").Name(name).UID(name).Priority(10).Label(podgroup.Label, "pg").
			Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu}).Obj())
	}
	return out
}

func nodeInfos(nodes []*v1.Node, pods []*v1.Pod) []fwk.NodeInfo {
	var out []fwk.NodeInfo
	for _, n := range nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		for _, p := range pods {
			if p.Spec.NodeName == n.Name {
				ni.AddPod(p)
			}
		}
		out = append(out, ni)
	}
	return out
}

func guard(app string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "guard-" + app},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
	}
}

func TestSearchRoom(t *testing.T) {
	twoNodes := []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "2", "r1")}
	racks := []*v1.Node{cpuNode("a1", "2", "ra"), cpuNode("a2", "2", "ra"), cpuNode("b1", "2", "rb"), cpuNode("b2", "2", "rb")}
	tests := []struct {
		name        string
		nodes       []*v1.Node
		placed      []*v1.Pod
		members     []*v1.Pod
		topology    string
		pdbs        []*policyv1.PodDisruptionBudget
		free        []string
		wantVictims []string
		wantNodes   map[string]string
		wantDomain  string
		wantFitsNow bool
		wantWhyNot  string
	}{{
		name:        "a low gang holding the only room is taken whole, across nodes",
		nodes:       twoNodes,
		placed:      []*v1.Pod{placedOn("low-0", "low", "n1", "2", 1), placedOn("low-1", "low", "n2", "2", 1)},
		members:     toPlace(2, "2"),
		wantVictims: []string{"group:ns/low"},
		wantNodes:   map[string]string{"m0": "n1", "m1": "n2"},
	}, {
		name:        "a gang whose one member is in the way still goes whole",
		nodes:       []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "1", "r1")},
		placed:      []*v1.Pod{placedOn("low-0", "low", "n1", "2", 1), placedOn("low-1", "low", "n2", "1", 1)},
		members:     toPlace(1, "2"),
		wantVictims: []string{"group:ns/low"},
		wantNodes:   map[string]string{"m0": "n1"},
	}, {
		name:        "plain pods go before a gang of the same priority",
		nodes:       twoNodes,
		placed:      []*v1.Pod{placedOn("plain", "", "n1", "2", 1), placedOn("low-0", "low", "n2", "1", 1), placedOn("low-1", "low", "n2", "1", 1)},
		members:     toPlace(1, "2"),
		wantVictims: []string{"ns/plain"},
		wantNodes:   map[string]string{"m0": "n1"},
	}, {
		name:        "lower priority goes first, gang or not",
		nodes:       twoNodes,
		placed:      []*v1.Pod{placedOn("plain", "", "n1", "2", 5), placedOn("low-0", "low", "n2", "2", 1)},
		members:     toPlace(1, "2"),
		wantVictims: []string{"group:ns/low"},
		wantNodes:   map[string]string{"m0": "n2"},
	}, {
		name:       "equal priority never preempts",
		nodes:      twoNodes,
		placed:     []*v1.Pod{placedOn("peer-0", "peer", "n1", "2", 10), placedOn("peer-1", "peer", "n2", "2", 10)},
		members:    toPlace(2, "2"),
		wantWhyNot: "no pods or gangs of priority below 10 that may be evicted",
	}, {
		name:       "the group's own pods are never victims",
		nodes:      twoNodes,
		placed:     []*v1.Pod{placedOn("own-0", "pg", "n1", "2", 1)},
		members:    toPlace(1, "2"),
		wantWhyNot: "no pods or gangs of priority below 10 that may be evicted",
	}, {
		name:       "nothing is chosen for a group that would still not fit",
		nodes:      twoNodes,
		placed:     []*v1.Pod{placedOn("low-0", "low", "n1", "2", 1), placedOn("low-1", "low", "n2", "2", 1)},
		members:    toPlace(3, "2"),
		wantWhyNot: "evicting lower-priority pods and gangs cannot make room for 3 member(s)",
	}, {
		name:     "one topology domain: the rack with the cheaper victims",
		nodes:    racks,
		topology: "rack",
		placed: []*v1.Pod{placedOn("mid-0", "mid", "a1", "2", 5), placedOn("mid-1", "mid", "a2", "2", 5),
			placedOn("low-0", "low", "b1", "2", 1), placedOn("low-1", "low", "b2", "2", 1)},
		members:     toPlace(2, "2"),
		wantVictims: []string{"group:ns/low"},
		wantNodes:   map[string]string{"m0": "b1", "m1": "b2"},
		wantDomain:  "rb",
	}, {
		name:       "a split across racks does not count",
		nodes:      []*v1.Node{cpuNode("a1", "2", "ra"), cpuNode("b1", "2", "rb")},
		topology:   "rack",
		placed:     []*v1.Pod{placedOn("low-0", "low", "a1", "2", 1), placedOn("low-1", "low", "b1", "2", 1)},
		members:    toPlace(2, "2"),
		wantWhyNot: "evicting lower-priority pods and gangs cannot make room for 2 member(s) in any one rack domain",
	}, {
		name:       "a PodDisruptionBudget that allows no disruption is honoured",
		nodes:      twoNodes[:1],
		placed:     []*v1.Pod{placedOn("guarded", "", "n1", "2", 1)},
		pdbs:       []*policyv1.PodDisruptionBudget{guard("guarded")},
		members:    toPlace(1, "2"),
		wantWhyNot: "no pods or gangs of priority below 10 that may be evicted",
	}, {
		name:        "room that is free already: nobody is chosen",
		nodes:       twoNodes,
		placed:      []*v1.Pod{placedOn("low-0", "low", "n1", "2", 1)},
		members:     toPlace(1, "2"),
		wantFitsNow: true,
	}, {
		name:        "the group's own reservations count as free room",
		nodes:       twoNodes,
		placed:      []*v1.Pod{placedOn("own-0", "pg", "n1", "2", 10), placedOn("low-0", "low", "n2", "2", 1)},
		free:        []string{"own-0"},
		members:     toPlace(1, "2"),
		wantFitsNow: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nodes := nodeInfos(tc.nodes, tc.placed)
			sim := newCPUSim(nodes, tc.members)
			before := append([]int64(nil), sim.free...)
			req := Request{Group: "ns/pg", Priority: 10, Members: tc.members, Nodes: nodes, TopologyKey: tc.topology,
				Budgets: NewBudgets(tc.pdbs), Sim: sim}
			for _, p := range tc.placed {
				if strings.Contains(strings.Join(tc.free, ","), p.Name) {
					req.Free = append(req.Free, p)
				}
			}
			res := SearchRoom(req)
			if diff := cmp.Diff(before, sim.free); diff != "" {
				t.Errorf("the simulator was left changed (-before +after):\n%s", diff)
			}
			if res.FitsNow != tc.wantFitsNow || res.WhyNot != tc.wantWhyNot {
				t.Errorf("FitsNow, WhyNot = %v, %q; want %v, %q", res.FitsNow, res.WhyNot, tc.wantFitsNow, tc.wantWhyNot)
			}
			if (res.Choice != nil) != (tc.wantVictims != nil) {
				t.Fatalf("choice %+v, want victims %v", res.Choice, tc.wantVictims)
			}
			if res.Choice == nil {
				return
			}
			gotNodes := map[string]string{}
			for uid, node := range res.Choice.Nodes {
				gotNodes[string(uid)] = node
			}
			if diff := cmp.Diff(tc.wantVictims, keys(res.Choice.Victims)); diff != "" {
				t.Errorf("victims (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantNodes, gotNodes); diff != "" {
				t.Errorf("member nodes (-want +got):\n%s", diff)
			}
			if res.Choice.Domain != tc.wantDomain {
				t.Errorf("domain %q, want %q", res.Choice.Domain, tc.wantDomain)
			}
		})
	}
}

func TestSearchRoomConsidersTheLeastImportantUnits(t *testing.T) {
	// More candidates than one domain's search considers: only the least
	// important maxCandidateUnits are tried, so the one pod of priority 1
	// (among many of priority 5) is what goes.
	var nodes []*v1.Node
	var placed []*v1.Pod
	for i := range maxCandidateUnits + 10 {
		name := fmt.Sprintf("n%03d", i)
		nodes = append(nodes, cpuNode(name, "2", "r1"))
		priority := int32(5)
		if i == maxCandidateUnits+5 {
			priority = 1
		}
		placed = append(placed, placedOn("p-"+name, "", name, "2", priority))
	}
	infos := nodeInfos(nodes, placed)
	members := toPlace(1, "2")
	res := SearchRoom(Request{Group: "ns/pg", Priority: 10, Members: members, Nodes: infos, Budgets: NewBudgets(nil), Sim: newCPUSim(infos, members)})
	if res.Choice == nil {
		t.Fatalf("no choice: %+v", res)
	}
	want := fmt.Sprintf("ns/p-n%03d", maxCandidateUnits+5)
	if diff := cmp.Diff([]string{want}, keys(res.Choice.Victims)); diff != "" {
		t.Errorf("victims (-want +got):\n%s", diff)
	}
}
