package gang

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// trackerStep is one call on a groupTracker, at baseTime+at.
type trackerStep struct {
	// op is reserve, unreserve, forgetReleased, settled, wait, admitted,
	// reject, forget, schedule or activationDone.
	op      string
	uid     types.UID
	at      time.Duration
	backoff time.Duration
	// reason is the reject's reason; "reason" when empty.
	reason string

	// For unreserve: whether uid belonged to the current attempt.
	wantCurrent bool
	// For reject: the expected rejection.
	wantReport   bool
	wantReleased []types.UID
	// For reject and admitted: how long the attempt had waited.
	wantWaited time.Duration
	// For wait: whether it is the attempt's first waiter.
	wantFirstWaiter bool
	// For forget: the reservations returned.
	wantForgotten []types.UID
	// For schedule: whether the timer is claimed, and its delay.
	wantScheduled bool
	wantDelay     time.Duration
}

// trackerWant is the tracker's state after the steps, seen at baseTime+at.
type trackerWant struct {
	at           time.Duration
	size         int
	reserved     []types.UID
	releasing    []types.UID
	rejectedAt   time.Duration // never: zero
	backingOff   bool
	backoffLeft  time.Duration
	reason       string
	waitingSince time.Duration // never: zero
	activation   bool
}

const never = -1

func TestGroupTracker(t *testing.T) {
	tests := []struct {
		name  string
		steps []trackerStep
		want  trackerWant
	}{
		{
			name:  "reservations are counted once per member",
			steps: []trackerStep{{op: "reserve", uid: "a"}, {op: "reserve", uid: "b"}, {op: "reserve", uid: "a"}},
			want:  trackerWant{size: 1, reserved: []types.UID{"a", "b"}, rejectedAt: never, waitingSince: never},
		},
		{
			name: "first waiter only once per attempt",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", at: time.Second, wantFirstWaiter: true},
				{op: "reserve", uid: "b"}, {op: "wait", at: 2 * time.Second},
			},
			want: trackerWant{size: 1, reserved: []types.UID{"a", "b"}, rejectedAt: never, waitingSince: time.Second},
		},
		{
			name: "a rejection without reservations is reported unless the group backs off already",
			steps: []trackerStep{
				{op: "reject", reason: "first", backoff: 5 * time.Second, wantReport: true},
				// An echo of the same failure: a sibling turned away
				// during the backoff. It neither reports, nor extends the
				// backoff, nor replaces the reason.
				{op: "reject", reason: "echo", at: time.Second, backoff: 5 * time.Second},
			},
			want: trackerWant{at: time.Second, size: 1, rejectedAt: 0, backingOff: true, backoffLeft: 4 * time.Second, reason: "first", waitingSince: never},
		},
		{
			name: "once the backoff is over a rejection is reported again",
			steps: []trackerStep{
				{op: "reject", reason: "first", backoff: 5 * time.Second, wantReport: true},
				{op: "reject", reason: "second", at: 5 * time.Second, backoff: 5 * time.Second, wantReport: true},
			},
			want: trackerWant{at: 6 * time.Second, size: 1, rejectedAt: 5 * time.Second, backingOff: true, backoffLeft: 4 * time.Second, reason: "second", waitingSince: never},
		},
		{
			name: "a rejection that ends an attempt with reservations is reported even during a backoff",
			steps: []trackerStep{
				{op: "reject", reason: "first", backoff: 10 * time.Second, wantReport: true},
				{op: "reserve", uid: "a", at: time.Second}, {op: "wait", at: time.Second, wantFirstWaiter: true},
				{op: "reject", reason: "second", at: 3 * time.Second, backoff: 10 * time.Second,
					wantReport: true, wantReleased: []types.UID{"a"}, wantWaited: 2 * time.Second},
			},
			want: trackerWant{at: 3 * time.Second, size: 1, releasing: []types.UID{"a"}, rejectedAt: 3 * time.Second, backingOff: true, backoffLeft: 10 * time.Second, reason: "second", waitingSince: never},
		},
		{
			name: "reject releases every reservation; its echoes release nothing",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", wantFirstWaiter: true}, {op: "reserve", uid: "b"}, {op: "reserve", uid: "c"},
				{op: "reject", reason: "first", at: 3 * time.Second, backoff: 5 * time.Second,
					wantReport: true, wantReleased: []types.UID{"a", "b", "c"}, wantWaited: 3 * time.Second},
				{op: "reject", reason: "echo", at: 4 * time.Second, backoff: 5 * time.Second},
			},
			// The first rejection's time, backoff and reason stand.
			want: trackerWant{at: 4 * time.Second, size: 1, releasing: []types.UID{"a", "b", "c"}, rejectedAt: 3 * time.Second, backingOff: true, backoffLeft: 4 * time.Second, reason: "first", waitingSince: never},
		},
		{
			// The sequence Unreserve runs: unreserve, reject if current,
			// forgetReleased.
			name: "unreserve tells the current attempt's members from released ones",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "reserve", uid: "b"},
				{op: "unreserve", uid: "a", wantCurrent: true},
				{op: "reject", backoff: 5 * time.Second, wantReport: true, wantReleased: []types.UID{"a", "b"}},
				{op: "forgetReleased", uid: "a"},
				{op: "unreserve", uid: "b"},
				{op: "forgetReleased", uid: "b"},
			},
			want: trackerWant{size: 1, rejectedAt: 0, backingOff: true, backoffLeft: 5 * time.Second, reason: "reason", waitingSince: never},
		},
		{
			name: "a released member that reserves again joins the new attempt",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "reserve", uid: "b"},
				{op: "reject", backoff: 5 * time.Second, wantReport: true, wantReleased: []types.UID{"a", "b"}},
				{op: "reserve", uid: "a", at: 5 * time.Second},
				{op: "unreserve", uid: "a", at: 5 * time.Second, wantCurrent: true},
			},
			want: trackerWant{at: 5 * time.Second, size: 1, reserved: []types.UID{"a"}, releasing: []types.UID{"b"}, rejectedAt: 0, waitingSince: never},
		},
		{
			// Regression: Unreserves after the PodGroup was deleted used to
			// re-create the group.
			name: "unreserve, forgetReleased and settled of an unknown group create nothing",
			steps: []trackerStep{
				{op: "unreserve", uid: "a"},
				{op: "forgetReleased", uid: "a"},
				{op: "settled", uid: "a"},
			},
			want: trackerWant{rejectedAt: never, waitingSince: never},
		},
		{
			name: "settled drops a reservation; the wait goes on for the others",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", wantFirstWaiter: true}, {op: "reserve", uid: "b"},
				{op: "settled", uid: "a"},
			},
			want: trackerWant{size: 1, reserved: []types.UID{"b"}, rejectedAt: never, waitingSince: 0},
		},
		{
			name: "settled of the last reservation ends the wait and drops the idle group",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", wantFirstWaiter: true}, {op: "reserve", uid: "b"},
				{op: "settled", uid: "a"}, {op: "settled", uid: "b"},
			},
			want: trackerWant{rejectedAt: never, waitingSince: never},
		},
		{
			name: "settled of the last reservation ends the wait of a group kept for its rejection",
			steps: []trackerStep{
				{op: "reject", wantReport: true},
				{op: "reserve", uid: "a", at: time.Second}, {op: "wait", at: time.Second, wantFirstWaiter: true},
				{op: "settled", uid: "a", at: 2 * time.Second},
			},
			want: trackerWant{at: 2 * time.Second, size: 1, rejectedAt: 0, waitingSince: never},
		},
		{
			name: "settled drops a released member too",
			steps: []trackerStep{
				{op: "reserve", uid: "a"},
				{op: "reject", backoff: time.Second, wantReport: true, wantReleased: []types.UID{"a"}},
				{op: "settled", uid: "a", at: 2 * time.Second},
			},
			want: trackerWant{at: 2 * time.Second, size: 1, rejectedAt: 0, waitingSince: never},
		},
		{
			name: "admission clears the wait, the rejection and the backoff",
			steps: []trackerStep{
				{op: "reject", backoff: 10 * time.Second, wantReport: true},
				{op: "reserve", uid: "a", at: 2 * time.Second}, {op: "wait", at: 2 * time.Second, wantFirstWaiter: true},
				{op: "reserve", uid: "b", at: 3 * time.Second},
				{op: "admitted", at: 5 * time.Second, wantWaited: 3 * time.Second},
			},
			want: trackerWant{at: 5 * time.Second, size: 1, reserved: []types.UID{"a", "b"}, rejectedAt: never, waitingSince: never},
		},
		{
			name: "admitted and settled: the idle group is dropped",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", wantFirstWaiter: true}, {op: "reserve", uid: "b"},
				{op: "admitted", at: time.Second, wantWaited: time.Second},
				{op: "settled", uid: "a", at: 2 * time.Second},
				{op: "settled", uid: "b", at: 2 * time.Second},
			},
			want: trackerWant{at: 2 * time.Second, rejectedAt: never, waitingSince: never},
		},
		{
			name: "admission of an unknown group waited nothing and tracks nothing",
			steps: []trackerStep{
				{op: "admitted", at: 5 * time.Second},
			},
			want: trackerWant{at: 5 * time.Second, rejectedAt: never, waitingSince: never},
		},
		{
			// Regression: bound() did not end a failed attempt, so the
			// group's next rejection was neither reported nor backed off.
			name: "a failed attempt ends when its last member is bound: the next rejection is reported",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "reserve", uid: "b"},
				{op: "admitted"},
				// a's binding fails: Unreserve. A rejection then releases
				// nobody: b is past Permit, binding.
				{op: "unreserve", uid: "a", wantCurrent: true},
				{op: "reject", reason: "a failed", backoff: 5 * time.Second, wantReport: true},
				{op: "forgetReleased", uid: "a"},
				// b binds; the pod cache shows it.
				{op: "settled", uid: "b", at: time.Second},
				// Later the group is turned away at PreFilter.
				{op: "reject", reason: "does not fit", at: time.Minute, backoff: 5 * time.Second, wantReport: true},
			},
			want: trackerWant{at: time.Minute, size: 1, rejectedAt: time.Minute, backingOff: true, backoffLeft: 5 * time.Second, reason: "does not fit", waitingSince: never},
		},
		{
			name: "backoff ends exactly at its deadline",
			steps: []trackerStep{
				{op: "reject", backoff: 5 * time.Second, wantReport: true},
			},
			want: trackerWant{at: 5 * time.Second, size: 1, rejectedAt: 0, waitingSince: never},
		},
		{
			name: "backoff disabled: every rejection is reported",
			steps: []trackerStep{
				{op: "reject", reason: "first", wantReport: true},
				{op: "reject", reason: "second", wantReport: true},
			},
			want: trackerWant{size: 1, rejectedAt: 0, waitingSince: never},
		},
		{
			name: "forget returns the current reservations and drops the group",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "reserve", uid: "b"},
				{op: "reject", backoff: time.Minute, wantReport: true, wantReleased: []types.UID{"a", "b"}},
				{op: "reserve", uid: "c"},
				{op: "forget", wantForgotten: []types.UID{"c"}},
				{op: "forget"},
			},
			want: trackerWant{rejectedAt: never, waitingSince: never},
		},
		{
			name: "one requeue timer per backoff",
			steps: []trackerStep{
				{op: "reject", backoff: 5 * time.Second, wantReport: true},
				{op: "schedule", at: time.Second, wantScheduled: true, wantDelay: 4 * time.Second},
				{op: "schedule", at: 2 * time.Second},
			},
			want: trackerWant{at: 2 * time.Second, size: 1, rejectedAt: 0, backingOff: true, backoffLeft: 3 * time.Second, reason: "reason", waitingSince: never, activation: true},
		},
		{
			name: "the timer's end frees the claim; a late claim fires at once",
			steps: []trackerStep{
				{op: "reject", backoff: 5 * time.Second, wantReport: true},
				{op: "schedule", at: time.Second, wantScheduled: true, wantDelay: 4 * time.Second},
				{op: "activationDone", at: 5 * time.Second},
				{op: "schedule", at: 6 * time.Second, wantScheduled: true, wantDelay: 0},
			},
			want: trackerWant{at: 6 * time.Second, size: 1, rejectedAt: 0, waitingSince: never, activation: true},
		},
		{
			name: "no timer for an unknown group",
			steps: []trackerStep{
				{op: "schedule"},
				{op: "activationDone"},
			},
			want: trackerWant{rejectedAt: never, waitingSince: never},
		},
		{
			name: "a pending timer keeps an admitted, settled group",
			steps: []trackerStep{
				{op: "reserve", uid: "a"},
				{op: "schedule", wantScheduled: true},
				{op: "admitted"},
				{op: "settled", uid: "a"},
			},
			want: trackerWant{size: 1, rejectedAt: never, waitingSince: never, activation: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newGroupTracker()
			for i, s := range tt.steps {
				now := baseTime.Add(s.at)
				switch s.op {
				case "reserve":
					tr.reserve(testKey, s.uid, "node1", now)
				case "unreserve":
					if got := tr.unreserve(testKey, s.uid); got != s.wantCurrent {
						t.Errorf("step %d (unreserve %s): current %v, want %v", i, s.uid, got, s.wantCurrent)
					}
				case "forgetReleased":
					tr.forgetReleased(testKey, s.uid)
				case "settled":
					tr.settled(testKey, s.uid)
				case "wait":
					if got := startWaiting(tr, testKey, now); got != s.wantFirstWaiter {
						t.Errorf("step %d (wait): first waiter %v, want %v", i, got, s.wantFirstWaiter)
					}
				case "admitted":
					if _, got := tr.admitAll(testKey, now); got != s.wantWaited {
						t.Errorf("step %d (admitted): waited %v, want %v", i, got, s.wantWaited)
					}
				case "reject":
					reason := s.reason
					if reason == "" {
						reason = "reason"
					}
					r := tr.reject(testKey, reason, phaseBackingOff, now, s.backoff)
					slices.Sort(r.released)
					if r.report != s.wantReport {
						t.Errorf("step %d (reject): report %v, want %v", i, r.report, s.wantReport)
					}
					if diff := cmp.Diff(s.wantReleased, r.released); diff != "" {
						t.Errorf("step %d (reject): released (-want +got):\n%s", i, diff)
					}
					if r.waited != s.wantWaited {
						t.Errorf("step %d (reject): waited %v, want %v", i, r.waited, s.wantWaited)
					}
				case "forget":
					got := tr.forget(testKey)
					slices.Sort(got)
					if len(got) == 0 {
						got = nil
					}
					if diff := cmp.Diff(s.wantForgotten, got); diff != "" {
						t.Errorf("step %d (forget): (-want +got):\n%s", i, diff)
					}
				case "schedule":
					delay, ok := tr.scheduleActivation(testKey, now)
					if ok != s.wantScheduled || delay != s.wantDelay {
						t.Errorf("step %d (schedule): got (%v, %v), want (%v, %v)", i, delay, ok, s.wantDelay, s.wantScheduled)
					}
				case "activationDone":
					tr.activationDone(testKey)
				default:
					t.Fatalf("unknown op %q", s.op)
				}
			}
			w := tt.want
			now := baseTime.Add(w.at)
			if got := tr.size(); got != w.size {
				t.Errorf("size: got %d, want %d", got, w.size)
			}
			if got := tr.reservedCount(testKey); got != len(w.reserved) {
				t.Errorf("reservedCount: got %d, want %d", got, len(w.reserved))
			}
			if diff := cmp.Diff(w.reserved, reservedUIDs(tr, testKey)); diff != "" {
				t.Errorf("reserved (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(w.releasing, releasing(tr, testKey)); diff != "" {
				t.Errorf("releasing (-want +got):\n%s", diff)
			}
			checkTime(t, "rejectedAt", tr.rejectedAt(testKey), w.rejectedAt)
			checkTime(t, "waitingSince", tr.waitingSince(testKey), w.waitingSince)
			reason, left, ok := tr.backingOff(testKey, now)
			if ok != w.backingOff || left != w.backoffLeft || (ok && reason != w.reason) {
				t.Errorf("backingOff: got (%q, %v, %v), want (%q, %v, %v)", reason, left, ok, w.reason, w.backoffLeft, w.backingOff)
			}
			if got := activationPending(tr, testKey); got != w.activation {
				t.Errorf("activation pending: got %v, want %v", got, w.activation)
			}
		})
	}
}

func checkTime(t *testing.T, what string, got time.Time, want time.Duration) {
	t.Helper()
	if want < 0 {
		if !got.IsZero() {
			t.Errorf("%s: got %v, want zero", what, got)
		}
		return
	}
	if !got.Equal(baseTime.Add(want)) {
		t.Errorf("%s: got %v, want base+%v", what, got, want)
	}
}

// TestGroupTrackerReservedMembersIsACopy: callers may keep the map while the
// tracker changes.
func TestGroupTrackerReservedMembersIsACopy(t *testing.T) {
	tr := newGroupTracker()
	tr.reserve(testKey, "a", "node1", baseTime)
	got := tr.reservedMembers(testKey)
	tr.reserve(testKey, "b", "node2", baseTime)
	got["c"] = "node3"
	if diff := cmp.Diff(map[types.UID]string{"a": "node1", "c": "node3"}, got); diff != "" {
		t.Errorf("copy changed (-want +got):\n%s", diff)
	}
	if n := tr.reservedCount(testKey); n != 2 {
		t.Errorf("reservedCount: got %d, want 2", n)
	}
	if tr.reservedMembers("ns/unknown") != nil {
		t.Errorf("unknown group: want nil")
	}
}

// TestGroupTrackerGroupsAreSeparate: one group's calls leave another alone.
func TestGroupTrackerGroupsAreSeparate(t *testing.T) {
	tr := newGroupTracker()
	tr.reserve("ns/a", "a1", "node1", baseTime)
	tr.reserve("ns/b", "b1", "node1", baseTime)
	r := tr.reject("ns/a", "failed", phaseBackingOff, baseTime, time.Minute)
	if diff := cmp.Diff([]types.UID{"a1"}, r.released); diff != "" {
		t.Errorf("released (-want +got):\n%s", diff)
	}
	if n := tr.reservedCount("ns/b"); n != 1 {
		t.Errorf("ns/b reservations: got %d, want 1", n)
	}
	if _, _, ok := tr.backingOff("ns/b", baseTime); ok {
		t.Errorf("ns/b backs off after ns/a's rejection")
	}
	if tr.unreserve("ns/b", "a1") {
		t.Errorf("a1 counted as a member of ns/b")
	}
	if got := tr.forget("ns/b"); len(got) != 1 || got[0] != "b1" {
		t.Errorf("forget ns/b: got %v, want [b1]", got)
	}
	if n := tr.size(); n != 1 {
		t.Errorf("tracked groups: got %d, want 1 (ns/a)", n)
	}
}

// TestGroupTrackerConcurrent drives the tracker from many goroutines, as the
// scheduling cycle, binding cycles, informer handlers, timers and the
// queue's Less do; run it with -race.
func TestGroupTrackerConcurrent(t *testing.T) {
	tr := newGroupTracker()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			key := fmt.Sprintf("ns/g%d", g%2)
			for i := range 200 {
				uid := types.UID(fmt.Sprintf("m%d-%d", g, i))
				now := baseTime.Add(time.Duration(i) * time.Millisecond)
				tr.memberSeen(key, &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}})
				tr.reserve(key, uid, "node1", now)
				tr.permit(key, uid, nil, 2, now, time.Minute)
				_ = tr.reservedMembers(key)
				_ = tr.rejectedAt(key)
				_, _, _ = tr.backingOff(key, now)
				switch i % 4 {
				case 0:
					if tr.unreserve(key, uid) {
						tr.reject(key, "failed", phaseBackingOff, now, time.Millisecond)
					}
					tr.unreserved(key, uid)
				case 1:
					tr.admitAll(key, now)
					tr.settled(key, uid)
				case 2:
					if _, ok := tr.scheduleActivation(key, now); ok {
						tr.activationDone(key)
					}
					tr.settled(key, uid)
				case 3:
					tr.reject(key, "failed", phaseBackingOff, now, time.Millisecond)
					tr.settled(key, uid)
				}
			}
		})
	}
	wg.Wait()
	for _, key := range []string{"ns/g0", "ns/g1"} {
		if n := tr.reservedCount(key); n != 0 {
			t.Errorf("%s: %d reservations left", key, n)
		}
		if got := releasing(tr, key); len(got) != 0 {
			t.Errorf("%s: released members left: %v", key, got)
		}
	}
}

// startWaiting asks Permit about one reserved member with an unreachable
// quorum, which starts (or continues) the attempt's wait.
func startWaiting(tr *groupTracker, key string, now time.Time) bool {
	for uid := range tr.reservedMembers(key) {
		return tr.permit(key, uid, &memberSet{}, 1<<30, now, time.Minute).firstWaiter
	}
	return false
}

// TestBindFailureBackoff: attempts released after a bind failure back off
// longer each time in a row; the group running whole, or losing its pods,
// ends the streak, and the tracker keeps a group only while it has one.
func TestBindFailureBackoff(t *testing.T) {
	const base = time.Second
	tests := []struct {
		name string
		// failures bind failures in a row, then end is "", "ranWhole" or
		// "forgetHistory", then one more failure.
		failures int
		end      string
		want     []time.Duration
	}{
		{name: "doubles with each failure in a row up to the cap", failures: 5, want: []time.Duration{1 * base, 2 * base, 4 * base, 6 * base, 6 * base, 6 * base}},
		{name: "running whole starts over", failures: 3, end: "ranWhole", want: []time.Duration{1 * base, 2 * base, 4 * base, 1 * base}},
		{name: "no pods left starts over", failures: 2, end: "forgetHistory", want: []time.Duration{1 * base, 2 * base, 1 * base}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newGroupTracker()
			var got []time.Duration
			now := baseTime
			for i := 0; i < tc.failures; i++ {
				// Each attempt is admitted before its member fails.
				tr.reserve("g", "a", "n1", baseTime)
				tr.admitAll("g", now)
				tr.unreserved("g", "a")
				got = append(got, tr.bindFailed("g", "refused", now, base))
				if tr.size() != 1 {
					t.Fatalf("after failure %d the tracker holds %d groups, want 1: the streak must survive the admission", i+1, tr.size())
				}
				if reason, left, ok := tr.backingOff("g", now); !ok || reason != "refused" || left != got[i] {
					t.Fatalf("after failure %d backingOff = %q, %s, %v; want refused, %s, true", i+1, reason, left, ok, got[i])
				}
				now = now.Add(got[i])
			}
			switch tc.end {
			case "ranWhole":
				tr.admitAll("g", now)
				tr.ranWhole("g")
			case "forgetHistory":
				tr.forgetHistoryIfNoMembers("g")
			}
			if tc.end != "" && tr.size() != 0 {
				t.Errorf("after %s the tracker still holds the group", tc.end)
			}
			got = append(got, tr.bindFailed("g", "refused", now, base))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("backoffs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGroupPhases follows a group through the transitions of docs/design.md
// and checks the phase after each step.
func TestGroupPhases(t *testing.T) {
	type step struct {
		name string
		at   time.Duration
		do   func(tr *groupTracker, now time.Time)
		want groupPhase
	}
	reserve := func(uid types.UID) func(*groupTracker, time.Time) {
		return func(tr *groupTracker, now time.Time) { tr.reserve(testKey, uid, "node1", now) }
	}
	wait := func(tr *groupTracker, now time.Time) { startWaiting(tr, testKey, now) }
	admit := func(tr *groupTracker, now time.Time) { tr.admitAll(testKey, now) }
	reject := func(phase groupPhase) func(*groupTracker, time.Time) {
		return func(tr *groupTracker, now time.Time) { tr.reject(testKey, "failed", phase, now, time.Second) }
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "admitted and bound", steps: []step{
			{name: "first reservation", do: reserve("a"), want: phaseAttempting},
			{name: "first wait", do: wait, want: phaseWaiting},
			{name: "second reservation", do: reserve("b"), want: phaseWaiting},
			{name: "quorum", do: admit, want: phaseAdmitted},
			{name: "one bound", do: func(tr *groupTracker, _ time.Time) { tr.settled(testKey, "a") }, want: phaseAdmitted},
			{name: "all bound", do: func(tr *groupTracker, _ time.Time) { tr.settled(testKey, "b") }, want: phaseIdle},
		}},
		{name: "rejected, backs off, tries again", steps: []step{
			{do: reserve("a"), want: phaseAttempting},
			{do: wait, want: phaseWaiting},
			{name: "rejection", do: reject(phaseBackingOff), want: phaseBackingOff},
			{name: "released member unreserved", do: func(tr *groupTracker, _ time.Time) { tr.unreserved(testKey, "a") }, want: phaseBackingOff},
			{name: "backoff over", at: time.Second, want: phaseIdle},
			{name: "next attempt", at: time.Second, do: reserve("a"), want: phaseAttempting},
		}},
		{name: "no fit, room appears, recheck", steps: []step{
			{do: reject(phaseNoFitBackoff), want: phaseNoFitBackoff},
			{name: "room event", do: func(tr *groupTracker, now time.Time) { tr.roomMayHaveAppeared(testKey, now) }, want: phaseRoomAppeared},
			{name: "recheck taken", do: func(tr *groupTracker, now time.Time) {
				if !tr.takeRoomRecheck(testKey, now) {
					t.Error("no recheck to take")
				}
			}, want: phaseNoFitBackoff},
			{name: "it fits now", do: func(tr *groupTracker, _ time.Time) { tr.endBackoff(testKey) }, want: phaseIdle},
		}},
		{name: "an ordinary backoff ignores room events", steps: []step{
			{do: reject(phaseBackingOff), want: phaseBackingOff},
			{do: func(tr *groupTracker, now time.Time) { tr.roomMayHaveAppeared(testKey, now) }, want: phaseBackingOff},
		}},
		{name: "preempts, waits for victims", steps: []step{
			{do: reject(phaseNoFitBackoff), want: phaseNoFitBackoff},
			{name: "preemption", do: func(tr *groupTracker, now time.Time) {
				tr.startPreemption(testKey, []victimRef{{name: "v"}}, now, time.Minute)
			}, want: phaseAwaitingVictims},
			{name: "victim still there", do: func(tr *groupTracker, now time.Time) {
				tr.preemptionPending(testKey, now, func(victimRef) bool { return true })
			}, want: phaseAwaitingVictims},
			{name: "victim gone", do: func(tr *groupTracker, now time.Time) {
				tr.preemptionPending(testKey, now, func(victimRef) bool { return false })
			}, want: phaseIdle},
		}},
		{name: "an admitted member fails to bind", steps: []step{
			{do: reserve("a"), want: phaseAttempting},
			{do: reserve("b"), want: phaseAttempting},
			{do: admit, want: phaseAdmitted},
			{name: "bind failure", do: func(tr *groupTracker, now time.Time) {
				if _, ok := tr.admittedSiblings(testKey, "a"); !ok {
					t.Error("a was not admitted")
				}
				tr.bindFailed(testKey, "bind failed", now, time.Second)
			}, want: phaseBackingOff},
		}},
		{name: "a member joins a running group", steps: []step{
			{do: reserve("joiner"), want: phaseAttempting},
			{name: "bound", do: func(tr *groupTracker, _ time.Time) { tr.settled(testKey, "joiner") }, want: phaseIdle},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newGroupTracker()
			for i, s := range tt.steps {
				now := baseTime.Add(s.at)
				if s.do != nil {
					s.do(tr, now)
				}
				if got := tr.phase(testKey, now); got != s.want {
					t.Errorf("step %d %s: phase %s, want %s", i, s.name, got, s.want)
				}
			}
		})
	}
}
