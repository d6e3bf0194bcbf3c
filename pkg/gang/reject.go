package gang

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/capacity"
	"github.com/cosched/cosched/pkg/podgroup"
)

// rejectWaiting turns away the given members that wait at Permit.
func (pl *CoschedGang) rejectWaiting(uids []types.UID, msg string) int {
	n := 0
	for _, uid := range uids {
		if wp := pl.handle.GetWaitingPod(uid); wp != nil {
			if wp.Reject(Name, msg) {
				n++
			}
		}
	}
	return n
}

// rejectGroup fails the group's attempt: every member holding a reservation
// is rejected and releases it, the group backs off, and the first report of
// a failure becomes a metric, a log line and an event on the PodGroup.
//
// related (the member whose cycle failed, or the node that went away; nil
// if none) is the event's related object. client-go folds events with the
// same regarding and related objects into one series that keeps the first
// note, and a stuck PodGroup's resourceVersion does not change: without it,
// a new cause (room freed, a node labeled) would never reach kubectl
// describe. A member's resourceVersion moves each time the scheduler writes
// a new reason on it.
func (pl *CoschedGang) rejectGroup(key string, pg *schedv1alpha1.PodGroup, related runtime.Object, reason, cause string, retryAfterBackoff bool) {
	backoff := pl.backoff()
	if reason == "no_fit" || reason == "members_disagree" {
		// Nothing placed, nothing held: retrying soon helps only if the
		// cluster changed, so repeats back off longer.
		if _, _, backingOff := pl.groups.backingOff(key, pl.clock.Now()); !backingOff {
			backoff = pl.groups.noFitBackoff(key, backoff)
		}
	}
	phase := phaseBackingOff
	if reason == "no_fit" {
		// Room appearing can end this backoff early (roomMayHaveAppeared).
		phase = phaseNoFitBackoff
	}
	r := pl.groups.reject(key, cause, phase, pl.clock.Now(), backoff)
	released := pl.rejectWaiting(r.released, fmt.Sprintf("PodGroup %s was rejected as a whole: %s", key, cause))
	pl.recordHeld(key, r.heldFor)
	if retryAfterBackoff {
		pl.activateAfterBackoff(key)
	}
	defer pl.forgetIfGone(key)
	if !r.report {
		return
	}
	groupRejections.WithLabelValues(reason).Inc()
	if r.waited > 0 {
		permitWaitDuration.WithLabelValues("rejected").Observe(r.waited.Seconds())
	}
	klog.FromContext(pl.ctx).V(2).Info("Rejected pod group", "podGroup", key, "reason", reason, "cause", cause, "releasedMembers", released)
	if pg != nil {
		note := cause
		if released > 0 {
			note = fmt.Sprintf("%s; released %d waiting member(s)", cause, released)
		}
		pl.handle.EventRecorder().Eventf(pg, related, v1.EventTypeWarning, "GangRejected", "Scheduling", podgroup.TruncateNote(note))
	}
}

// recordHeld adds up what rejected members held while they waited: room
// that other pods could not use and that the group gave back unused.
func (pl *CoschedGang) recordHeld(key string, heldFor map[types.UID]time.Duration) {
	if len(heldFor) == 0 {
		return
	}
	for _, pod := range pl.memberPods(key) {
		if d, ok := heldFor[pod.UID]; ok {
			req := capacity.RequestOf(pod)
			heldCPUSeconds.Add(float64(req.MilliCPU) / 1000 * d.Seconds())
			heldMemoryByteSeconds.Add(float64(req.Memory) * d.Seconds())
		}
	}
}

// activateAfterBackoff requeues the group's pending members once its backoff
// ends. Members turned away during the backoff, or rejected at Permit, would
// otherwise sit in the unschedulable pool until some later cluster event,
// although the cluster may already have changed (the event that woke them
// came during the backoff) or the failure (a timeout) may not repeat.
func (pl *CoschedGang) activateAfterBackoff(key string) {
	delay, ok := pl.groups.scheduleActivation(key, pl.clock.Now())
	if !ok {
		return
	}
	pl.clock.AfterFunc(delay, func() {
		pl.groups.activationDone(key)
		if pl.ctx.Err() == nil {
			pl.activatePending(klog.FromContext(pl.ctx), key)
		}
	})
}

// endBindFailures ends the group's streak of bind failures once its quorum is
// bound and nothing of it is still in flight (a bind, a deletion or a joiner's
// Permit can be the moment). Only a group with a streak pays for the count.
func (pl *CoschedGang) endBindFailures(key string) {
	if pl.groups.bindFailures(key) == 0 || pl.groups.reservedCount(key) > 0 {
		return
	}
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	pg, err := pl.podGroups.PodGroups(ns).Get(name)
	if err != nil {
		return
	}
	if pl.countMembers(key, nil, false).bound >= podgroup.MinMember(pg) {
		pl.groups.ranWhole(key)
	}
}

// forgetGroup forgets a group whose PodGroup is gone and rejects its waiting
// members.
func (pl *CoschedGang) forgetGroup(key string) {
	if n := pl.rejectWaiting(pl.groups.forget(key), fmt.Sprintf("PodGroup %s was deleted", key)); n > 0 {
		groupRejections.WithLabelValues("podgroup_deleted").Inc()
		klog.FromContext(pl.ctx).V(2).Info("PodGroup deleted while members waited", "podGroup", key, "rejected", n)
	}
}

// forgetIfGone drops what the group memory holds for key once nothing can
// use it. Calls that may create a group's entry (a rejection, a plan, a
// preemption, an Unreserve) end with it, because they can run after the
// delete event that would have dropped the entry: a PreFilter that read the
// PodGroup before it was deleted rejects it after. The handlers update the
// caches before they run, so either this call sees the PodGroup or its last
// pod gone, or the handler runs after the entry was made and drops it.
func (pl *CoschedGang) forgetIfGone(key string) {
	if !pl.groups.has(key) {
		return // nothing to forget; spares a member scan on every delete
	}
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	if _, err := pl.podGroups.PodGroups(ns).Get(name); err != nil {
		pl.forgetGroup(key)
		return
	}
	pl.groups.forgetHistoryIfNoMembers(key)
}
