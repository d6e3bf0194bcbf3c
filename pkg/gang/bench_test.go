package gang

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
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
