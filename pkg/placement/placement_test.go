package placement

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cosched/cosched/pkg/capacity"
)

const gi = int64(1) << 30

// resourceSim is a Simulator over plain free-room vectors: a member fits a
// node when its request fits what is left there.
type resourceSim struct {
	free  map[int]capacity.Vector
	in    *Input
	calls *int
}

func (s *resourceSim) Fits(m, n int) bool {
	*s.calls++
	return s.in.Members[m].Request.Fits(s.free[n])
}

func (s *resourceSim) Place(m, n int) {
	s.free[n] = s.free[n].Sub(s.in.Members[m].Request)
}

func openResources(in *Input, calls *int) func(Domain) Simulator {
	return func(d Domain) Simulator {
		sim := &resourceSim{free: map[int]capacity.Vector{}, in: in, calls: calls}
		for _, n := range d.Nodes {
			sim.free[n] = in.Nodes[n].Free
		}
		return sim
	}
}

func vec(milliCPU, memory int64) capacity.Vector {
	return capacity.Vector{MilliCPU: milliCPU, Memory: memory}
}

// byHost makes every node its own domain (topology key kubernetes.io/hostname).
func byHost(nodes []Node) []Domain {
	out := make([]Domain, len(nodes))
	for i, n := range nodes {
		out[i] = Domain{Value: n.Name, Nodes: []int{i}}
	}
	return out
}

// byRack puts perRack consecutive nodes in each rack.
func byRack(nodes []Node, perRack int) []Domain {
	var out []Domain
	for i := range nodes {
		if i%perRack == 0 {
			out = append(out, Domain{Value: fmt.Sprintf("rack-%d", i/perRack)})
		}
		out[len(out)-1].Nodes = append(out[len(out)-1].Nodes, i)
	}
	return out
}

func members(prefix string, n int, req capacity.Vector) []Member {
	out := make([]Member, n)
	for i := range out {
		out[i] = Member{ID: fmt.Sprintf("%s-%d", prefix, i), Request: req}
	}
	return out
}

func TestCompute(t *testing.T) {
	appLog := []Member{
		{ID: "app", Request: vec(100, gi), Shape: 0},
		{ID: "log-collector", Request: vec(100, gi/2), Shape: 1},
	}
	nodeAB := []Node{
		{Name: "node-a", Free: vec(4000, gi+gi/4)},
		{Name: "node-b", Free: vec(4000, 2*gi)},
	}
	racks := []Node{
		{Name: "r0-n0", Free: vec(2000, 8*gi)}, {Name: "r0-n1", Free: vec(2000, 8*gi)},
		{Name: "r1-n0", Free: vec(4000, 8*gi)}, {Name: "r1-n1", Free: vec(4000, 8*gi)},
		{Name: "r2-n0", Free: vec(8000, 8*gi)}, {Name: "r2-n1", Free: vec(8000, 8*gi)},
	}
	tests := []struct {
		name       string
		nodes      []Node
		domains    func([]Node) []Domain
		members    []Member
		need       int
		wantDomain string
		wantNodes  map[string]string
		wantReason string
	}{
		{
			name:       "app and log collector go to node-b, the only node that holds both",
			nodes:      nodeAB,
			domains:    byHost,
			members:    appLog,
			need:       2,
			wantDomain: "node-b",
			wantNodes:  map[string]string{"app": "node-b", "log-collector": "node-b"},
		},
		{
			name:       "the tightest rack that fits wins, leaving big racks free",
			nodes:      racks,
			domains:    func(n []Node) []Domain { return byRack(n, 2) },
			members:    members("w", 4, vec(1500, gi)),
			need:       4,
			wantDomain: "rack-1",
			wantNodes:  map[string]string{"w-0": "r1-n0", "w-1": "r1-n0", "w-2": "r1-n1", "w-3": "r1-n1"},
		},
		{
			name:       "a rack whose total is enough but whose nodes are too small is skipped",
			nodes:      racks,
			domains:    func(n []Node) []Domain { return byRack(n, 2) },
			members:    members("big", 2, vec(3000, gi)),
			need:       2,
			wantDomain: "rack-1",
			wantNodes:  map[string]string{"big-0": "r1-n0", "big-1": "r1-n1"},
		},
		{
			name:    "heterogeneous members are placed largest first",
			nodes:   []Node{{Name: "n0", Free: vec(3000, 8*gi)}, {Name: "n1", Free: vec(1000, 8*gi)}},
			domains: func(n []Node) []Domain { return []Domain{{Value: "zone-a", Nodes: []int{0, 1}}} },
			members: []Member{
				{ID: "small-0", Request: vec(1000, gi), Shape: 1},
				{ID: "big", Request: vec(2000, gi), Shape: 0},
				{ID: "small-1", Request: vec(1000, gi), Shape: 1},
			},
			need:       3,
			wantDomain: "zone-a",
			wantNodes:  map[string]string{"big": "n0", "small-0": "n0", "small-1": "n1"},
		},
		{
			name:       "a quorum smaller than the group is enough",
			nodes:      []Node{{Name: "n0", Free: vec(2000, 8*gi)}},
			domains:    byHost,
			members:    members("w", 3, vec(1000, gi)),
			need:       2,
			wantDomain: "n0",
			wantNodes:  map[string]string{"w-0": "n0", "w-1": "n0"},
		},
		{
			name:       "no domain has the room",
			nodes:      nodeAB,
			domains:    byHost,
			members:    members("w", 2, vec(100, 2*gi)),
			need:       2,
			wantReason: "no domain has room for 2 members (cpu 200m, memory 4Gi); the roomiest, node-b, has memory 2Gi free",
		},
		{
			name:       "room in total but not node by node",
			nodes:      []Node{{Name: "n0", Free: vec(1500, 8*gi)}, {Name: "n1", Free: vec(1500, 8*gi)}},
			domains:    func(n []Node) []Domain { return []Domain{{Value: "rack-0", Nodes: []int{0, 1}}} },
			members:    members("w", 3, vec(1000, gi)),
			need:       3,
			wantReason: "no domain holds 3 members together; the best, rack-0, holds 2",
		},
		{
			name:       "no node carries the label",
			nodes:      nodeAB,
			domains:    func([]Node) []Domain { return nil },
			members:    appLog,
			need:       2,
			wantReason: "no node carries the topology label",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			in := Input{Nodes: tc.nodes, Domains: tc.domains(tc.nodes), Members: tc.members, Need: tc.need}
			in.Open = openResources(&in, &calls)
			res := Compute(in)
			if tc.wantReason != "" {
				if res.Plan != nil {
					t.Fatalf("got plan %+v, want none: %s", res.Plan, tc.wantReason)
				}
				if !strings.Contains(res.Reason, tc.wantReason) {
					t.Errorf("Reason = %q, want %q", res.Reason, tc.wantReason)
				}
				return
			}
			if res.Plan == nil {
				t.Fatalf("no plan: %s", res.Reason)
			}
			if res.Plan.Domain != tc.wantDomain {
				t.Errorf("Domain = %q, want %q", res.Plan.Domain, tc.wantDomain)
			}
			if diff := cmp.Diff(tc.wantNodes, res.Plan.Nodes); diff != "" {
				t.Errorf("Nodes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// affinitySim accepts a member on any node of the domain for the first
// placement, then only on the node where the first member went: required
// pod affinity to the group on the hostname.
type affinitySim struct {
	resourceSim
	anchor int
}

func (s *affinitySim) Fits(m, n int) bool {
	return (s.anchor < 0 || s.anchor == n) && s.resourceSim.Fits(m, n)
}

func (s *affinitySim) Place(m, n int) {
	if s.anchor < 0 {
		s.anchor = n
	}
	s.resourceSim.Place(m, n)
}

func TestComputeAsksTheSimulator(t *testing.T) {
	// The zone has room in total, but the members want one node, and no
	// node holds all three: the simulator, not the sum, must decide.
	nodes := []Node{{Name: "n0", Free: vec(2000, 8*gi)}, {Name: "n1", Free: vec(2000, 8*gi)}, {Name: "n2", Free: vec(4000, 8*gi)}}
	in := Input{Nodes: nodes, Domains: []Domain{{Value: "zone-a", Nodes: []int{0, 1, 2}}}, Members: members("w", 3, vec(1000, gi)), Need: 3}
	calls := 0
	in.Open = func(d Domain) Simulator {
		inner := openResources(&in, &calls)(d).(*resourceSim)
		return &affinitySim{resourceSim: *inner, anchor: -1}
	}
	res := Compute(in)
	if res.Plan != nil {
		t.Fatalf("got plan %+v; three 1-CPU members cannot share a 2-CPU first node", res.Plan.Nodes)
	}
	if !strings.Contains(res.Reason, "holds 2") {
		t.Errorf("Reason = %q", res.Reason)
	}
}

func TestComputeSharesOnePassForIdenticalMembers(t *testing.T) {
	// 1000 identical members over 5000 nodes in one domain: with a shared
	// cursor the simulator is asked about each node about once, not once
	// per member.
	nodes := make([]Node, 5000)
	all := make([]int, len(nodes))
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("n%d", i), Free: vec(4000, 16*gi)}
		all[i] = i
	}
	in := Input{Nodes: nodes, Domains: []Domain{{Value: "cluster", Nodes: all}}, Members: members("w", 1000, vec(1000, gi)), Need: 1000}
	calls := 0
	in.Open = openResources(&in, &calls)
	res := Compute(in)
	if res.Plan == nil || len(res.Plan.Nodes) != 1000 {
		t.Fatalf("plan = %+v, reason %q", res.Plan, res.Reason)
	}
	if calls > 1000+len(nodes) {
		t.Errorf("simulator asked %d times; want at most members+nodes = %d", calls, 1000+len(nodes))
	}
}

func TestComputeSkipsDomainsByArithmetic(t *testing.T) {
	nodes := make([]Node, 100)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("n%d", i), Free: vec(500, gi)}
	}
	nodes[77].Free = vec(4000, 8*gi)
	in := Input{Nodes: nodes, Domains: byHost(nodes), Members: members("w", 3, vec(1000, gi)), Need: 3}
	calls := 0
	in.Open = openResources(&in, &calls)
	res := Compute(in)
	if res.Plan == nil || res.Plan.Domain != "n77" {
		t.Fatalf("plan = %+v, reason %q", res.Plan, res.Reason)
	}
	if res.Simulated != 1 {
		t.Errorf("simulated %d domains; only n77 has the room", res.Simulated)
	}
}

func BenchmarkCompute(b *testing.B) {
	for _, tc := range []struct {
		name    string
		nodes   int
		perDom  int
		members int
	}{
		{"hostname/nodes=5000/members=3", 5000, 1, 3},
		{"rack/nodes=5000/members=1000", 5000, 500, 1000},
	} {
		nodes := make([]Node, tc.nodes)
		for i := range nodes {
			nodes[i] = Node{Name: fmt.Sprintf("n%d", i), Free: vec(4000, 16*gi)}
		}
		domains := byRack(nodes, tc.perDom)
		ms := members("w", tc.members, vec(1000, gi))
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				calls := 0
				in := Input{Nodes: nodes, Domains: domains, Members: ms, Need: tc.members}
				in.Open = openResources(&in, &calls)
				if res := Compute(in); res.Plan == nil {
					b.Fatal(res.Reason)
				}
			}
		})
	}
}
