package simulation

import (
	"context"
	"encoding/json"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/cosched/cosched/pkg/capacity"
)

// StateKey is written into every cycle state a simulation runs plugins in,
// so that a plugin can tell a simulation from a real scheduling cycle (the
// gang plugin's own PreFilter stands aside in one).
const StateKey fwk.StateKey = "CoschedGang/simulation"

type marker struct{}

func (marker) Clone() fwk.StateData { return marker{} }

// shape is one requirement class of members: a representative member and
// the cycle state its PreFilter plugins computed, which the simulation
// keeps up to date with every change.
type shape struct {
	pod     *v1.Pod
	state   fwk.CycleState
	allowed *fwk.PreFilterResult
	failure string
}

// shapesFor runs the PreFilter plugins once per shape of pods.
func shapesFor(ctx context.Context, fw Framework, pods []*v1.Pod) ([]shape, []int) {
	reps, memberShape := shapesOf(pods)
	shapes := make([]shape, len(reps))
	for i, rep := range reps {
		state := framework.NewCycleState()
		state.Write(StateKey, marker{})
		res, status, _ := fw.RunPreFilterPlugins(ctx, state, rep)
		shapes[i] = shape{pod: rep, state: state, allowed: res}
		if !status.IsSuccess() {
			shapes[i].failure = status.Message()
		}
	}
	return shapes, memberShape
}

// shapesOf groups pods by everything the Filter plugins look at, so members
// made from one template share one PreFilter run (and one planning cursor).
func shapesOf(pods []*v1.Pod) ([]*v1.Pod, []int) {
	index := map[string]int{}
	var reps []*v1.Pod
	memberShape := make([]int, len(pods))
	for i, pod := range pods {
		key := shapeKey(pod)
		s, ok := index[key]
		if !ok {
			s = len(reps)
			index[key] = s
			reps = append(reps, pod)
		}
		memberShape[i] = s
	}
	return reps, memberShape
}

// Labels are left out on purpose: members differ in per-replica labels, and
// anti-affinity to those is rare inside one group.
func shapeKey(pod *v1.Pod) string {
	var ports []v1.ContainerPort
	for _, c := range pod.Spec.Containers {
		ports = append(ports, c.Ports...)
	}
	key, err := json.Marshal(struct {
		Request     capacity.Vector
		Selector    map[string]string
		Affinity    *v1.Affinity
		Tolerations []v1.Toleration
		Spread      []v1.TopologySpreadConstraint
		Ports       []v1.ContainerPort
		Volumes     []v1.Volume
		Claims      []v1.PodResourceClaim
		Priority    *int32
	}{capacity.RequestOf(pod), pod.Spec.NodeSelector, pod.Spec.Affinity, pod.Spec.Tolerations,
		pod.Spec.TopologySpreadConstraints, ports, pod.Spec.Volumes, pod.Spec.ResourceClaims, pod.Spec.Priority})
	if err != nil {
		return string(pod.UID) // cannot happen for API types; a shape of its own is safe
	}
	return string(key)
}
