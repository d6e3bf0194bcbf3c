package gang

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/podgroup"
)

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
	if status := pl.awaitingVictims(key, rejected.victimsLeft); status != nil {
		return nil, status
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

// awaitingVictims turns the member away while its group waits for the
// victims of its preemption (or did when PreFilter looked, victimsLeft): its
// members keep their nominations, so nobody else takes the room meanwhile.
// It returns nil when the group does not wait.
func (pl *CoschedGang) awaitingVictims(key string, victimsLeft bool) *fwk.Status {
	left := pl.groups.preemptionPending(key, pl.clock.Now(), pl.victimPresent)
	if left == 0 && !victimsLeft {
		return nil
	}
	preemptions.WithLabelValues("waiting").Inc()
	if left == 0 {
		// Gone since PreFilter looked: the deletion that requeues the
		// member came during its cycle, which the queue remembers.
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s: the preempted pods are gone; it tries again", key))
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s waits for %d preempted pod(s) to terminate", key, left))
}

// preFilterRejectedKey marks, in a cycle's state, a member this plugin's
// PreFilter turned away.
const preFilterRejectedKey fwk.StateKey = Name + "/prefilter-rejected"

type preFilterRejected struct {
	// noFit: the group was turned away because it does not fit as a whole.
	noFit bool
	// victimsLeft: the group waits for the victims of its preemption; its
	// members keep their nominations.
	victimsLeft bool
}

func (r preFilterRejected) Clone() fwk.StateData { return r }
