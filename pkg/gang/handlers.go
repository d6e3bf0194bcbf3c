package gang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/cosched/cosched/pkg/podgroup"
)

// These handlers end an attempt early when a change makes it hopeless:
// waiting members would otherwise hold their nodes until the timeout.

// onPodDelete rejects a group's waiting members when a deleted member leaves
// the group short of its quorum.
func (pl *CoschedGang) onPodDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	key, pg := pl.podGroupOf(pod)
	if key == "" || pl.groups.reservedCount(key) == 0 {
		return
	}
	if pg == nil {
		return // onPodGroupDelete handles it
	}
	c := pl.countMembers(key, nil, false)
	if quorum := podgroup.MinMember(pg); c.live < quorum {
		cause := fmt.Sprintf("member %s/%s was deleted; %d/%d pods remain", pod.Namespace, pod.Name, c.live, quorum)
		pl.rejectGroup(context.Background(), key, pg, "", "member_deleted", cause, false)
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
	pl.activatePending(klog.Background().WithValues("podGroup", key), key)
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
	logger := klog.Background().WithValues("podGroup", key)
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
		pl.allowGroup(logger, key)
	case c.live < quorum:
		cause := fmt.Sprintf("minMember changed from %d to %d; only %d pods exist", old.Spec.MinMember, pg.Spec.MinMember, c.live)
		pl.rejectGroup(klog.NewContext(context.Background(), logger), key, pg, "", "quorum_changed", cause, false)
	}
}

// onPodGroupDelete rejects the waiting members of a deleted PodGroup and
// forgets the group.
func (pl *CoschedGang) onPodGroupDelete(obj any) {
	pg, err := asPodGroup(obj)
	if err != nil || pg == nil {
		return
	}
	key := podgroup.Key(pg.Namespace, pg.Name)
	if n := pl.rejectWaiting(pl.groups.forget(key), fmt.Sprintf("PodGroup %s was deleted", key)); n > 0 {
		groupRejections.WithLabelValues("podgroup_deleted").Inc()
		klog.Background().V(2).Info("PodGroup deleted while members waited", "podGroup", key, "rejected", n)
	}
}
