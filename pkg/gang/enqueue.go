package gang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

// PreEnqueue keeps a group's pods out of the active queue until a quorum of
// them exists, so waiting costs no scheduling cycles. A pod whose PodGroup
// does not exist is let through: PreFilter turns it away, which gives it
// the FailedScheduling event and PodScheduled condition that tell its owner
// what is wrong (a PreEnqueue rejection is silent). It then waits for the
// PodGroup without further cycles.
func (pl *CoschedGang) PreEnqueue(_ context.Context, pod *v1.Pod) *fwk.Status {
	key, pg := pl.podGroupOf(pod)
	if key == "" || pg == nil {
		return nil
	}
	c := pl.countMembers(key, pod, false)
	if quorum := podgroup.MinMember(pg); c.live < quorum {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("waiting for quorum: %d/%d pods of PodGroup %s exist", c.live, quorum, key))
	}
	return nil
}

// EventsToRegister lists what can make a rejected member schedulable. Each
// hint only requeues pods of the group the event concerns. Filter needs
// nothing of its own: it rejects only nodes outside a plan, and a plan ends
// with its attempt, whose failure requeues the group after its backoff
// (PostFilter's plan_stale, activateAfterBackoff).
func (pl *CoschedGang) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		// A new member can complete a quorum.
		{Event: fwk.ClusterEvent{Resource: fwk.UnscheduledPod, ActionType: fwk.Add}, QueueingHintFn: pl.isSchedulableAfterMemberAdded},
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Add}, QueueingHintFn: pl.isSchedulableAfterMemberAdded},
		// Room freed on a node can let a group that did not fit fit.
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete | fwk.UpdatePodScaleDown}, QueueingHintFn: pl.isSchedulableAfterRoomFreed},
		// New or changed nodes can too.
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable | fwk.UpdateNodeLabel | fwk.UpdateNodeTaint}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
		// A PodGroup created after its pods, or a lowered minMember or
		// minResources, can release the group.
		{Event: fwk.ClusterEvent{Resource: podgroup.EventResource, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.isSchedulableAfterPodGroupChange},
	}, nil
}

func (pl *CoschedGang) isSchedulableAfterMemberAdded(logger klog.Logger, pod *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	added, ok := newObj.(*v1.Pod)
	if !ok {
		return fwk.Queue, fmt.Errorf("expected a *v1.Pod, got %T", newObj)
	}
	key := podgroup.KeyOf(pod)
	if key == "" || podgroup.KeyOf(added) != key {
		return fwk.QueueSkip, nil
	}
	quorum, ok := pl.hints.get(added, key)
	if !ok {
		quorum = pl.hasQuorum(pod, key)
		pl.hints.set(added, key, quorum)
	}
	if !quorum {
		logger.V(5).Info("Member added, group still short of quorum", "pod", klog.KObj(pod), "podGroup", key)
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

func (pl *CoschedGang) hasQuorum(pod *v1.Pod, key string) bool {
	_, pg := pl.podGroupOf(pod)
	if pg == nil {
		return false
	}
	return pl.countMembers(key, nil, false).live >= podgroup.MinMember(pg)
}

// isSchedulableAfterRoomFreed requeues members rejected for room: a bound
// pod that went away or shrank can make a group fit, and a group backing
// off because it did not fit checks again at once (roomMayHaveAppeared).
func (pl *CoschedGang) isSchedulableAfterRoomFreed(_ klog.Logger, pod *v1.Pod, _, _ any) (fwk.QueueingHint, error) {
	key := podgroup.KeyOf(pod)
	if key == "" {
		return fwk.QueueSkip, nil
	}
	pl.groups.roomMayHaveAppeared(key, pl.clock.Now())
	return fwk.Queue, nil
}

// isSchedulableAfterNodeChange requeues members for a node added or grown,
// relabeled or retainted, as isSchedulableAfterRoomFreed does for pods.
func (pl *CoschedGang) isSchedulableAfterNodeChange(_ klog.Logger, pod *v1.Pod, _, _ any) (fwk.QueueingHint, error) {
	if key := podgroup.KeyOf(pod); key != "" {
		pl.groups.roomMayHaveAppeared(key, pl.clock.Now())
	}
	return fwk.Queue, nil
}

func (pl *CoschedGang) isSchedulableAfterPodGroupChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	newPG, err := asPodGroup(newObj)
	if err != nil || newPG == nil {
		return fwk.Queue, err
	}
	if podgroup.KeyOf(pod) != podgroup.Key(newPG.Namespace, newPG.Name) {
		return fwk.QueueSkip, nil
	}
	oldPG, err := asPodGroup(oldObj)
	if err != nil || oldPG == nil {
		// Created: the pods were waiting for it.
		return fwk.Queue, err
	}
	if newPG.Spec.MinMember < oldPG.Spec.MinMember || !equalResources(newPG.Spec.MinResources, oldPG.Spec.MinResources) ||
		!equalTimeout(newPG.Spec.ScheduleTimeoutSeconds, oldPG.Spec.ScheduleTimeoutSeconds) {
		return fwk.Queue, nil
	}
	logger.V(5).Info("PodGroup change cannot help its pods", "pod", klog.KObj(pod), "podGroup", klog.KObj(newPG))
	return fwk.QueueSkip, nil
}

// asPodGroup accepts what the scheduler's dynamic informer delivers
// (unstructured objects, possibly inside a tombstone) as well as typed ones.
func asPodGroup(obj any) (*schedv1alpha1.PodGroup, error) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	switch o := obj.(type) {
	case nil:
		return nil, nil
	case *schedv1alpha1.PodGroup:
		return o, nil
	case *unstructured.Unstructured:
		pg := &schedv1alpha1.PodGroup{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, pg); err != nil {
			return nil, fmt.Errorf("decoding PodGroup %s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
		return pg, nil
	}
	return nil, fmt.Errorf("expected a PodGroup, got %T", obj)
}

func equalResources(a, b v1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for name, qa := range a {
		if qb, ok := b[name]; !ok || qa.Cmp(qb) != 0 {
			return false
		}
	}
	return true
}

func equalTimeout(a, b *int32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
