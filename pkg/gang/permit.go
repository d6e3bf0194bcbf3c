package gang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Permit holds a member until the group's quorum holds reservations, then
// lets every waiting member go at once.
func (pl *CoschedGang) Permit(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) (*fwk.Status, time.Duration) {
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return nil, 0
	}
	if pg == nil {
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("PodGroup %s was deleted", key)), 0
	}
	logger := klog.FromContext(ctx)
	quorum := podgroup.MinMember(pg)
	unsynced := pl.unsyncedMembers(key)
	if pl.groups.members(key, unsynced, "", false).bound >= quorum {
		// The group already runs; this member joins it.
		return nil, 0
	}
	wait := podgroup.ScheduleTimeout(pg, pl.defaultTimeout(), maxPermitWait)
	d := pl.groups.permit(key, pod.UID, unsynced, quorum, pl.clock.Now(), wait)
	if d.verdict == verdictCheck {
		// Once per attempt: the group memory counts a quorum; the pod cache
		// confirms it.
		d = pl.groups.permit(key, pod.UID, pl.confirmedMembers(key, pod), quorum, pl.clock.Now(), wait)
	}
	switch d.verdict {
	case verdictStale:
		// The attempt this member reserved for was rejected meanwhile; it
		// retries with its group when the backoff ends.
		pl.activateAfterBackoff(key)
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("PodGroup %s was rejected while this member reserved its node", key)), 0
	case verdictWait:
		if d.firstWaiter {
			// The first member to wait pulls its siblings into the active
			// queue, in case an earlier failure parked them.
			pl.activatePending(logger, key)
		}
		logger.V(4).Info("Member waits for its group", "pod", klog.KObj(pod), "podGroup", key, "placed", d.placed, "quorum", quorum)
		if d.placed >= quorum {
			// Past the attempt's deadline (tracker.go, tooLate): the first
			// waiter's timer ends the attempt within admitMargin.
			return fwk.NewStatus(fwk.Wait, fmt.Sprintf("%d/%d members of PodGroup %s have a place, after the attempt's timeout", d.placed, quorum, key)), permitTimer(wait)
		}
		return fwk.NewStatus(fwk.Wait, fmt.Sprintf("waiting for quorum: %d/%d members of PodGroup %s have a place", d.placed, quorum, key)), permitTimer(wait)
	}
	pl.allowGroup(logger, key, d.admitted, d.waited)
	return nil, 0
}

// allowGroup lets the admitted members that wait at Permit proceed to
// binding, and returns those it did not find waiting.
func (pl *CoschedGang) allowGroup(logger klog.Logger, key string, admitted []types.UID, waited time.Duration) (notWaiting []types.UID) {
	allowed := 0
	for _, uid := range admitted {
		if wp := pl.handle.GetWaitingPod(uid); wp != nil {
			wp.Allow(Name)
			allowed++
		} else {
			notWaiting = append(notWaiting, uid)
		}
	}
	permitWaitDuration.WithLabelValues("allowed").Observe(waited.Seconds())
	groupsAdmitted.Inc()
	logger.V(3).Info("Pod group reached quorum", "podGroup", key, "allowedWaiting", allowed, "waited", waited)
	return notWaiting
}

// allowLate retries, for a short while, the Allow of admitted members that
// were not registered as waiting when their group was admitted from outside
// a scheduling cycle; a member that never registers (it was deleted
// meanwhile) is given up after a second.
func (pl *CoschedGang) allowLate(logger klog.Logger, notWaiting []types.UID) {
	missing := sets.New(notWaiting...)
	for range 50 {
		for uid := range missing {
			if wp := pl.handle.GetWaitingPod(uid); wp != nil {
				wp.Allow(Name)
				missing.Delete(uid)
			}
		}
		if missing.Len() == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	logger.V(4).Info("Admitted members never waited at Permit", "members", missing.UnsortedList())
}
