package podgroupstatus

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Summary is what Compute derives from a PodGroup and its member pods.
type Summary struct {
	// Status is the PodGroup status that should be written.
	Status schedv1alpha1.PodGroupStatus
	// Scheduled is the number of members bound to a node, in any phase.
	Scheduled int32
	// Members is the number of member pods that are not being deleted.
	Members int32
}

// Compute returns the status pg should have given pods. It is pure: the
// caller decides whether and how to write the result. pods may contain pods
// that are not members of pg; they are ignored.
func Compute(pg *schedv1alpha1.PodGroup, pods []*v1.Pod, now metav1.Time) Summary {
	var (
		summary   Summary
		running   int32
		succeeded int32
		failed    int32
		owner     string
	)
	for _, pod := range pods {
		if !isMember(pg, pod) {
			continue
		}
		summary.Members++
		if pod.Spec.NodeName != "" {
			summary.Scheduled++
		}
		switch pod.Status.Phase {
		case v1.PodRunning:
			running++
		case v1.PodSucceeded:
			succeeded++
		case v1.PodFailed:
			failed++
		}
		if owner == "" {
			if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
				owner = pod.Namespace + "/" + ref.Name
			}
		}
	}

	status := *pg.Status.DeepCopy()
	status.Running, status.Succeeded, status.Failed = running, succeeded, failed
	if status.OccupiedBy == "" {
		status.OccupiedBy = owner
	}

	if isTerminal(status.Phase) {
		summary.Status = status
		return summary
	}

	quorum := int32(podgroup.MinMember(pg))
	switch {
	case succeeded >= quorum:
		status.Phase = schedv1alpha1.PodGroupFinished
	case failed > 0 && failed+running+succeeded >= quorum:
		status.Phase = schedv1alpha1.PodGroupFailed
	case running+succeeded >= quorum:
		status.Phase = schedv1alpha1.PodGroupRunning
	case summary.Members >= quorum:
		status.Phase = schedv1alpha1.PodGroupScheduling
	case summary.Scheduled > 0:
		// Some members were placed, but the group no longer has a quorum:
		// members were deleted after scheduling.
		status.Phase = schedv1alpha1.PodGroupUnknown
	default:
		status.Phase = schedv1alpha1.PodGroupPending
	}
	// The group became schedulable once it had a quorum of members. Groups
	// whose pods all started between two syncs skip Scheduling, so stamp the
	// time on whichever phase is observed first.
	if summary.Members >= quorum && status.ScheduleStartTime.IsZero() {
		status.ScheduleStartTime = now
	}
	if status.Phase == schedv1alpha1.PodGroupPending && pg.Status.Phase == "" {
		// A group nobody wrote a phase for yet is Pending by definition
		// (cosched's tools show it so); writing it would cost every new
		// group a write that tells nothing.
		status.Phase = ""
	}
	summary.Status = status
	return summary
}

// isMember reports whether pod counts towards pg. The namespace check matters:
// group names are only unique within a namespace.
func isMember(pg *schedv1alpha1.PodGroup, pod *v1.Pod) bool {
	return pod.Namespace == pg.Namespace &&
		pod.Labels[schedv1alpha1.PodGroupLabel] == pg.Name &&
		pod.DeletionTimestamp == nil
}

func isTerminal(phase schedv1alpha1.PodGroupPhase) bool {
	return phase == schedv1alpha1.PodGroupFinished || phase == schedv1alpha1.PodGroupFailed
}
