package gang

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/cosched/cosched/pkg/podgroup"
)

// These handlers end an attempt early when a change makes it hopeless:
// waiting members would otherwise hold their nodes until the timeout.

// onPodAdd wakes a group's gated members when the new pod completes its
// quorum. The scheduler's own requeue on a new pod only fires for pods of its
// profiles, so a member created for another scheduler (or seen only after a
// restart) would never wake the others.
func (pl *CoschedGang) onPodAdd(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return
	}
	pl.groups.memberSeen(key, pod)
	if pg == nil {
		return
	}
	if pod.Spec.NodeName != "" {
		pl.groups.settled(key, pod.UID)
	}
	// The pod cache may already hold pods whose Add handlers have not run,
	// so the count can pass the quorum without equalling it here.
	if pl.countMembers(key, nil, false).live >= podgroup.MinMember(pg) {
		pl.activatePending(klog.FromContext(pl.ctx), key)
	}
}

// onPodUpdate keeps the group's members current and ends a member's
// reservation once the cache shows it bound. A member newly marked as
// preempted by a scheduler wakes the gang guard.
func (pl *CoschedGang) onPodUpdate(oldObj, newObj any) {
	oldPod, ok1 := oldObj.(*v1.Pod)
	newPod, ok2 := newObj.(*v1.Pod)
	if !ok1 || !ok2 {
		return
	}
	// Labels can change: a pod relabeled into another group moves.
	oldKey, newKey := podgroup.KeyOf(oldPod), podgroup.KeyOf(newPod)
	if oldKey != "" && oldKey != newKey {
		pl.groups.memberGone(oldKey, oldPod.UID)
	}
	if newKey != "" {
		pl.groups.memberSeen(newKey, newPod)
	}
	if preemptedByScheduler(newPod) && !preemptedByScheduler(oldPod) {
		pl.guardAfterPreemption(newPod)
	}
	if oldPod.Spec.NodeName != "" || newPod.Spec.NodeName == "" {
		return
	}
	if key := podgroup.KeyOf(newPod); key != "" {
		pl.groups.settled(key, newPod.UID)
		pl.endBindFailures(key)
	}
}

// onPodDelete forgets a deleted member's reservation and rejects the group's
// waiting members when the deletion leaves the group short of its quorum.
//
// A deleted pod releases nothing more, so its releasing entry goes. Its
// reservation goes when the pod was bound, or, when the informer lost track
// of it (a tombstone: a bind and the delete may both have been missed, and
// then no Unreserve ever comes), once its binding cycle is surely over
// (settleAfterBind). A reservation of a pod deleted while it waits or binds
// stays until its Unreserve, which the framework always runs for it; that
// Unreserve is what fails the group's attempt, and it must find the
// reservation to release the member's admitted siblings. Once the group has no pods left, what it
// remembers for them goes too (R5 in docs/design.md).
func (pl *CoschedGang) onPodDelete(obj any) {
	tomb, lostTrack := obj.(cache.DeletedFinalStateUnknown)
	if lostTrack {
		obj = tomb.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return
	}
	pl.groups.memberGone(key, pod.UID)
	defer pl.forgetIfGone(key)
	// The last reservation may end here rather than in a bind.
	defer pl.endBindFailures(key)
	switch {
	case pod.Spec.NodeName != "":
		pl.groups.settled(key, pod.UID)
	case lostTrack:
		pl.groups.forgetReleased(key, pod.UID)
		pl.settleAfterBind(key, pod.UID)
	default:
		pl.groups.forgetReleased(key, pod.UID)
	}
	if preemptedByScheduler(pod) {
		// Usually seen in an update already; a second check is harmless.
		pl.guardAfterPreemption(pod)
	}
	if pl.groups.reservedCount(key) == 0 {
		return
	}
	if finished(pod) && pl.groups.waitingCount(key) == 0 {
		// The scheduler's informer shows a pod that finished as deleted. A
		// member that finished right after its group was admitted, while
		// its siblings' binds settle, is no loss: nobody waits at Permit.
		return
	}
	if pg == nil {
		return // onPodGroupDelete handles it
	}
	c := pl.countMembers(key, nil, false)
	if quorum := podgroup.MinMember(pg); c.live < quorum {
		cause := fmt.Sprintf("member %s/%s was deleted; %d/%d pods remain", pod.Namespace, pod.Name, c.live, quorum)
		pl.rejectGroup(key, pg, nil, "member_deleted", cause, false)
	}
}

// onPodGroupAdd releases members that arrived before their PodGroup. The
// scheduler also requeues them on its own PodGroup event, but it watches
// through a different informer, which may deliver the event before this
// plugin's lister has the object; the members would then be gated again
// with nothing left to wake them.
func (pl *CoschedGang) onPodGroupAdd(obj any) {
	pg, err := asPodGroup(obj)
	if err != nil || pg == nil {
		return
	}
	key := podgroup.Key(pg.Namespace, pg.Name)
	pl.activatePending(klog.FromContext(pl.ctx).WithValues("podGroup", key), key)
}

// onPodGroupUpdate reacts to a changed minMember while members wait: a
// higher quorum that the existing pods cannot reach rejects them; a lower one
// that the reservations already meet lets them go.
func (pl *CoschedGang) onPodGroupUpdate(oldObj, newObj any) {
	pg, err := asPodGroup(newObj)
	if err != nil || pg == nil {
		return
	}
	old, err := asPodGroup(oldObj)
	if err != nil || old == nil || old.Generation == pg.Generation && old.Spec.MinMember == pg.Spec.MinMember {
		return
	}
	key := podgroup.Key(pg.Namespace, pg.Name)
	logger := klog.FromContext(pl.ctx).WithValues("podGroup", key)
	if pl.groups.reservedCount(key) == 0 {
		// Nobody waits; a spec change can still release gated members,
		// for the same reason as in onPodGroupAdd.
		pl.activatePending(logger, key)
		return
	}
	c := pl.countMembers(key, nil, false)
	quorum := podgroup.MinMember(pg)
	switch {
	case c.placed >= quorum:
		admitted, waited := pl.groups.admitAll(key, pl.clock.Now())
		if admitted == nil {
			return // past the attempt's deadline: its timeout ends it
		}
		// This runs on the informer's goroutine: a member whose Permit
		// just returned Wait may not be registered as waiting yet, and
		// would miss its Allow and time out after its siblings bound.
		if notWaiting := pl.allowGroup(logger, key, admitted, waited); len(notWaiting) > 0 {
			go pl.allowLate(logger, notWaiting)
		}
	case c.live < quorum:
		cause := fmt.Sprintf("minMember changed from %d to %d; only %d pods exist", old.Spec.MinMember, pg.Spec.MinMember, c.live)
		pl.rejectGroup(key, pg, nil, "quorum_changed", cause, false)
	}
}

// onPodGroupDelete rejects the waiting members of a deleted PodGroup and
// forgets the group.
func (pl *CoschedGang) onPodGroupDelete(obj any) {
	pg, err := asPodGroup(obj)
	if err != nil || pg == nil {
		return
	}
	pl.forgetGroup(podgroup.Key(pg.Namespace, pg.Name))
}

// onNodeDelete fails the attempts of groups whose waiting members reserved
// the deleted node: letting them bind would put a member on a node that is
// gone while its siblings run.
func (pl *CoschedGang) onNodeDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	node, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	for _, key := range pl.groups.groupsOnNode(node.Name) {
		ns, name, _ := cache.SplitMetaNamespaceKey(key)
		pg, _ := pl.podGroups.PodGroups(ns).Get(name)
		pl.rejectGroup(key, pg, node, "node_deleted", fmt.Sprintf("node %s, which a waiting member had reserved, was deleted", node.Name), true)
	}
}

// onNodeUpdate fails the attempts of groups whose waiting members reserved a
// node that gained a NoExecute taint they do not tolerate for good, such as
// node.kubernetes.io/unreachable when its kubelet stops reporting. Bound
// there, they would be evicted (or never start) while their siblings run;
// released now, the group is planned again on the nodes that still work.
func (pl *CoschedGang) onNodeUpdate(oldObj, newObj any) {
	oldNode, ok1 := oldObj.(*v1.Node)
	node, ok2 := newObj.(*v1.Node)
	if !ok1 || !ok2 {
		return
	}
	added := addedNoExecuteTaints(oldNode, node)
	if len(added) == 0 {
		return
	}
	for _, key := range pl.groups.groupsOnNode(node.Name) {
		if taint := pl.evictsWaitingMember(key, node.Name, added); taint != nil {
			ns, name, _ := cache.SplitMetaNamespaceKey(key)
			pg, _ := pl.podGroups.PodGroups(ns).Get(name)
			pl.rejectGroup(key, pg, node, "node_lost", fmt.Sprintf("node %s, which a waiting member had reserved, was tainted %s:%s", node.Name, taint.Key, taint.Effect), true)
		}
	}
}

// evictsWaitingMember returns the first of taints that a member of key
// waiting at Permit on node does not tolerate for good. Members already let
// through Permit are binding: their outcome is the bind's.
func (pl *CoschedGang) evictsWaitingMember(key, node string, taints []v1.Taint) *v1.Taint {
	logger := klog.FromContext(pl.ctx)
	for _, uid := range pl.groups.waitingOn(key, node) {
		wp := pl.handle.GetWaitingPod(uid)
		if wp == nil {
			continue
		}
		for i := range taints {
			if !toleratesForGood(logger, wp.GetPod().Spec.Tolerations, &taints[i]) {
				return &taints[i]
			}
		}
	}
	return nil
}

// addedNoExecuteTaints returns the NoExecute taints of node that old lacked.
func addedNoExecuteTaints(old, node *v1.Node) []v1.Taint {
	var added []v1.Taint
	for _, t := range node.Spec.Taints {
		if t.Effect != v1.TaintEffectNoExecute {
			continue
		}
		had := false
		for _, o := range old.Spec.Taints {
			had = had || (o.Key == t.Key && o.Value == t.Value && o.Effect == t.Effect)
		}
		if !had {
			added = append(added, t)
		}
	}
	return added
}

// toleratesForGood reports whether a toleration keeps the pod on a node with
// taint indefinitely. The API server gives every pod a 300 s toleration of
// not-ready and unreachable, which only delays the eviction.
func toleratesForGood(logger klog.Logger, tolerations []v1.Toleration, taint *v1.Taint) bool {
	for i := range tolerations {
		if tolerations[i].TolerationSeconds == nil && tolerations[i].ToleratesTaint(logger, taint, true) {
			return true
		}
	}
	return false
}

// finished reports whether pod ran to completion (Succeeded or Failed).
func finished(pod *v1.Pod) bool {
	return pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
}

// tombstoneGrace is how long a reservation outlives the tombstone of its pod
// when the framework no longer holds the pod at Permit or PreBind: the pod
// may be in its Bind call, whose failure's Unreserve must still find the
// reservation to release the siblings admitted with it. API calls time out
// well within it.
const tombstoneGrace = 30 * time.Second

// settleAfterBind forgets the reservation of a member whose deletion the
// informer saw only as a tombstone, once its binding cycle is surely over:
// its bind may have succeeded unseen, and then no Unreserve ever comes.
func (pl *CoschedGang) settleAfterBind(key string, uid types.UID) {
	if _, ok := pl.groups.reservedMembers(key)[uid]; !ok {
		return
	}
	pl.clock.AfterFunc(tombstoneGrace, func() {
		if pl.inFlight(uid) {
			pl.settleAfterBind(key, uid) // a PreBind (volumes) may take minutes
			return
		}
		pl.groups.settled(key, uid)
		pl.forgetIfGone(key)
	})
}

// inFlight reports whether the framework holds the pod at Permit or PreBind:
// its cycle is not over, and its Unreserve or bind will still come.
func (pl *CoschedGang) inFlight(uid types.UID) bool {
	return pl.handle.GetWaitingPod(uid) != nil || pl.handle.GetPodInPreBind(uid) != nil
}
