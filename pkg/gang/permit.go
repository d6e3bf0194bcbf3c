package gang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Reserve records the member's reservation so the group can count it.
func (pl *CoschedGang) Reserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	if key := podgroup.KeyOf(pod); key != "" {
		pl.groups.reserve(key, pod.UID, nodeName)
	}
	return nil
}

// Unreserve runs when a member's cycle fails after Reserve: its Permit wait
// was rejected or timed out, or binding failed. The group cannot complete
// this attempt, so every other waiting member is rejected too and releases
// what it holds.
func (pl *CoschedGang) Unreserve(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) {
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return
	}
	cause := pl.describeFailure(key, pod, nodeName)
	pl.rejectGroup(ctx, key, pg, pod.UID, pl.failureReason(key), cause, true)
	pl.groups.unreserve(key, pod.UID, pl.clock.Now())
}

func (pl *CoschedGang) failureReason(key string) string {
	if pl.timedOut(key) {
		return "timeout"
	}
	return "member_failed"
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

func (pl *CoschedGang) describeFailure(key string, pod *v1.Pod, nodeName string) string {
	placed := pl.groups.reservedCount(key)
	if pl.timedOut(key) {
		return fmt.Sprintf("timed out after %s waiting for quorum with %d member(s) reserved", pl.timeoutFor(key), placed)
	}
	return fmt.Sprintf("member %s/%s failed after reserving node %s", pod.Namespace, pod.Name, nodeName)
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
	c := pl.countMembers(key, nil, false)
	if c.placed < quorum {
		if pl.groups.startWaiting(key, pl.clock.Now()) {
			// The first member to wait pulls its siblings into the active
			// queue, in case an earlier failure parked them.
			pl.activatePending(logger, key)
		}
		logger.V(4).Info("Member waits for its group", "pod", klog.KObj(pod), "podGroup", key, "placed", c.placed, "quorum", quorum)
		return fwk.NewStatus(fwk.Wait, fmt.Sprintf("waiting for quorum: %d/%d members of PodGroup %s have a place", c.placed, quorum, key)),
			podgroup.ScheduleTimeout(pg, pl.defaultTimeout(), maxPermitWait)
	}
	pl.allowGroup(logger, key)
	return nil, 0
}

// allowGroup lets every waiting member of key proceed to binding.
func (pl *CoschedGang) allowGroup(logger klog.Logger, key string) {
	waiting := pl.groups.reservedMembers(key)
	allowed := 0
	for uid := range waiting {
		if wp := pl.handle.GetWaitingPod(uid); wp != nil {
			wp.Allow(Name)
			allowed++
		}
	}
	waited := pl.groups.admitted(key, pl.clock.Now())
	permitWaitDuration.WithLabelValues("allowed").Observe(waited.Seconds())
	groupsAdmitted.Inc()
	logger.V(3).Info("Pod group reached quorum", "podGroup", key, "allowedWaiting", allowed, "waited", waited)
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

// PostBind forgets the member's reservation: it now counts as bound.
func (pl *CoschedGang) PostBind(_ context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) {
	if key := podgroup.KeyOf(pod); key != "" {
		pl.groups.bound(key, pod.UID, pl.clock.Now())
	}
}

// PostFilter runs when a member found no node. Its group cannot complete this
// attempt, so the members already waiting are rejected at once instead of
// holding their nodes until the timeout. It also keeps the default
// preemption from evicting pods for a single member, which would not make
// room for the group (gang-aware preemption is separate work).
func (pl *CoschedGang) PostFilter(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	c := pl.countMembers(key, nil, false)
	quorum := 1
	if pg != nil {
		quorum = podgroup.MinMember(pg)
	}
	cause := fmt.Sprintf("%d/%d members placed; member %s/%s found no node", c.placed, quorum, pod.Namespace, pod.Name)
	pl.rejectGroup(ctx, key, pg, pod.UID, "member_unschedulable", cause, false)
	return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s: %s", key, cause))
}
