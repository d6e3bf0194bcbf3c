package testutil

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil/fakenode"
)

// SchedulerName is the profile name the shipped config gives cosched.
const SchedulerName = "cosched"

// PodGroup returns a PodGroup with the given quorum.
func PodGroup(ns, name string, minMember int32) *schedv1alpha1.PodGroup {
	return &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember},
	}
}

// WithTimeout sets scheduleTimeoutSeconds.
func WithTimeout(pg *schedv1alpha1.PodGroup, seconds int32) *schedv1alpha1.PodGroup {
	pg.Spec.ScheduleTimeoutSeconds = ptr.To(seconds)
	return pg
}

// WithMinResources sets minResources from "cpu", "memory" quantities.
func WithMinResources(pg *schedv1alpha1.PodGroup, cpu, memory string) *schedv1alpha1.PodGroup {
	pg.Spec.MinResources = Resources(cpu, memory)
	return pg
}

// Resources builds a ResourceList; an empty string leaves a resource out.
func Resources(cpu, memory string) v1.ResourceList {
	rl := v1.ResourceList{}
	if cpu != "" {
		rl[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		rl[v1.ResourceMemory] = resource.MustParse(memory)
	}
	return rl
}

// Pod returns a pause pod for cosched requesting cpu and memory; group may
// be "" for a pod outside any group.
func Pod(ns, name, group, cpu, memory string) *v1.Pod {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}},
		Spec: v1.PodSpec{
			SchedulerName: SchedulerName,
			Containers: []v1.Container{{
				Name:      "pause",
				Image:     "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: Resources(cpu, memory)},
			}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	if group != "" {
		pod.Labels[podgroup.Label] = group
	}
	return pod
}

// Members returns n pods named <group>-<i> in group.
func Members(ns, group string, n int, cpu, memory string) []*v1.Pod {
	pods := make([]*v1.Pod, n)
	for i := range pods {
		pods[i] = Pod(ns, fmt.Sprintf("%s-%d", group, i), group, cpu, memory)
	}
	return pods
}

// Priority classes that CreatePriorityClasses installs.
const (
	HighPriority = "cosched-test-high"
	LowPriority  = "cosched-test-low"
)

// WithPriorityClass sets the pod's priority class.
func WithPriorityClass(pod *v1.Pod, class string) *v1.Pod {
	pod.Spec.PriorityClassName = class
	return pod
}

// Node returns a ready node with exactly the given allocatable cpu and
// memory that otherwise looks like what a kubelet registers (see fakenode):
// 110 pods, 100Gi of ephemeral-storage, 0 huge pages, the well-known labels
// (labels override or add to them), nodeInfo, addresses and conditions.
func Node(name, cpu, memory string, labels map[string]string) *v1.Node {
	return fakenode.New(name, Resources(cpu, memory), labels)
}
