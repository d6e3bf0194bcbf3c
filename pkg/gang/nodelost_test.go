package gang

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	"k8s.io/utils/ptr"
)

// TestNodeLostUnderWaitingGang: a node that gains a NoExecute taint its
// waiting members do not tolerate for good (the node lifecycle controller's
// unreachable taint when the kubelet stops reporting) fails the group's
// attempt, so the group is planned again instead of binding members to a node
// that will not run them.
func TestNodeLostUnderWaitingGang(t *testing.T) {
	unreachable := v1.Taint{Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoExecute}
	tests := []struct {
		name       string
		node       string // the node that changes
		taints     []v1.Taint
		toleration *v1.Toleration // given to every member
		wantReject bool
	}{
		{name: "unreachable taint on the reserved node", node: "node1", taints: []v1.Taint{unreachable}, wantReject: true},
		{
			name: "tolerated for 300 s only, as the API server adds: still released", node: "node1", taints: []v1.Taint{unreachable},
			toleration: &v1.Toleration{Key: v1.TaintNodeUnreachable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
			wantReject: true,
		},
		{
			name: "tolerated for good: the members keep waiting", node: "node1", taints: []v1.Taint{unreachable},
			toleration: &v1.Toleration{Key: v1.TaintNodeUnreachable, Operator: v1.TolerationOpExists},
		},
		{name: "NoSchedule only: binding there is still allowed", node: "node1", taints: []v1.Taint{{Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoSchedule}}},
		{name: "another node tainted", node: "node2", taints: []v1.Taint{unreachable}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG(testPG, 3))
			pods := members(3, "1")
			for _, p := range pods {
				if tc.toleration != nil {
					p.Spec.Tolerations = []v1.Toleration{*tc.toleration}
				}
			}
			e.addPods(pods...)
			e.park("node1", pods[:2]...)
			e.events()
			old := st.MakeNode().Name(tc.node).Obj()
			tainted := old.DeepCopy()
			tainted.Spec.Taints = tc.taints
			e.pl.onNodeUpdate(old, tainted)
			// The same taint seen again (a resync) is no new loss.
			e.pl.onNodeUpdate(tainted, tainted.DeepCopy())
			for _, p := range pods[:2] {
				if !tc.wantReject {
					if !e.stillWaiting(p) {
						t.Errorf("%s no longer waits at Permit: %v", p.Name, e.outcome(p))
					}
					continue
				}
				if s := e.outcome(p); s.IsSuccess() {
					t.Errorf("%s was allowed to bind to the lost node", p.Name)
				}
			}
			var rejected []string
			for _, ev := range e.events() {
				if strings.Contains(ev, "GangRejected") {
					rejected = append(rejected, ev)
				}
			}
			if tc.wantReject {
				want := "node node1, which a waiting member had reserved, was tainted node.kubernetes.io/unreachable:NoExecute; released 2 waiting member(s)"
				if len(rejected) != 1 || !strings.Contains(rejected[0], want) {
					t.Errorf("events %q, want one GangRejected saying %q", rejected, want)
				}
				if n := e.pl.groups.reservedCount(testKey); n != 0 {
					t.Errorf("%d reservation(s) left after the release", n)
				}
			} else if len(rejected) != 0 {
				t.Errorf("unexpected rejection: %q", rejected)
			}
		})
	}
}
