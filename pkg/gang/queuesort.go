package gang

import (
	"time"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Less orders the active queue: higher priority first; then the older
// "group time" (a group's creation, or its last rejection, so a group that
// just failed goes behind the others instead of blocking the head); then the
// group key, which keeps a group's members back to back; then queue time.
// A plain pod is a group of one whose group time is its queue time.
func (pl *CoschedGang) Less(a, b fwk.QueuedEntityInfo) bool {
	if pa, pb := a.GetPriority(), b.GetPriority(); pa != pb {
		return pa > pb
	}
	keyA, timeA := pl.orderOf(a)
	keyB, timeB := pl.orderOf(b)
	if !timeA.Equal(timeB) {
		return timeA.Before(timeB)
	}
	if keyA != keyB {
		return keyA < keyB
	}
	return a.GetTimestamp().Before(b.GetTimestamp())
}

// podInfoGetter is what queued pod entries offer; the interface keeps the
// plugin off the scheduler's internal types.
type podInfoGetter interface {
	GetPodInfo() fwk.PodInfo
}

func (pl *CoschedGang) orderOf(e fwk.QueuedEntityInfo) (string, time.Time) {
	pod := podOf(e)
	if pod == nil {
		return "", e.GetTimestamp()
	}
	name := podgroup.NameOf(pod)
	if name == "" {
		return "", e.GetTimestamp()
	}
	key := podgroup.Key(pod.Namespace, name)
	var t time.Time
	if pg, err := pl.podGroups.PodGroups(pod.Namespace).Get(name); err == nil {
		t = pg.CreationTimestamp.Time
	} else {
		t = pod.CreationTimestamp.Time
	}
	if rejected := pl.groups.rejectedAt(key); rejected.After(t) {
		t = rejected
	}
	return key, t
}

func podOf(e fwk.QueuedEntityInfo) *v1.Pod {
	if e.Type() != fwk.PodKeyType {
		return nil
	}
	g, ok := e.(podInfoGetter)
	if !ok {
		return nil
	}
	info := g.GetPodInfo()
	if info == nil {
		return nil
	}
	return info.GetPod()
}
