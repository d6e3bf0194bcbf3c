package gang

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cosched/cosched/pkg/placement"
)

// groupPhase is where a group stands between scheduling cycles. The state
// machine of docs/design.md is the transitions below: each is a method of
// groupState, and the tracker's methods, under its one lock, are the only
// callers.
type groupPhase uint8

const (
	// phaseIdle: no attempt in flight and nothing to wait out. The group's
	// members are pending (PreEnqueue holds them until a quorum exists), or
	// it runs and members that join it hold reservations of their own.
	phaseIdle groupPhase = iota
	// phaseAttempting: an attempt started (its first member planned the
	// group or reserved a node); nobody waits at Permit yet.
	phaseAttempting
	// phaseWaiting: members wait at Permit for the quorum; the attempt
	// admits until deadline.
	phaseWaiting
	// phaseAdmitted: the quorum was let through Permit and binds; if one of
	// the admitted members fails to bind, the others are released with it.
	phaseAdmitted
	// phaseBackingOff: the last attempt was rejected; no member starts one
	// before backoffUntil.
	phaseBackingOff
	// phaseNoFitBackoff: phaseBackingOff of a group that did not fit at
	// all: room appearing can end it early.
	phaseNoFitBackoff
	// phaseRoomAppeared: phaseNoFitBackoff after an event that can make
	// room reached a member; the next member to start an attempt checks the
	// fit at once instead of waiting the backoff out.
	phaseRoomAppeared
	// phaseAwaitingVictims: the group preempted; its members hold their
	// nominated nodes and start no attempt while the victims terminate.
	phaseAwaitingVictims
)

var phaseNames = [...]string{"Idle", "Attempting", "Waiting", "Admitted", "BackingOff", "NoFitBackoff", "RoomAppeared", "AwaitingVictims"}

func (p groupPhase) String() string { return phaseNames[p] }

// groupState is what the plugin knows about one group between scheduling
// cycles: its members as the pod cache shows them, its phase, the members
// holding reservations, and the history that shapes its next backoff and its
// place in the queue. The PodGroup (quorum, timeout) is read from its lister
// when needed, and a restarted scheduler loses nothing that matters: the
// members come back with the informer's first list, and members it had
// reserved but not bound are pending again.
type groupState struct {
	phase groupPhase

	// members are the group's pods as the scheduler's pod cache shows them;
	// the pod informer's handlers are their only writers.
	members memberSet

	// reserved maps the members holding a reservation to their node. A
	// member stays here until the pod cache shows it bound, so quorum never
	// misses a member between its bind and the cache catching up.
	reserved map[types.UID]reservation
	// releasing holds members of a rejected attempt whose reservation is
	// being released. They count for nothing: a member rejected a moment ago
	// must never help a later member to a quorum.
	releasing map[types.UID]bool

	// Attempting and Waiting: the plan places the attempt's members (atomic
	// placement only). Waiting: waitingSince is when the first member began
	// to wait; deadline is when the attempt stops admitting: its waiters'
	// timeout (the earliest, if the PodGroup's changed meanwhile) after they
	// began. The framework's Permit timers fire admitMargin later
	// (permitTimer), so no timer can beat an admission's Allow to its member.
	plan         *placement.Plan
	waitingSince time.Time
	deadline     time.Time

	// Admitted: the members let through Permit together.
	admitted []types.UID

	// The backoff phases: backoffUntil ends them, lastReason is the message
	// members get meanwhile.
	backoffUntil time.Time
	lastReason   string

	// AwaitingVictims: whom the group preempted.
	preemption *preemptionInFlight

	// History, kept across phases while the group has pods. rejectedAt
	// orders the group behind groups that failed less recently (QueueSort);
	// noFitStreak and bindFailStreak count the no-fit rejections and the
	// bind failures after admission in a row, and lengthen the backoff.
	rejectedAt     time.Time
	noFitStreak    int
	bindFailStreak int

	// activationPending is set while a timer will requeue the members at
	// the end of the backoff (one timer per backoff).
	activationPending bool
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

// effectivePhase is the phase at now: a backoff or a preemption wait whose
// time is up is over, whether or not anything moved the group since.
func (g *groupState) effectivePhase(now time.Time) groupPhase {
	switch g.phase {
	case phaseBackingOff, phaseNoFitBackoff, phaseRoomAppeared:
		if !now.Before(g.backoffUntil) {
			return phaseIdle
		}
	}
	return g.phase
}

// quiet reports whether the group holds nothing and remembers nothing
// beyond its members: no attempt in flight, no recent failure. A quiet group
// without members is forgotten.
func (g *groupState) quiet() bool {
	return len(g.reserved) == 0 && len(g.releasing) == 0 && g.rejectedAt.IsZero() && !g.activationPending &&
		g.noFitStreak == 0 && g.bindFailStreak == 0 && (g.phase == phaseIdle || g.phase == phaseAdmitted)
}

// startAttempt is the first step of an attempt: a plan or a reservation. A
// reservation in any other phase joins what is under way (an attempt, an
// admitted or running group).
func (g *groupState) startAttempt(now time.Time) {
	if g.effectivePhase(now) == phaseIdle {
		g.phase = phaseAttempting
	}
}

// startWaiting records a member's wait at Permit; it reports whether the
// member is the attempt's first to wait.
func (g *groupState) startWaiting(uid types.UID, now, deadline time.Time) (first bool) {
	r := g.reserved[uid]
	r.waiting = true
	g.reserved[uid] = r
	if g.waitingSince.IsZero() {
		g.phase = phaseWaiting
		g.waitingSince, g.deadline = now, deadline
		return true
	}
	if deadline.Before(g.deadline) {
		g.deadline = deadline
	}
	return false
}

// admit ends a successful attempt: every reserved member is let through,
// the failure history and any backoff are over. It returns the admitted
// members and how long the attempt waited.
func (g *groupState) admit(now time.Time) ([]types.UID, time.Duration) {
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
	g.phase = phaseAdmitted
	g.admitted = uids
	g.noFitStreak = 0
	g.waitingSince, g.deadline = time.Time{}, time.Time{}
	g.plan = nil
	g.rejectedAt, g.backoffUntil, g.lastReason = time.Time{}, time.Time{}, ""
	return uids, waited
}

// backOff starts a backoff of phase (one of the backoff phases).
func (g *groupState) backOff(phase groupPhase, reason string, now time.Time, backoff time.Duration) {
	g.phase = phase
	g.rejectedAt, g.backoffUntil, g.lastReason = now, now.Add(backoff), reason
	g.waitingSince, g.deadline = time.Time{}, time.Time{}
	g.plan = nil
}

// settle drops a member's reservation. The last one to go ends the attempt
// it belonged to: its wait, or its admission once every admitted member is
// bound (or failed, and the failure already moved the group on).
func (g *groupState) settle(uid types.UID) {
	delete(g.reserved, uid)
	delete(g.releasing, uid)
	if len(g.reserved) > 0 {
		return
	}
	g.waitingSince, g.deadline = time.Time{}, time.Time{}
	switch g.phase {
	case phaseWaiting, phaseAdmitted:
		g.phase, g.admitted, g.plan = phaseIdle, nil, nil
	case phaseAttempting:
		if g.plan == nil {
			g.phase = phaseIdle
		}
	}
}

// forgetAttempts drops everything but the members (the PodGroup was
// deleted) and returns the members that held reservations.
func (g *groupState) forgetAttempts() []types.UID {
	uids := make([]types.UID, 0, len(g.reserved))
	for uid := range g.reserved {
		uids = append(uids, uid)
	}
	*g = groupState{members: g.members, reserved: map[types.UID]reservation{}, releasing: map[types.UID]bool{}}
	return uids
}

// forgetHistory drops what the group remembers for its members' sake.
func (g *groupState) forgetHistory() {
	g.rejectedAt, g.backoffUntil, g.lastReason, g.noFitStreak, g.bindFailStreak = time.Time{}, time.Time{}, "", 0, 0
	g.plan, g.preemption, g.activationPending = nil, nil, false
	switch g.phase {
	case phaseBackingOff, phaseNoFitBackoff, phaseRoomAppeared, phaseAwaitingVictims:
		g.phase = phaseIdle
	case phaseAttempting:
		if len(g.reserved) == 0 {
			g.phase = phaseIdle
		}
	}
}
