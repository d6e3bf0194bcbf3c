package gang

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// memberIndex is each group's members as the pod cache shows them, kept
// current by the pod informer's handlers, so that Permit, PreFilter and the
// handlers read counts instead of scanning the group's pods for every
// member (a 1000-member gang would otherwise cost a million pod visits per
// attempt). It is shared by every profile of a scheduler, like the
// groupTracker, and never calls out while it holds its lock.
type memberIndex struct {
	mu     sync.RWMutex
	groups map[string]*memberSet
	// synced reports whether the handlers have seen the informer's first
	// list; until then the index may lack pods the cache already holds.
	synced func() bool
}

// memberPhase is where the pod cache shows a member.
type memberPhase uint8

const (
	memberPending memberPhase = iota
	memberBound
	// memberDeleting: the pod has a deletionTimestamp. It counts for
	// nothing, but its group still has pods.
	memberDeleting
)

// memberSet is one group's members.
type memberSet struct {
	phase map[types.UID]memberPhase
	// live counts the members not being deleted, bound those of them on a
	// node.
	live, bound int
}

func newMemberIndex() *memberIndex {
	return &memberIndex{groups: map[string]*memberSet{}}
}

// snapshotIndex indexes pods, the members of key as the pod cache lists them
// now: an exact view where the shared index may trail the cache.
func snapshotIndex(key string, pods []*v1.Pod) *memberIndex {
	ix := &memberIndex{groups: map[string]*memberSet{}, synced: func() bool { return true }}
	for _, pod := range pods {
		ix.set(key, pod)
	}
	return ix
}

// setSynced records how to tell that the handlers have seen the informer's
// first list.
func (ix *memberIndex) setSynced(synced func() bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.synced = synced
}

// ready reports whether the index holds every member the pod cache held
// when the informer started.
func (ix *memberIndex) ready() bool {
	ix.mu.RLock()
	synced := ix.synced
	ix.mu.RUnlock()
	return synced != nil && synced()
}

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

// set records pod, a member of key, as the pod cache now shows it.
func (ix *memberIndex) set(key string, pod *v1.Pod) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s, ok := ix.groups[key]
	if !ok {
		s = &memberSet{phase: map[types.UID]memberPhase{}}
		ix.groups[key] = s
	}
	if old, ok := s.phase[pod.UID]; ok {
		s.count(old, -1)
	}
	p := phaseOf(pod)
	s.phase[pod.UID] = p
	s.count(p, +1)
}

// remove forgets a member that left key: deleted, or relabeled.
func (ix *memberIndex) remove(key string, uid types.UID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s, ok := ix.groups[key]
	if !ok {
		return
	}
	if old, ok := s.phase[uid]; ok {
		s.count(old, -1)
		delete(s.phase, uid)
	}
	if len(s.phase) == 0 {
		delete(ix.groups, key)
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

// counts returns how many members of key exist in all (deleting ones
// included), are live and are bound.
func (ix *memberIndex) counts(key string) (all, live, bound int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if s, ok := ix.groups[key]; ok {
		return len(s.phase), s.live, s.bound
	}
	return 0, 0, 0
}

// has reports whether the index lists uid as a member of key.
func (ix *memberIndex) has(key string, uid types.UID) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	s, ok := ix.groups[key]
	if !ok {
		return false
	}
	_, ok = s.phase[uid]
	return ok
}

// placed returns, in one read, key's bound members and how many of its
// reservations belong to members that are live and not bound yet: together,
// the group's placed members. A reservation whose pod is gone or being
// deleted counts for nothing, though its Unreserve may come later; one whose
// pod is already bound is counted as bound. self, a member at Permit holding
// one of the reservations, counts even if the index has not seen it yet.
func (ix *memberIndex) placed(key string, reserved map[types.UID]reservation, self types.UID) (bound, pending int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	s, ok := ix.groups[key]
	if !ok {
		s = &memberSet{}
	}
	for uid := range reserved {
		p, seen := s.phase[uid]
		if seen && p == memberPending || !seen && uid == self {
			pending++
		}
	}
	return s.bound, pending
}

// size returns how many groups the index holds, for the gauges and tests.
func (ix *memberIndex) size() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.groups)
}
