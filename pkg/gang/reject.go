package gang

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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
