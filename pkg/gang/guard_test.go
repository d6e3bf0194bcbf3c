package gang

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

func preemptedCopy(pod *v1.Pod) *v1.Pod {
	p := pod.DeepCopy()
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{
		Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: v1.PodReasonPreemptionByScheduler,
	})
	return p
}

func TestGangGuard(t *testing.T) {
	tests := []struct {
		name        string
		minMember   int32
		bound       int
		wantEvicted []string
	}{
		{name: "below quorum after one member is preempted: the rest go too", minMember: 3, bound: 3, wantEvicted: []string{"m2", "m3"}},
		{name: "quorum still held: nothing else goes", minMember: 2, bound: 3},
		{name: "the last member: nothing left to take", minMember: 1, bound: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			evicted := e.recordEvictions()
			e.addPodGroups(makePG(testPG, tc.minMember))
			var pods []*v1.Pod
			for _, p := range members(tc.bound, "1") {
				pods = append(pods, assumed(p, "node1"))
			}
			e.addPods(pods...)
			victim := preemptedCopy(pods[0])
			e.updatePod(victim)
			e.pl.onPodUpdate(pods[0], victim)
			// Nothing happens before the guard's delay.
			if got := evicted(); len(got) != 0 {
				t.Fatalf("evicted %v before the delay", got)
			}
			e.clock.Step(guardDelay)
			if len(tc.wantEvicted) > 0 {
				if err := wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, outcomeTimeout, true, func(context.Context) (bool, error) {
					return len(evicted()) == len(tc.wantEvicted), nil
				}); err != nil {
					t.Fatalf("evicted %v, want %v", evicted(), tc.wantEvicted)
				}
			} else {
				time.Sleep(50 * time.Millisecond)
			}
			if diff := cmp.Diff(tc.wantEvicted, evicted(), cmpEmptyStrings); diff != "" {
				t.Errorf("evicted (-want +got):\n%s", diff)
			}
		})
	}
}
