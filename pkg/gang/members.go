package gang

import (
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// memberPhase is where the pod cache shows a member. phaseOf is the one
// place that computes it.
type memberPhase uint8

const (
	memberPending memberPhase = iota
	memberBound
	// memberDeleting: the pod has a deletionTimestamp. It counts for
	// nothing, but its group still has pods.
	memberDeleting
)

func phaseOf(pod *v1.Pod) memberPhase {
	switch {
	case pod.DeletionTimestamp != nil:
		return memberDeleting
	case pod.Spec.NodeName != "":
		return memberBound
	default:
		return memberPending
	}
}

// memberSet is one group's pods as the pod cache shows them, with the counts
// the extension points read, so that nothing scans a group's pods per member
// (a 1000-member gang would otherwise cost a million pod visits per
// attempt). The informer handlers keep the group state's set current; an
// exact set, read from the pod cache at once, stands in where the handlers
// may trail it (snapshotMembers).
type memberSet struct {
	pods map[types.UID]*v1.Pod
	// live counts the members not being deleted, bound those of them on a
	// node.
	live, bound int
}

// snapshotMembers is the members the pod cache lists now.
func snapshotMembers(pods []*v1.Pod) *memberSet {
	s := &memberSet{}
	for _, pod := range pods {
		s.set(pod)
	}
	return s
}

// set records pod as the pod cache now shows it.
func (s *memberSet) set(pod *v1.Pod) {
	if s.pods == nil {
		s.pods = map[types.UID]*v1.Pod{}
	}
	if old, ok := s.pods[pod.UID]; ok {
		s.count(phaseOf(old), -1)
	}
	s.pods[pod.UID] = pod
	s.count(phaseOf(pod), +1)
}

// remove forgets a member that left the group: deleted, or relabeled.
func (s *memberSet) remove(uid types.UID) {
	if old, ok := s.pods[uid]; ok {
		s.count(phaseOf(old), -1)
		delete(s.pods, uid)
	}
}

func (s *memberSet) count(p memberPhase, d int) {
	switch p {
	case memberBound:
		s.bound += d
		s.live += d
	case memberPending:
		s.live += d
	}
}

// placed returns, in one read, the bound members and how many of reserved
// belong to members that are live and not bound yet: together, the group's
// placed members. A reservation whose pod is gone or being deleted counts
// for nothing, though its Unreserve may come later; one whose pod is already
// bound is counted as bound. self, a member at Permit holding one of the
// reservations, counts even if the set has not seen it yet.
func (s *memberSet) placed(reserved map[types.UID]reservation, self types.UID) (bound, pending int) {
	for uid := range reserved {
		pod, seen := s.pods[uid]
		if seen && phaseOf(pod) == memberPending || !seen && uid == self {
			pending++
		}
	}
	return s.bound, pending
}

// unplaced returns the live members that are neither bound nor reserved.
func (s *memberSet) unplaced(reserved map[types.UID]reservation) []*v1.Pod {
	var out []*v1.Pod
	for uid, pod := range s.pods {
		if _, isReserved := reserved[uid]; !isReserved && phaseOf(pod) == memberPending {
			out = append(out, pod)
		}
	}
	return out
}

// reservation is one member's hold on a node.
type reservation struct {
	node string
	// admitted is set once the member was let through Permit.
	admitted bool
	// waiting is set while the member waits at Permit for its quorum;
	// admission or rejection ends it. A member that joins a running group
	// never waits.
	waiting bool
	// since is wall-clock time, used only to measure how long rejected
	// members held their room.
	since time.Time
}
