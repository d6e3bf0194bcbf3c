package gang

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cosched/cosched/pkg/placement"
)

// groupState is what the plugin remembers about one group between
// scheduling cycles. Everything else (members, quorum, timeout) is read from
// the informers when needed, so a restarted scheduler loses nothing that
// matters: members it had reserved but not bound are gone from its cache too.
type groupState struct {
	// reserved maps the members of the current attempt that hold a
	// reservation to their node. A member stays here until the pod cache
	// shows it bound, so quorum never misses a member between its bind and
	// the cache catching up.
	reserved map[types.UID]reservation
	// releasing holds members of a rejected attempt whose reservation is
	// being released. They count for nothing: a member rejected a moment ago
	// must never help a later member to a quorum.
	releasing map[types.UID]bool
	// waitingSince is when the current attempt's first member began to wait
	// at Permit; zero when nobody waits.
	waitingSince time.Time
	// deadline is when the attempt stops admitting: its waiters' timeout
	// (the earliest, if the PodGroup's timeout changed meanwhile) after they
	// began to wait; zero when nobody waits. The framework's Permit timers
	// fire admitMargin later (permitTimer), so no timer can beat an
	// admission's Allow to its member.
	deadline time.Time
	// rejectedAt is the last time the group was turned away as a whole;
	// the queue orders the group behind groups that failed less recently.
	rejectedAt time.Time
	// backoffUntil keeps a rejected group from retrying in a storm.
	backoffUntil time.Time
	// lastReason says why the group was last rejected, for the message
	// members get while the group backs off.
	lastReason string
	// plan is where the current attempt places its members (atomic
	// placement only); it ends with the attempt.
	plan *placement.Plan
	// activationPending is set while a timer will requeue the group's
	// members at the end of its backoff.
	activationPending bool
	// preemption is the group's eviction of victims in flight, if any.
	preemption *preemptionInFlight
	// admitted are the members of the last attempt let through Permit; if
	// one of them fails to bind, the others are released with it.
	admitted []types.UID
	// noFitStreak counts the rejections in a row of a group that cannot be
	// placed at all; its backoff grows with them.
	noFitStreak int
	// noFit is set while the backoff is that of a group that did not fit:
	// room appearing can end it early (roomRecheck).
	noFit bool
	// roomRecheck is set when an event that can make room (a pod gone, a
	// node added or grown) reached a member during a noFit backoff: the
	// next member to start an attempt checks the fit again at once instead
	// of waiting the backoff out.
	roomRecheck bool
	// bindFailStreak counts the admissions in a row that ended with a
	// member failing to bind and its siblings released. An admission does
	// not end it (the next may fail the same way); the group running whole
	// does.
	bindFailStreak int
}

// preemptionInFlight remembers whom a group preempted, so that it does not
// evict more while its victims terminate.
type preemptionInFlight struct {
	victims []victimRef
	// until is when the group stops waiting for victims that are still
	// there and may choose again.
	until time.Time
}

// victimRef names one preempted pod.
type victimRef struct {
	namespace, name string
	uid             types.UID
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

// liveTrackers holds the group memories of the schedulers running in this
// process, for the gauges.
var liveTrackers sync.Map

// reportWhileRunning counts t in the gauges until ctx, its scheduler's, ends:
// a stopped scheduler's memory is gone with it.
func reportWhileRunning(ctx context.Context, t *groupTracker) {
	liveTrackers.Store(t, struct{}{})
	context.AfterFunc(ctx, func() { liveTrackers.Delete(t) })
}

// trackerSizes are what the gauges report for one group memory.
type trackerSizes struct {
	groups, reservations, releasing int
}

// sizes counts the groups, reservations and releasing members held.
func (t *groupTracker) sizes() trackerSizes {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := trackerSizes{groups: len(t.groups)}
	for _, g := range t.groups {
		s.reservations += len(g.reserved)
		s.releasing += len(g.releasing)
	}
	return s
}

func (t *groupTracker) getOrCreateLocked(key string) *groupState {
	g, ok := t.groups[key]
	if !ok {
		g = &groupState{reserved: map[types.UID]reservation{}, releasing: map[types.UID]bool{}}
		t.groups[key] = g
	}
	return g
}

// dropIfIdleLocked forgets a group that holds nothing and has nothing to
// remember, so the map only holds groups in flight or recently rejected.
func (t *groupTracker) dropIfIdleLocked(key string) {
	if g, ok := t.groups[key]; ok && len(g.reserved) == 0 && len(g.releasing) == 0 &&
		g.rejectedAt.IsZero() && !g.activationPending && g.plan == nil && g.preemption == nil && g.bindFailStreak == 0 {
		delete(t.groups, key)
	}
}

// reserve records that uid holds a reservation on node.
func (t *groupTracker) reserve(key string, uid types.UID, node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.getOrCreateLocked(key)
	delete(g.releasing, uid)
	g.reserved[uid] = reservation{node: node, since: time.Now()}
}

// setPlan stores the current attempt's plan.
func (t *groupTracker) setPlan(key string, plan *placement.Plan) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.getOrCreateLocked(key).plan = plan
}

// planOf returns the current attempt's plan, nil if none.
func (t *groupTracker) planOf(key string) *placement.Plan {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		return g.plan
	}
	return nil
}

// reservedMembers returns a copy of the current attempt's reservations.
func (t *groupTracker) reservedMembers(key string) map[types.UID]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return nil
	}
	out := make(map[types.UID]string, len(g.reserved))
	for uid, r := range g.reserved {
		out[uid] = r.node
	}
	return out
}

// reservedCount returns how many members of the current attempt hold
// reservations.
func (t *groupTracker) reservedCount(key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		return len(g.reserved)
	}
	return 0
}

// has reports whether the tracker holds an entry for key.
func (t *groupTracker) has(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.groups[key]
	return ok
}

// waitingCount returns how many members of the current attempt wait at
// Permit for their quorum.
func (t *groupTracker) waitingCount(key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	if g, ok := t.groups[key]; ok {
		for _, r := range g.reserved {
			if r.waiting && !r.admitted {
				n++
			}
		}
	}
	return n
}

// waitingOn returns the members of key's current attempt that wait at
// Permit on node (reserved, not yet let through).
func (t *groupTracker) waitingOn(key, node string) []types.UID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var uids []types.UID
	if g, ok := t.groups[key]; ok {
		for uid, r := range g.reserved {
			if r.node == node && r.waiting && !r.admitted {
				uids = append(uids, uid)
			}
		}
	}
	return uids
}

// permitVerdict is the tracker's answer to one member at Permit.
type permitVerdict int

const (
	// verdictStale: the member's attempt was rejected after it reserved.
	verdictStale permitVerdict = iota
	// verdictWait: the quorum does not hold reservations yet.
	verdictWait
	// verdictAdmit: the quorum is placed; every reserved member may go.
	verdictAdmit
)

// permitDecision is a verdict with what the caller needs to act on it.
type permitDecision struct {
	verdict permitVerdict
	// placed counts bound and reserved members.
	placed int
	// firstWaiter is set for the attempt's first member to wait.
	firstWaiter bool
	// admitted are the reserved members to let go, and waited how long the
	// attempt waited, on verdictAdmit.
	admitted []types.UID
	waited   time.Duration
}

// permit decides, under one lock, whether uid's attempt is still current
// and whether it has reached its quorum, so a rejection cannot slip between
// counting and admitting. members tells which members the pod cache shows
// bound and which it still lists; a reservation of a member deleted while it
// reserved or waited counts for nothing, though its Unreserve may come only
// after its own Permit wait. The shared index may trail the pod cache by a
// handler's delay, so a count that reaches the quorum is checked against
// exact(), the cache itself, before the group is admitted: once per attempt.
// wait is the Permit wait the member gets if it must wait.
func (t *groupTracker) permit(key string, uid types.UID, members *memberIndex, exact func() *memberIndex, quorum int, now time.Time, wait time.Duration) permitDecision {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return permitDecision{verdict: verdictStale}
	}
	if _, current := g.reserved[uid]; !current {
		return permitDecision{verdict: verdictStale}
	}
	bound, pending := members.placed(key, g.reserved, uid)
	d := permitDecision{placed: bound + pending}
	if d.placed >= quorum && exact != nil {
		bound, pending = exact().placed(key, g.reserved, uid)
		d.placed = bound + pending
	}
	if d.placed < quorum || tooLate(g, now) {
		// Too late: the first waiter's own Permit timer ends the attempt
		// as a timeout (R3 in docs/design.md).
		d.verdict = verdictWait
		r := g.reserved[uid]
		r.waiting = true
		g.reserved[uid] = r
		deadline := now.Add(permitTimer(wait) - admitMargin(wait))
		if g.waitingSince.IsZero() {
			g.waitingSince = now
			g.deadline = deadline
			d.firstWaiter = true
		} else if deadline.Before(g.deadline) {
			g.deadline = deadline
		}
		return d
	}
	d.verdict = verdictAdmit
	d.admitted, d.waited = t.admitLocked(g, now)
	t.dropIfIdleLocked(key)
	return d
}

// maxAdmitMargin bounds admitMargin.
const maxAdmitMargin = time.Second

// admitMargin is how long after an attempt stops admitting its waiters'
// Permit timers fire: a tenth of the wait, at most maxAdmitMargin. Allow
// reaches the waiting members microseconds after an admission, so this is
// ample.
func admitMargin(wait time.Duration) time.Duration {
	return min(wait/10, maxAdmitMargin)
}

// permitTimer is the wait Permit gives the framework for a member whose
// group's timeout is wait: the timeout plus admitMargin, within the
// framework's cap. The group admits for the whole timeout; the timer fires
// only after admissions stopped, and ends the attempt as a timeout (R3 in
// docs/design.md).
func permitTimer(wait time.Duration) time.Duration {
	return min(wait+admitMargin(wait), maxPermitWait)
}

// tooLate reports whether the current attempt's deadline has passed: its
// first waiter's Permit timer fires within admitMargin, maybe before an
// Allow would reach it, and then that member would fail after its siblings
// were let go.
func tooLate(g *groupState, now time.Time) bool {
	return !g.deadline.IsZero() && !now.Before(g.deadline)
}

// admitLocked ends a successful attempt: the wait, the failure history and
// any backoff are over. It returns the reserved members and how long the
// attempt waited.
func (t *groupTracker) admitLocked(g *groupState, now time.Time) ([]types.UID, time.Duration) {
	var waited time.Duration
	if !g.waitingSince.IsZero() {
		waited = now.Sub(g.waitingSince)
	}
	uids := make([]types.UID, 0, len(g.reserved))
	for uid, r := range g.reserved {
		uids = append(uids, uid)
		r.admitted, r.waiting = true, false
		g.reserved[uid] = r
	}
	g.admitted = uids
	g.noFitStreak = 0
	g.waitingSince, g.deadline = time.Time{}, time.Time{}
	g.plan = nil
	g.rejectedAt, g.backoffUntil, g.lastReason = time.Time{}, time.Time{}, ""
	return uids, waited
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

// admitAll admits the group's current attempt whatever its count (the
// caller has checked the quorum, e.g. after minMember was lowered).
func (t *groupTracker) admitAll(key string, now time.Time) ([]types.UID, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok || tooLate(g, now) {
		return nil, 0
	}
	uids, waited := t.admitLocked(g, now)
	t.dropIfIdleLocked(key)
	return uids, waited
}

// settled forgets a member's reservation once the pod cache shows it bound
// or gone.
func (t *groupTracker) settled(key string, uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return
	}
	delete(g.reserved, uid)
	delete(g.releasing, uid)
	if len(g.reserved) == 0 {
		g.waitingSince, g.deadline = time.Time{}, time.Time{}
	}
	t.dropIfIdleLocked(key)
}

// rejection is what reject returns: the members to turn away and whether this
// call failed a new attempt (and so should report it).
type rejection struct {
	released []types.UID
	// heldFor is how long each released member had held its node.
	heldFor map[types.UID]time.Duration
	report  bool
	waited  time.Duration
}

// reject fails the group's current attempt: every reservation moves to
// releasing (the caller rejects those members at Permit), the backoff starts
// and the reason is kept. A rejection is reported when it ends an attempt
// that held reservations, or when the group was not already backing off; the
// echoes of one failure (siblings' Unreserve, members turned away during the
// backoff) are not.
func (t *groupTracker) reject(key string, reason string, now time.Time, backoff time.Duration) rejection {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.getOrCreateLocked(key)
	r := rejection{report: len(g.reserved) > 0 || !now.Before(g.backoffUntil), heldFor: map[types.UID]time.Duration{}}
	for uid, res := range g.reserved {
		if res.admitted {
			// Let through Permit and binding: not waiting, nothing to
			// reject. Its reservation stays until it binds or fails, so a
			// failure still releases its siblings.
			continue
		}
		r.released = append(r.released, uid)
		r.heldFor[uid] = time.Since(res.since)
		g.releasing[uid] = true
		delete(g.reserved, uid)
	}
	g.plan = nil
	if !r.report {
		return r
	}
	if !g.waitingSince.IsZero() {
		r.waited = now.Sub(g.waitingSince)
	}
	g.waitingSince, g.deadline = time.Time{}, time.Time{}
	g.rejectedAt = now
	g.backoffUntil = now.Add(backoff)
	g.lastReason = reason
	g.noFit, g.roomRecheck = false, false
	return r
}

// unreserve is called when a member's reservation is released. It says
// whether the member belonged to the current attempt (its failure fails the
// group) rather than to an attempt already rejected.
func (t *groupTracker) unreserve(key string, uid types.UID) (current bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return false
	}
	r, current := g.reserved[uid]
	if r.admitted {
		// No rejection will release it: it was past Permit.
		delete(g.reserved, uid)
	}
	delete(g.releasing, uid)
	return current
}

// admittedSiblings reports whether uid holds a reservation that was let
// through Permit (so its Unreserve means its binding failed) and returns the
// other members admitted with it. It answers yes once per attempt.
func (t *groupTracker) admittedSiblings(key string, uid types.UID) ([]types.UID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return nil, false
	}
	if r, ok := g.reserved[uid]; !ok || !r.admitted {
		return nil, false
	}
	siblings := make([]types.UID, 0, len(g.admitted))
	for _, other := range g.admitted {
		if other != uid {
			siblings = append(siblings, other)
		}
	}
	// One failure answers for the attempt: siblings whose binding is
	// cancelled because of it are not failures of their own.
	g.admitted = nil
	for other, r := range g.reserved {
		r.admitted = false
		g.reserved[other] = r
	}
	return siblings, true
}

// unreserved ends a member's Unreserve: whatever the member's cycle held,
// it holds nothing now. A member that joined a group that runs (Permit let
// it through without an admission) and failed to bind is dropped here too:
// kept, its reservation would count toward a later attempt's quorum
// although the member is pending again (R1 in docs/design.md).
func (t *groupTracker) unreserved(key string, uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		delete(g.reserved, uid)
		delete(g.releasing, uid)
		if len(g.reserved) == 0 {
			g.waitingSince, g.deadline = time.Time{}, time.Time{}
		}
		t.dropIfIdleLocked(key)
	}
}

// forgetReleased drops a released member, if uid is one, and the group if
// it is idle: a deleted pod releases nothing more.
func (t *groupTracker) forgetReleased(key string, uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		delete(g.releasing, uid)
		t.dropIfIdleLocked(key)
	}
}

// forgetHistory drops what a group remembers for its members' sake (its
// rejections, backoff, plan, preemption) once it has no member pods left,
// and the group itself unless members still hold reservations, whose
// Unreserve or bind will come and drop them.
func (t *groupTracker) forgetHistory(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok {
		return
	}
	g.rejectedAt, g.backoffUntil, g.lastReason, g.noFitStreak, g.bindFailStreak = time.Time{}, time.Time{}, "", 0, 0
	g.noFit, g.roomRecheck = false, false
	g.plan, g.preemption, g.activationPending = nil, nil, false
	t.dropIfIdleLocked(key)
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
// timer is already set or the group is unknown.
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
		t.dropIfIdleLocked(key)
	}
}

// maxBackoffFactor caps how far a group that keeps not fitting backs off:
// six times the configured backoff (30s by default).
const maxBackoffFactor = 6

// markNoFit records that the group's current backoff is that of a group
// that does not fit, which room appearing may end early.
func (t *groupTracker) markNoFit(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		g.noFit = true
	}
}

// roomMayHaveAppeared notes, for a group backing off because it did not
// fit, that an event that can make room has happened; it reports whether
// the group was such a group. Cheap: queueing hints call it per event.
func (t *groupTracker) roomMayHaveAppeared(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok || !g.noFit || !now.Before(g.backoffUntil) {
		return false
	}
	g.roomRecheck = true
	return true
}

// takeRoomRecheck claims a pending recheck of a noFit backoff: true once
// per event burst, for the member that then checks the fit.
func (t *groupTracker) takeRoomRecheck(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.groups[key]
	if !ok || !g.roomRecheck {
		return false
	}
	g.roomRecheck = false
	return true
}

// endBackoff ends the group's backoff now (room appeared for a group that
// did not fit). The no-fit streak stays: if the attempt fails again, the
// next backoff is the longer one.
func (t *groupTracker) endBackoff(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		g.backoffUntil, g.noFit, g.roomRecheck = time.Time{}, false, false
	}
}

// escalatedBackoff counts one more rejection in a row of a group that does
// not fit and returns its backoff: base, doubled with each repeat, at most
// maxBackoffFactor times base. A group that can never fit is then retried a
// few times a minute instead of every base, however long it waits.
func (t *groupTracker) escalatedBackoff(key string, base time.Duration) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.getOrCreateLocked(key)
	g.noFitStreak++
	return escalate(base, g.noFitStreak)
}

// escalate returns base doubled for each repeat in a streak of n, at most
// maxBackoffFactor times base.
func escalate(base time.Duration, n int) time.Duration {
	backoff := base
	for i := 1; i < n && backoff < maxBackoffFactor*base; i++ {
		backoff *= 2
	}
	return min(backoff, maxBackoffFactor*base)
}

// bindFailed starts the backoff of a group whose admitted attempt was
// released because a member failed to bind, and returns it. It escalates
// with each such attempt in a row: while a binding is refused for good
// (a webhook, a quota), the group is otherwise admitted, partly bound and
// released again as fast as its controller recreates the members.
func (t *groupTracker) bindFailed(key, reason string, now time.Time, base time.Duration) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.getOrCreateLocked(key)
	g.bindFailStreak++
	backoff := escalate(base, g.bindFailStreak)
	g.rejectedAt, g.backoffUntil, g.lastReason = now, now.Add(backoff), reason
	return backoff
}

// bindFailures returns the group's bindFailStreak.
func (t *groupTracker) bindFailures(key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok {
		return g.bindFailStreak
	}
	return 0
}

// ranWhole ends the group's streak of bind failures once it runs whole.
func (t *groupTracker) ranWhole(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok && len(g.reserved) == 0 {
		g.bindFailStreak = 0
		t.dropIfIdleLocked(key)
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

// groupsOnNode returns the groups with a member reserved on node.
func (t *groupTracker) groupsOnNode(node string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var keys []string
	for key, g := range t.groups {
		for _, r := range g.reserved {
			if r.node == node {
				keys = append(keys, key)
				break
			}
		}
	}
	return keys
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

// startPreemption records the victims a group's preemption is evicting. It
// also ends the backoff of the rejection that led to it: the group found
// room, and it must take that room the moment the victims are gone, before
// anybody else (a victim's controller recreates its pods at once). While the
// victims terminate, PreFilter turns the members away without a rejection.
func (t *groupTracker) startPreemption(key string, victims []victimRef, now time.Time, maxWait time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.getOrCreateLocked(key)
	g.preemption = &preemptionInFlight{victims: victims, until: now.Add(maxWait)}
	g.backoffUntil, g.noFitStreak, g.roomRecheck = time.Time{}, 0, false
}

// preemptionPending returns how many of the group's last victims are still
// there (present reports one), forgetting the preemption once none are or
// once its wait is over: a victim stuck terminating must not keep the group
// from ever preempting again.
func (t *groupTracker) preemptionPending(key string, now time.Time, present func(victimRef) bool) int {
	t.mu.Lock()
	g, ok := t.groups[key]
	if !ok || g.preemption == nil {
		t.mu.Unlock()
		return 0
	}
	p := g.preemption
	t.mu.Unlock()
	// present reads caches with locks of their own: never under t.mu.
	left := 0
	if now.Before(p.until) {
		for _, v := range p.victims {
			if present(v) {
				left++
			}
		}
	}
	if left == 0 {
		t.mu.Lock()
		if g, ok := t.groups[key]; ok && g.preemption == p {
			g.preemption = nil
			t.dropIfIdleLocked(key)
		}
		t.mu.Unlock()
	}
	return left
}

// size reports how many groups are tracked (for tests and leak checks).
func (t *groupTracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.groups)
}

// placedBeyondBound counts key's reservations whose members the pod cache
// shows live and not yet bound.
func (t *groupTracker) placedBeyondBound(key string, members *memberIndex) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[key]; ok && len(g.reserved) > 0 {
		_, pending := members.placed(key, g.reserved, "")
		return pending
	}
	return 0
}
