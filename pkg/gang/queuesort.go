package gang

import (
	"time"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

// QueueSortName is the queue-order plugin's name. It is a plugin of its own,
// without arguments, because every profile of a scheduler must configure
// the queue sort identically, while CoschedGang's args may differ per
// profile (placementStrategy).
const QueueSortName = "CoschedQueueSort"

// QueueSort orders the scheduling queue group by group.
type QueueSort struct {
	podGroups schedlisters.PodGroupLister
	groups    *groupTracker
}

var _ fwk.QueueSortPlugin = &QueueSort{}

// Name returns the plugin's name.
func (qs *QueueSort) Name() string { return QueueSortName }

// Less orders the active queue: higher priority first; then the older
// "group time" (a group's creation, or its last rejection, so a group that
// just failed goes behind the others instead of blocking the head); then the
// group key, which keeps a group's members back to back; then queue time.
// A plain pod is a group of one whose group time is its queue time.
func (qs *QueueSort) Less(a, b fwk.QueuedEntityInfo) bool {
	if pa, pb := a.GetPriority(), b.GetPriority(); pa != pb {
		return pa > pb
	}
	keyA, timeA := qs.orderOf(a)
	keyB, timeB := qs.orderOf(b)
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

func (qs *QueueSort) orderOf(e fwk.QueuedEntityInfo) (string, time.Time) {
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
	if pg, err := qs.podGroups.PodGroups(pod.Namespace).Get(name); err == nil {
		t = pg.CreationTimestamp.Time
	} else {
		t = pod.CreationTimestamp.Time
	}
	if rejected := qs.groups.rejectedAt(key); rejected.After(t) {
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
