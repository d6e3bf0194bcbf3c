package podgroupstatus

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

const (
	testNamespace = "ns"
	testGroup     = "pg"
)

var (
	earlier = metav1.NewTime(time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC))
	now     = metav1.NewTime(time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC))
)

type podOption func(*v1.Pod)

// member returns a pending, unscheduled pod of testGroup in testNamespace.
func member(name string, opts ...podOption) *v1.Pod {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: testNamespace,
			Name:      name,
			Labels:    map[string]string{schedv1alpha1.PodGroupLabel: testGroup},
		},
		Status: v1.PodStatus{Phase: v1.PodPending},
	}
	for _, opt := range opts {
		opt(pod)
	}
	return pod
}

func onNode(node string) podOption { return func(p *v1.Pod) { p.Spec.NodeName = node } }

func inPhase(phase v1.PodPhase) podOption { return func(p *v1.Pod) { p.Status.Phase = phase } }

func inNamespace(ns string) podOption { return func(p *v1.Pod) { p.Namespace = ns } }

func inGroup(group string) podOption {
	return func(p *v1.Pod) { p.Labels[schedv1alpha1.PodGroupLabel] = group }
}

func withoutGroupLabel() podOption { return func(p *v1.Pod) { p.Labels = nil } }

func deleting() podOption {
	return func(p *v1.Pod) { p.DeletionTimestamp = ptr.To(earlier) }
}

func ownedBy(kind, name string, controller bool) podOption {
	return func(p *v1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{
			APIVersion: "batch/v1", Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: ptr.To(controller),
		})
	}
}

func running(name string) *v1.Pod {
	return member(name, onNode("node"), inPhase(v1.PodRunning))
}

func podGroup(minMember int32, status schedv1alpha1.PodGroupStatus) *schedv1alpha1.PodGroup {
	return &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testGroup},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember},
		Status:     status,
	}
}

func TestCompute(t *testing.T) {
	tests := map[string]struct {
		pg   *schedv1alpha1.PodGroup
		pods []*v1.Pod
		want Summary
	}{
		"no pods stays pending with an empty phase": {
			pg:   podGroup(2, schedv1alpha1.PodGroupStatus{}),
			want: Summary{Status: schedv1alpha1.PodGroupStatus{}},
		},
		"fewer members than quorum stays pending with an empty phase": {
			pg:   podGroup(3, schedv1alpha1.PodGroupStatus{}),
			pods: []*v1.Pod{member("a"), member("b")},
			want: Summary{Members: 2, Status: schedv1alpha1.PodGroupStatus{}},
		},
		"quorum of members starts scheduling": {
			pg:   podGroup(2, schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupPending}),
			pods: []*v1.Pod{member("a"), member("b")},
			want: Summary{Members: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: now,
			}},
		},
		"scheduling keeps its start time while members get placed": {
			pg: podGroup(3, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{member("a", onNode("n1")), running("b"), member("c")},
			want: Summary{Members: 3, Scheduled: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, Running: 1, ScheduleStartTime: earlier,
			}},
		},
		"quorum running is running": {
			pg: podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{running("a"), running("b"), member("c")},
			want: Summary{Members: 3, Scheduled: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 2, ScheduleStartTime: earlier,
			}},
		},
		"succeeded members count towards running": {
			pg: podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 2, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{running("a"), member("b", onNode("n"), inPhase(v1.PodSucceeded))},
			want: Summary{Members: 2, Scheduled: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 1, Succeeded: 1, ScheduleStartTime: earlier,
			}},
		},
		"group first seen running gets a start time": {
			pg:   podGroup(2, schedv1alpha1.PodGroupStatus{}),
			pods: []*v1.Pod{running("a"), running("b")},
			want: Summary{Members: 2, Scheduled: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 2, ScheduleStartTime: now,
			}},
		},
		"quorum succeeded is finished": {
			pg: podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{
				member("a", onNode("n"), inPhase(v1.PodSucceeded)),
				member("b", onNode("n"), inPhase(v1.PodSucceeded)),
				member("c", onNode("n"), inPhase(v1.PodFailed)),
			},
			want: Summary{Members: 3, Scheduled: 3, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupFinished, Succeeded: 2, Failed: 1, ScheduleStartTime: earlier,
			}},
		},
		"a failure within the quorum fails the group": {
			pg: podGroup(3, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{running("a"), running("b"), member("c", onNode("n"), inPhase(v1.PodFailed))},
			want: Summary{Members: 3, Scheduled: 3, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupFailed, Running: 2, Failed: 1, ScheduleStartTime: earlier,
			}},
		},
		"a failure short of the quorum keeps scheduling": {
			pg: podGroup(3, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{running("a"), member("b", onNode("n"), inPhase(v1.PodFailed)), member("c")},
			want: Summary{Members: 3, Scheduled: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, Running: 1, Failed: 1, ScheduleStartTime: earlier,
			}},
		},
		"finished is terminal but counters update": {
			pg: podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupFinished, Succeeded: 2, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{member("a", onNode("n"), inPhase(v1.PodSucceeded))},
			want: Summary{Members: 1, Scheduled: 1, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupFinished, Succeeded: 1, ScheduleStartTime: earlier,
			}},
		},
		"failed is terminal but counters update": {
			pg: podGroup(2, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupFailed, Failed: 1, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{running("a"), running("b")},
			want: Summary{Members: 2, Scheduled: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupFailed, Running: 2, ScheduleStartTime: earlier,
			}},
		},
		"losing placed members is unknown": {
			pg: podGroup(4, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 4, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{running("a"), running("b")},
			want: Summary{Members: 2, Scheduled: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupUnknown, Running: 2, ScheduleStartTime: earlier,
			}},
		},
		"losing unplaced members is pending again": {
			pg: podGroup(3, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{member("a"), member("b")},
			want: Summary{Members: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupPending, ScheduleStartTime: earlier,
			}},
		},
		"pods being deleted are not members": {
			pg: podGroup(3, schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupRunning, Running: 3, ScheduleStartTime: earlier,
			}),
			pods: []*v1.Pod{
				running("a"), running("b"),
				member("c", onNode("n"), inPhase(v1.PodRunning), deleting()),
			},
			want: Summary{Members: 2, Scheduled: 2, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupUnknown, Running: 2, ScheduleStartTime: earlier,
			}},
		},
		"pods of another namespace, group or none are ignored": {
			pg: podGroup(2, schedv1alpha1.PodGroupStatus{}),
			pods: []*v1.Pod{
				member("a"),
				member("b", inNamespace("other"), onNode("n"), inPhase(v1.PodRunning)),
				member("c", inNamespace("other"), onNode("n"), inPhase(v1.PodRunning)),
				member("d", inGroup("other"), onNode("n"), inPhase(v1.PodSucceeded)),
				member("e", withoutGroupLabel(), onNode("n"), inPhase(v1.PodFailed)),
			},
			want: Summary{Members: 1, Status: schedv1alpha1.PodGroupStatus{}},
		},
		"zero minMember needs one member": {
			pg:   podGroup(0, schedv1alpha1.PodGroupStatus{}),
			pods: []*v1.Pod{member("a")},
			want: Summary{Members: 1, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: now,
			}},
		},
		"zero minMember without pods stays pending with an empty phase": {
			pg:   podGroup(0, schedv1alpha1.PodGroupStatus{}),
			want: Summary{Status: schedv1alpha1.PodGroupStatus{}},
		},
		"occupied by the controller of the first member that has one": {
			pg: podGroup(3, schedv1alpha1.PodGroupStatus{}),
			pods: []*v1.Pod{
				member("a"),
				member("b", ownedBy("ConfigMap", "not-a-controller", false)),
				member("c", ownedBy("Job", "job-1", true)),
				member("d", ownedBy("Job", "job-2", true)),
				member("e", inNamespace("other"), ownedBy("Job", "job-0", true)),
			},
			want: Summary{Members: 4, Status: schedv1alpha1.PodGroupStatus{
				Phase: schedv1alpha1.PodGroupScheduling, OccupiedBy: "ns/job-1", ScheduleStartTime: now,
			}},
		},
		"occupied by is kept once set": {
			pg:   podGroup(3, schedv1alpha1.PodGroupStatus{OccupiedBy: "ns/first"}),
			pods: []*v1.Pod{member("a", ownedBy("Job", "job-2", true))},
			want: Summary{Members: 1, Status: schedv1alpha1.PodGroupStatus{
				OccupiedBy: "ns/first",
			}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := tc.pg.DeepCopy()
			got := Compute(tc.pg, tc.pods, now)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Compute() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.pg); diff != "" {
				t.Errorf("Compute() modified its input (-before +after):\n%s", diff)
			}
		})
	}
}
