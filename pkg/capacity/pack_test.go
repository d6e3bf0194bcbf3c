package capacity

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
)

const gi = int64(1) << 30

func node(name string, milliCPU, memory int64) Node {
	return Node{Name: name, Free: Vector{MilliCPU: milliCPU, Memory: memory}, Pods: 110}
}

func req(milliCPU, memory int64) Vector { return Vector{MilliCPU: milliCPU, Memory: memory} }

func TestPack(t *testing.T) {
	tests := []struct {
		name        string
		nodes       []Node
		requests    []Vector
		wantPlaced  int
		wantBlocked string
	}{
		{
			name:       "everything fits",
			nodes:      []Node{node("a", 2000, 4*gi), node("b", 2000, 4*gi)},
			requests:   []Vector{req(1000, gi), req(1000, gi), req(1000, gi)},
			wantPlaced: 3,
		},
		{
			// The aggregate says 1.5 CPU is free; no node holds a 1-CPU pod.
			name:        "fragmented room does not hold a member",
			nodes:       []Node{node("a", 750, 4*gi), node("b", 750, 4*gi)},
			requests:    []Vector{req(1000, gi)},
			wantPlaced:  0,
			wantBlocked: "member needs cpu 1, best node has 750m free",
		},
		{
			// The mission's example: Node_A 1.25G, Node_B 2G, App 1G, LogCollector 0.5G.
			name:       "app and log collector fit node by node",
			nodes:      []Node{node("node-a", 4000, gi+gi/4), node("node-b", 4000, 2*gi)},
			requests:   []Vector{req(100, gi), req(100, gi/2)},
			wantPlaced: 2,
		},
		{
			name:        "largest first leaves room for the rest",
			nodes:       []Node{node("a", 3000, 8*gi), node("b", 1000, 8*gi)},
			requests:    []Vector{req(1000, gi), req(2000, gi), req(1000, gi)},
			wantPlaced:  3,
			wantBlocked: "",
		},
		{
			name:        "memory blocks",
			nodes:       []Node{node("a", 8000, gi), node("b", 8000, gi/2)},
			requests:    []Vector{req(100, 2*gi)},
			wantPlaced:  0,
			wantBlocked: "member needs memory 2Gi, best node has 1Gi free",
		},
		{
			name:        "no node has both",
			nodes:       []Node{node("cpu-rich", 8000, gi/2), node("mem-rich", 500, 8*gi)},
			requests:    []Vector{req(1000, gi)},
			wantPlaced:  0,
			wantBlocked: "member needs cpu 1, memory 1Gi on one node, no node has all of it",
		},
		{
			name:        "pod slots run out",
			nodes:       []Node{{Name: "full", Free: req(8000, 8*gi), Pods: 1}},
			requests:    []Vector{req(100, gi), req(100, gi)},
			wantPlaced:  1,
			wantBlocked: "member needs cpu 100m, memory 1Gi, nodes with room are at their pod limit once 1 member(s) are placed",
		},
		{
			name:  "extended resources",
			nodes: []Node{{Name: "gpu", Free: Vector{MilliCPU: 8000, Memory: 8 * gi, Scalars: map[v1.ResourceName]int64{"nvidia.com/gpu": 1}}, Pods: 110}},
			requests: []Vector{
				{MilliCPU: 100, Scalars: map[v1.ResourceName]int64{"nvidia.com/gpu": 1}},
				{MilliCPU: 100, Scalars: map[v1.ResourceName]int64{"nvidia.com/gpu": 1}},
			},
			wantPlaced:  1,
			wantBlocked: "member needs nvidia.com/gpu 1, best node has 0 free once 1 member(s) are placed",
		},
		{
			// Largest first places the big member and leaves no room for two
			// small ones; smallest first places both small ones: more members.
			name:        "smallest first wins when it places more",
			nodes:       []Node{node("a", 2000, 8*gi)},
			requests:    []Vector{req(2000, gi), req(1000, gi), req(1000, gi)},
			wantPlaced:  2,
			wantBlocked: "member needs cpu 1, best node has 0 free once 1 member(s) are placed",
		},
		{name: "no nodes", requests: []Vector{req(1, 1)}, wantPlaced: 0, wantBlocked: "member needs cpu 1m, best node has 0 free"},
		{name: "no requests", nodes: []Node{node("a", 1, 1)}, wantPlaced: 0},
	}
	for _, tc := range tests {
		for packer, pack := range map[string]func([]Node, []Vector) PackResult{
			"Pack": Pack,
			"PackFrom": func(nodes []Node, requests []Vector) PackResult {
				return PackFrom(&countingSource{nodes: nodes}, requests)
			},
		} {
			t.Run(packer+"/"+tc.name, func(t *testing.T) {
				before := append([]Node(nil), tc.nodes...)
				got := pack(tc.nodes, tc.requests)
				if got.Placed != tc.wantPlaced {
					t.Errorf("Placed = %d, want %d", got.Placed, tc.wantPlaced)
				}
				gotBlocked := ""
				if got.Blocked != nil {
					gotBlocked = got.Blocked.String()
				}
				if gotBlocked != tc.wantBlocked {
					t.Errorf("Blocked = %q, want %q", gotBlocked, tc.wantBlocked)
				}
				for i := range before {
					if !before[i].Free.Equal(tc.nodes[i].Free) || before[i].Pods != tc.nodes[i].Pods {
						t.Fatalf("%s modified its input node %d", packer, i)
					}
				}
			})
		}
	}
}

// countingSource serves nodes, the ones named in skip as not usable, and
// counts how many it was asked for.
type countingSource struct {
	nodes []Node
	skip  map[string]bool
	asked int
}

func (s *countingSource) Len() int { return len(s.nodes) }

func (s *countingSource) At(i int) (Node, bool) {
	s.asked++
	return s.nodes[i], !s.skip[s.nodes[i].Name]
}

func TestPackFrom(t *testing.T) {
	many := make([]Node, 1000)
	for i := range many {
		many[i] = node(fmt.Sprintf("n%d", i), 4000, 8*gi)
	}
	tests := map[string]struct {
		src         *countingSource
		requests    []Vector
		wantPlaced  int
		wantBlocked string
		// wantAskedAtMost bounds the nodes looked at.
		wantAskedAtMost int
	}{
		"a group with room stops at the nodes it needs": {
			src:             &countingSource{nodes: many},
			requests:        []Vector{req(3000, gi), req(3000, gi), req(1000, gi)},
			wantPlaced:      3,
			wantAskedAtMost: 10,
		},
		"nodes that may not be used are passed over": {
			src: &countingSource{nodes: []Node{node("tainted", 8000, 8*gi), node("b", 1000, gi)},
				skip: map[string]bool{"tainted": true}},
			requests:        []Vector{req(1000, gi), req(1000, gi)},
			wantPlaced:      1,
			wantBlocked:     "member needs cpu 1, best node has 0 free once 1 member(s) are placed",
			wantAskedAtMost: 100,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := PackFrom(tc.src, tc.requests)
			gotBlocked := ""
			if got.Blocked != nil {
				gotBlocked = got.Blocked.String()
			}
			if got.Placed != tc.wantPlaced || gotBlocked != tc.wantBlocked {
				t.Errorf("PackFrom = %d placed, blocked %q; want %d, %q", got.Placed, gotBlocked, tc.wantPlaced, tc.wantBlocked)
			}
			if tc.src.asked > tc.wantAskedAtMost {
				t.Errorf("looked at %d nodes, want at most %d", tc.src.asked, tc.wantAskedAtMost)
			}
		})
	}
}

func TestNodeOfAndRequestOf(t *testing.T) {
	n := st.MakeNode().Name("n1").Capacity(map[v1.ResourceName]string{
		v1.ResourceCPU: "4", v1.ResourceMemory: "8Gi", v1.ResourcePods: "10", "example.com/fpga": "2",
	}).Obj()
	running := st.MakePod().Name("running").Node("n1").Req(map[v1.ResourceName]string{
		v1.ResourceCPU: "1500m", v1.ResourceMemory: "2Gi", "example.com/fpga": "1",
	}).Obj()
	infos := tf.BuildNodeInfos([]*v1.Node{n})
	infos[0].AddPodInfo(mustPodInfo(t, running))

	got := NodeOf(infos[0])
	want := Node{Name: "n1", Pods: 9, Free: Vector{MilliCPU: 2500, Memory: 6 * gi, Scalars: map[v1.ResourceName]int64{"example.com/fpga": 1}}}
	if got.Name != want.Name || got.Pods != want.Pods || !got.Free.Equal(want.Free) {
		t.Errorf("NodeOf() = %+v, want %+v", got, want)
	}

	withInit := st.MakePod().Name("p").Req(map[v1.ResourceName]string{v1.ResourceCPU: "500m", v1.ResourceMemory: "1Gi"}).
		InitReq(map[v1.ResourceName]string{v1.ResourceCPU: "2", v1.ResourceMemory: "512Mi"}).Obj()
	if got, want := RequestOf(withInit), req(2000, gi); !got.Equal(want) {
		t.Errorf("RequestOf() = %v, want %v (an init container's larger request counts)", got, want)
	}
}

func TestVectorString(t *testing.T) {
	v := Vector{MilliCPU: 1500, Memory: 512 << 20, Scalars: map[v1.ResourceName]int64{"nvidia.com/gpu": 2}}
	if got, want := v.String(), "cpu 1500m, memory 512Mi, nvidia.com/gpu 2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Vector{}).String(); got != "nothing" {
		t.Errorf("empty String() = %q", got)
	}
}

func TestTotalFreeIgnoresOvercommit(t *testing.T) {
	nodes := []Node{node("over", -500, -gi), node("ok", 1000, 2*gi)}
	if got, want := TotalFree(nodes), req(1000, 2*gi); !got.Equal(want) {
		t.Errorf("TotalFree() = %v, want %v", got, want)
	}
	min := FromList(v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")})
	if missing := min.Missing(TotalFree(nodes)); missing != v1.ResourceCPU {
		t.Errorf("Missing() = %q, want cpu", missing)
	}
}

func BenchmarkPackIdenticalMembers(b *testing.B) {
	for _, size := range []struct{ nodes, members int }{{5000, 3}, {5000, 1000}} {
		nodes := make([]Node, size.nodes)
		for i := range nodes {
			nodes[i] = node(fmt.Sprintf("n%d", i), 4000, 16*gi)
		}
		requests := make([]Vector, size.members)
		for i := range requests {
			requests[i] = req(1000, 2*gi)
		}
		b.Run(fmt.Sprintf("nodes=%d/members=%d", size.nodes, size.members), func(b *testing.B) {
			for b.Loop() {
				if res := Pack(nodes, requests); res.Placed != size.members {
					b.Fatalf("placed %d", res.Placed)
				}
			}
		})
	}
}
