package gang

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// groupState is what the plugin remembers about one group between
// scheduling cycles. Everything else (members, quorum, timeout) is read from
// the informers when needed, so a restarted scheduler loses nothing that
// matters: members it had reserved but not bound are gone from its cache too.
type groupState struct {
	// reserved maps members that hold a reservation (Reserve ran, not yet
	// bound) to their node.
	reserved map[types.UID]string
	// waitingSince is when the current attempt's first member began to wait
	// at Permit; zero when nobody waits.
	waitingSince time.Time
	// rejectedAt is the last time the group was turned away as a whole;
	// the queue orders the group behind groups that failed less recently.
	rejectedAt time.Time
	// backoffUntil keeps a rejected group from retrying in a storm.
	backoffUntil time.Time
	// attemptFailed marks an attempt that has been rejected while members
	// still hold reservations, so the rejection is counted and announced once.
	attemptFailed bool
	// activationPending is set while a timer will requeue the group's
	// members at the end of its backoff.
	activationPending bool
	// lastReason says why the group was last rejected, for events and for
	// the message members get while the group backs off.
	lastReason string
}

// groupTracker is the plugin's per-group memory, safe for concurrent use.
// It never calls into the scheduler while holding its lock: the queue's Less
// reads it under the queue lock, so the reverse order would deadlock.
type groupTracker struct {
	mu     sync.Mutex
	groups map[string]*groupState
}

func newGroupTracker() *groupTracker {
	return &groupTracker{groups: map[string]*groupState{}}
}

func (t *groupTracker) getLocked(key string) *groupState {
	g, ok := t.groups[key]
	if !ok {
		g = &groupState{reserved: map[types.UID]string{}}
		t.groups[key] = g
	}
	return g
}

// dropIfIdleLocked forgets a group that holds nothing and has no backoff to
// remember, so the map only holds groups in flight.
func (t *groupTracker) dropIfIdleLocked(key string, now time.Time) {
	if g, ok := t.groups[key]; ok && len(g.reserved) == 0 && !now.Before(g.backoffUntil) && g.rejectedAt.IsZero() {
		delete(t.groups, key)
	}
}

// reserve records that uid holds a reservation on node.
func (t *groupTracker) reserve(key string, uid types.UID, node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.getLocked(key)
	g.reserved[uid] = node
}

// reservedMembers returns a copy of the members holding reservations.
func (t *groupTracker) reservedMembers(key string) map[types.UID]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return nil
	}
	out := make(map[types.UID]string, len(g.reserved))
	for uid, node := range g.reserved {
		out[uid] = node
	}
	return out
}

// reservedCount returns how many members hold reservations.
func (t *groupTracker) reservedCount(key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		return len(g.reserved)
	}
	return 0
}

// startWaiting notes that a member waits at Permit; it returns true for the
// first waiter of an attempt.
func (t *groupTracker) startWaiting(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.getLocked(key)
	if g.waitingSince.IsZero() {
		g.waitingSince = now
		return true
	}
	return false
}

// waitingSince returns when the current attempt began to wait, zero if none.
func (t *groupTracker) waitingSince(key string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		return g.waitingSince
	}
	return time.Time{}
}

// admitted ends a successful attempt and returns how long it waited.
func (t *groupTracker) admitted(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return 0
	}
	var waited time.Duration
	if !g.waitingSince.IsZero() {
		waited = now.Sub(g.waitingSince)
	}
	g.waitingSince = time.Time{}
	g.rejectedAt, g.lastReason, g.attemptFailed = time.Time{}, "", false
	return waited
}

// bound forgets a member's reservation once it is bound.
func (t *groupTracker) bound(key string, uid types.UID, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		delete(g.reserved, uid)
		if len(g.reserved) == 0 {
			g.waitingSince = time.Time{}
		}
		t.dropIfIdleLocked(key, now)
	}
}

// rejection is what reject returns: the members to turn away and whether this
// call is the one that failed the attempt (and so should report it).
type rejection struct {
	waiting []types.UID
	first   bool
	waited  time.Duration
}

// reject fails the group's current attempt: it sets the backoff, remembers
// the reason and returns the members still holding reservations (except
// exclude, whose own cycle is already failing).
func (t *groupTracker) reject(key string, exclude types.UID, reason string, now time.Time, backoff time.Duration) rejection {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.getLocked(key)
	r := rejection{first: !g.attemptFailed}
	if r.first {
		g.rejectedAt = now
		g.backoffUntil = now.Add(backoff)
		g.lastReason = reason
		if !g.waitingSince.IsZero() {
			r.waited = now.Sub(g.waitingSince)
		}
	}
	for uid := range g.reserved {
		if uid != exclude {
			r.waiting = append(r.waiting, uid)
		}
	}
	// An attempt is in progress while members hold reservations; a rejection
	// with none held (a PreFilter rejection) ends at once.
	g.attemptFailed = len(g.reserved) > 0
	return r
}

// unreserve drops a member's reservation; when the last one goes, the failed
// attempt is over and the next rejection will be reported afresh.
func (t *groupTracker) unreserve(key string, uid types.UID, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return
	}
	delete(g.reserved, uid)
	if len(g.reserved) == 0 {
		g.waitingSince = time.Time{}
		g.attemptFailed = false
	}
}

// backingOff returns the reason and the remaining backoff when the group was
// rejected recently.
func (t *groupTracker) backingOff(key string, now time.Time) (string, time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok || !now.Before(g.backoffUntil) {
		return "", 0, false
	}
	return g.lastReason, g.backoffUntil.Sub(now), true
}

// scheduleActivation claims the one requeue timer of the group's current
// backoff; it returns the delay until the backoff ends and false when a
// timer is already set or there is no backoff.
func (t *groupTracker) scheduleActivation(key string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok || g.activationPending {
		return 0, false
	}
	g.activationPending = true
	return max(g.backoffUntil.Sub(now), 0), true
}

// activationDone releases the requeue timer claim.
func (t *groupTracker) activationDone(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		g.activationPending = false
	}
}

// rejectedAt returns when the group was last rejected, zero if never.
func (t *groupTracker) rejectedAt(key string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		return g.rejectedAt
	}
	return time.Time{}
}

// forget drops a group whose PodGroup was deleted and returns the members
// that still held reservations.
func (t *groupTracker) forget(key string) []types.UID {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return nil
	}
	delete(t.groups, key)
	uids := make([]types.UID, 0, len(g.reserved))
	for uid := range g.reserved {
		uids = append(uids, uid)
	}
	return uids
}

// size reports how many groups are tracked (for tests and leak checks).
func (t *groupTracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.groups)
}
