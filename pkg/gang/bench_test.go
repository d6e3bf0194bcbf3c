package gang

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

// BenchmarkPermitBigGang runs every member of one big gang through Reserve
// and Permit, as the scheduling cycle does: each waits until the last one
// completes the quorum and the group is admitted. What it measures is the
// group bookkeeping per member (counting the group at each Permit), which
// grows with the group when it lists the group's pods.
func BenchmarkPermitBigGang(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				e := newTestEnv(b)
				e.addPodGroups(makePG(testPG, int32(size)))
				pods := make([]*v1.Pod, size)
				for i := range pods {
					pods[i] = member(fmt.Sprintf("m%d", i), testPG).Req(map[v1.ResourceName]string{v1.ResourceCPU: "1m"}).Obj()
				}
				e.informerAdd(pods...)
				b.StartTimer()
				for _, p := range pods {
					if s, _ := e.reserveAndPermit(p, "node1"); !s.IsSuccess() && !s.IsWait() {
						b.Fatalf("Permit %s: %v", p.Name, s)
					}
				}
				b.StopTimer()
				if s := e.outcome(pods[0]); !s.IsSuccess() {
					b.Fatalf("the gang was not admitted: %v", s)
				}
				e.stopScheduler()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkPlanBigGroup plans a 1000-member group with the profile's
// plugins: over 500 nodes as one domain, and over two racks where the
// tighter one passes the arithmetic but holds only 700 members, so the
// simulation runs for both.
func BenchmarkPlanBigGroup(b *testing.B) {
	const size = 1000
	pending := make([]*v1.Pod, size)
	for i := range pending {
		pending[i] = member(fmt.Sprintf("m%04d", i), testPG).
			Req(map[v1.ResourceName]string{v1.ResourceCPU: "2", v1.ResourceMemory: "1Gi"}).Obj()
	}
	racked := func(n int, rack, cpu, memory string) []*v1.Node {
		nodes := make([]*v1.Node, n)
		for i := range nodes {
			nodes[i] = st.MakeNode().Name(fmt.Sprintf("%s-%04d", rack, i)).Label("rack", rack).
				Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: memory, v1.ResourcePods: "110"}).Obj()
		}
		return nodes
	}
	for _, bc := range []struct {
		name        string
		topologyKey string
		nodes       []*v1.Node
	}{
		{name: "cluster/nodes=500", nodes: racked(500, "a", "4", "8Gi")},
		{name: "racks/nodes=1200", topologyKey: "rack", nodes: append(racked(700, "a", "3", "4Gi"), racked(500, "b", "5", "8Gi")...)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newTestEnv(b)
			e.setCluster(nil, bc.nodes)
			nodes, err := e.snapshot.NodeInfos().List()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if plan, why := e.pl.planGroup(e.ctx, bc.topologyKey, "", size, pending, nodes); plan == nil {
					b.Fatalf("no plan: %s", why)
				}
			}
		})
	}
}

// BenchmarkPreemptForBigGroup runs gang preemption's search for a group of
// 16 members over 100 full nodes of lower-priority plain pods: the search
// simulates the cluster once per candidate it may give back.
func BenchmarkPreemptForBigGroup(b *testing.B) {
	var nodes []*v1.Node
	var placed, pending []*v1.Pod
	for i := range 100 {
		name := fmt.Sprintf("n%03d", i)
		nodes = append(nodes, cpuNode(name, "2", "r1"))
		placed = append(placed, running("low-"+name, "", name, "2", 1))
	}
	for i := range 16 {
		pending = append(pending, pendingMember(fmt.Sprintf("m%02d", i), "2", 10))
	}
	for b.Loop() {
		b.StopTimer()
		e := newTestEnv(b)
		evicted := e.recordEvictions()
		e.addPodGroups(makePG(testPG, int32(len(pending))))
		e.addPods(placed...)
		e.addPods(pending...)
		e.setCluster(placed, nodes)
		state := framework.NewCycleState()
		state.Write(preFilterRejectedKey, preFilterRejected{noFit: true})
		b.StartTimer()
		if _, s := e.pl.PostFilter(e.ctx, state, pending[0], framework.NewDefaultNodeToStatus()); !s.IsSuccess() {
			b.Fatalf("PostFilter: %v", s)
		}
		b.StopTimer()
		if got := len(evicted()); got != len(pending) {
			b.Fatalf("%d evicted, want %d", got, len(pending))
		}
		e.stopScheduler()
		b.StartTimer()
	}
}
