package gang

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
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
	pl.groups.reserve(key, pod.UID, nodeName)
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
	members := pl.membersOf(key)
	if _, _, bound := members.counts(key); bound >= quorum {
		// The group already runs; this member joins it.
		return nil, 0
	}
	wait := podgroup.ScheduleTimeout(pg, pl.defaultTimeout(), maxPermitWait)
	d := pl.groups.permit(key, pod.UID, members, func() *memberIndex { return pl.exactMembers(key) }, quorum, pl.clock.Now(), wait)
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
			// Past the attempt's deadline (groups.go, tooLate): the first
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

// activatePending moves the group's members that have no place yet into the
// active queue.
func (pl *CoschedGang) activatePending(logger klog.Logger, key string) {
	reserved := pl.groups.reservedMembers(key)
	pods := map[string]*v1.Pod{}
	for _, pod := range podgroup.Members(pl.pods, key) {
		if _, ok := reserved[pod.UID]; !ok && pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil {
			pods[pod.Namespace+"/"+pod.Name] = pod
		}
	}
	if len(pods) > 0 {
		pl.handle.Activate(logger, pods)
	}
}

// PostFilter runs when a member found no node. Its group cannot complete this
// attempt, so the members already waiting are rejected at once instead of
// holding their nodes until the timeout. If lower-priority pods or gangs
// stand in the way, the group preempts them as a whole (preempt.go);
// otherwise the member's failure ends here, so no per-member preemption
// evicts pods for a single member, which would not make room for the group.
func (pl *CoschedGang) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	data, err := state.Read(preFilterRejectedKey)
	rejected, turnedAway := data.(preFilterRejected)
	turnedAway = turnedAway && err == nil
	if left := pl.groups.preemptionPending(key, pl.clock.Now(), pl.victimPresent); left > 0 || rejected.victimsLeft {
		// The group preempted and its victims still terminate (or did when
		// PreFilter looked): its members keep their nominations, so nobody
		// else takes the room meanwhile.
		preemptions.WithLabelValues("waiting").Inc()
		if left == 0 {
			// Gone since PreFilter looked: the deletion that requeues the
			// member came during its cycle, which the queue remembers.
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s: the preempted pods are gone; it tries again", key))
		}
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("PodGroup %s waits for %d preempted pod(s) to terminate", key, left))
	}
	if turnedAway {
		msg := fmt.Sprintf("PodGroup %s was turned away before filtering", key)
		if rejected.noFit && pg != nil {
			// The group as a whole does not fit: room may be made for it.
			result, status, whyNot := pl.preemptForGroup(ctx, pod, key, pg)
			if status != nil {
				return result, status
			}
			msg = withPreemptionNote(msg, whyNot)
		}
		return clearNomination, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
	}
	if pg == nil {
		return clearNomination, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s does not exist", key))
	}
	quorum := podgroup.MinMember(pg)
	c := pl.countMembers(key, nil, false)
	if c.bound >= quorum {
		// A member joining a group that already runs is an ordinary pod.
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	cause := fmt.Sprintf("%d/%d members placed; member %s/%s found no node", c.placed, quorum, pod.Namespace, pod.Name)
	reason, retry := "member_unschedulable", false
	if ps := planStateOf(state); ps != nil && ps.planned {
		// The cluster changed since planning: plan again soon.
		cause = fmt.Sprintf("%d/%d members placed; member %s/%s no longer fits its planned node %s, so the plan is dropped",
			c.placed, quorum, pod.Namespace, pod.Name, strings.Join(sets.List(ps.nodes), ","))
		reason, retry = "plan_stale", true
	}
	pl.rejectGroup(key, pg, pod, reason, cause, retry)
	msg := fmt.Sprintf("PodGroup %s: %s", key, cause)
	if !retry {
		result, status, whyNot := pl.preemptForGroup(ctx, pod, key, pg)
		if status != nil {
			return result, status
		}
		msg = withPreemptionNote(msg, whyNot)
	}
	return clearNomination, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
}

// withPreemptionNote adds why preemption could not help, when it was tried.
func withPreemptionNote(msg, whyNot string) string {
	if whyNot == "" {
		return msg
	}
	return msg + "; preemption cannot help: " + whyNot
}

// clearNomination drops the nominated node a member may still carry from an
// earlier wait at Permit (the scheduler nominates waiting pods). A member of
// a rejected group that kept it would hold phantom room on that node, which
// other pods' Filter and the atomic planner respect.
var clearNomination = &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatingMode: fwk.ModeOverride}}
