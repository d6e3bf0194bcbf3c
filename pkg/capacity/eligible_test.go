package capacity

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"

	"github.com/cosched/cosched/pkg/podgroup"
)

func TestEligible(t *testing.T) {
	cpu4 := map[v1.ResourceName]string{v1.ResourceCPU: "4", v1.ResourceMemory: "8Gi", v1.ResourcePods: "10"}
	nodes := tf.BuildNodeInfos([]*v1.Node{
		st.MakeNode().Name("plain").Capacity(cpu4).Obj(),
		st.MakeNode().Name("zone-a").Label("zone", "a").Capacity(cpu4).Obj(),
		st.MakeNode().Name("tainted").Capacity(cpu4).Taints([]v1.Taint{{Key: "dedicated", Effect: v1.TaintEffectNoSchedule}}).Obj(),
		st.MakeNode().Name("prefers-not").Capacity(cpu4).Taints([]v1.Taint{{Key: "spot", Effect: v1.TaintEffectPreferNoSchedule}}).Obj(),
	})
	// member asks for cpu at priority 10.
	member := func(name, group, cpu string) *st.PodWrapper {
		return st.MakePod().Name(name).UID(name).Namespace("ns").Label(podgroup.Label, group).Priority(10).
			Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu})
	}
	// On "plain": 3 CPU nominated to another group's pod, 1 CPU to a
	// lower-priority pod, 2 CPU to a sibling.
	nominatedOnPlain := []*v1.Pod{
		member("other", "other", "3").Obj(),
		member("low", "other", "1").Priority(1).Obj(),
		member("sibling", "g", "2").Obj(),
	}
	nominated := func(node string) []*v1.Pod {
		if node == "plain" {
			return nominatedOnPlain
		}
		return nil
	}
	cases := []struct {
		name      string
		pending   []*v1.Pod
		nominated func(string) []*v1.Pod
		// want is each eligible node's free milli-CPU.
		want map[string]int64
	}{{
		name:    "no toleration: the NoSchedule node is out, the PreferNoSchedule one in",
		pending: []*v1.Pod{member("a", "g", "1").Obj(), member("b", "g", "1").Obj()},
		want:    map[string]int64{"plain": 4000, "zone-a": 4000, "prefers-not": 4000},
	}, {
		name:    "a node selector every member shares",
		pending: []*v1.Pod{member("a", "g", "1").NodeSelector(map[string]string{"zone": "a"}).Obj(), member("b", "g", "1").NodeSelector(map[string]string{"zone": "a"}).Obj()},
		want:    map[string]int64{"zone-a": 4000},
	}, {
		name:    "a toleration every member shares",
		pending: []*v1.Pod{member("a", "g", "1").Toleration("dedicated").Obj()},
		want:    map[string]int64{"plain": 4000, "zone-a": 4000, "tainted": 4000, "prefers-not": 4000},
	}, {
		name:    "members that disagree keep every node (optimistic, never wrong)",
		pending: []*v1.Pod{member("a", "g", "1").NodeSelector(map[string]string{"zone": "a"}).Obj(), member("b", "g", "1").Obj()},
		want:    map[string]int64{"plain": 4000, "zone-a": 4000, "tainted": 4000, "prefers-not": 4000},
	}, {
		name:      "room nominated to another group's pod of at least the group's priority is taken",
		pending:   []*v1.Pod{member("a", "g", "1").Obj()},
		nominated: nominated,
		want:      map[string]int64{"plain": 1000, "zone-a": 4000, "prefers-not": 4000},
	}, {
		name:      "the lowest priority among the members decides",
		pending:   []*v1.Pod{member("a", "g", "1").Obj(), member("b", "g", "1").Priority(1).Obj()},
		nominated: nominated,
		want:      map[string]int64{"plain": 0, "zone-a": 4000, "prefers-not": 4000},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEligible(klog.Background(), tc.pending, nodes, tc.nominated)
			got := map[string]int64{}
			for i := range e.Len() {
				if n, ok := e.At(i); ok {
					got[n.Name] = n.Free.MilliCPU
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("eligible nodes' free milli-CPU = %v, want %v", got, tc.want)
			}
		})
	}
}
