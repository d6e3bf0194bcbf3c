package gang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Reserve records the member's reservation so the group can count it.
func (pl *CoschedGang) Reserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return nil
	}
	if pg == nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s was deleted", key))
	}
	pl.groups.reserve(key, pod.UID, nodeName, pl.clock.Now())
	return nil
}

// Unreserve runs when a member's cycle fails after Reserve: its Permit wait
// was rejected or timed out, or binding failed. If the member belonged to the
// group's current attempt, the attempt cannot complete, so every other
// waiting member is rejected too and releases what it holds. A member of an
// attempt that was already rejected only finishes releasing.
func (pl *CoschedGang) Unreserve(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) {
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return
	}
	if siblings, admitted := pl.groups.admittedSiblings(key, pod.UID); admitted {
		// Let through Permit, so its binding failed.
		pl.groups.unreserved(key, pod.UID)
		pl.releaseAfterBindFailure(ctx, key, pg, pod, nodeName, siblings)
		pl.forgetIfGone(key)
		return
	}
	if pl.groups.unreserve(key, pod.UID) && !pl.groupRuns(key, pg) {
		reason, cause := "member_failed", fmt.Sprintf("member %s/%s failed after reserving node %s", pod.Namespace, pod.Name, nodeName)
		if pl.timedOut(key) {
			reason = "timeout"
			cause = fmt.Sprintf("timed out after %s waiting for quorum with %d member(s) reserved", pl.timeoutFor(key), pl.groups.reservedCount(key))
		}
		pl.rejectGroup(key, pg, pod, reason, cause, true)
	}
	// Whatever it was (a member of a rejected attempt, or one that joined a
	// group that runs and failed to bind), it holds nothing now.
	pl.groups.unreserved(key, pod.UID)
	pl.endBindFailures(key)
	pl.forgetIfGone(key)
}

// groupRuns reports whether the group's bound members already meet its
// quorum: a member that joins a running group and fails is an ordinary pod,
// not a failed attempt.
func (pl *CoschedGang) groupRuns(key string, pg *schedv1alpha1.PodGroup) bool {
	return pg != nil && pl.countMembers(key, nil, false).bound >= podgroup.MinMember(pg)
}

// timedOut tells a Permit timeout from other failures: by then the attempt
// has waited at least the group's timeout.
func (pl *CoschedGang) timedOut(key string) bool {
	since := pl.groups.waitingSince(key)
	return !since.IsZero() && pl.clock.Since(since) >= pl.timeoutFor(key)
}

func (pl *CoschedGang) timeoutFor(key string) time.Duration {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	if pg, err := pl.podGroups.PodGroups(ns).Get(name); err == nil {
		return podgroup.ScheduleTimeout(pg, pl.defaultTimeout(), maxPermitWait)
	}
	return pl.defaultTimeout()
}
