package gang

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
)

// trackerStep is one call on a groupTracker, at baseTime+at.
type trackerStep struct {
	op      string // reserve, unreserve, bound, reject, admitted, wait, forget
	uid     types.UID
	exclude types.UID
	at      time.Duration
	backoff time.Duration

	// For reject: the expected rejection.
	wantFirst   bool
	wantWaiting []types.UID
	// For reject and admitted: how long the attempt had waited.
	wantWaited time.Duration
	// For wait: whether it is the attempt's first waiter.
	wantFirstWaiter bool
	// For forget: the reservations returned.
	wantForgotten []types.UID
}

// trackerWant is the tracker's state after the steps, seen at baseTime+at.
type trackerWant struct {
	at           time.Duration
	size         int
	reserved     int
	rejectedAt   time.Duration // -1: zero
	backingOff   bool
	backoffLeft  time.Duration
	reason       string
	waitingSince time.Duration // -1: zero
}

func TestGroupTracker(t *testing.T) {
	const never = -1
	tests := []struct {
		name  string
		steps []trackerStep
		want  trackerWant
	}{
		{
			name:  "reservations are counted",
			steps: []trackerStep{{op: "reserve", uid: "a"}, {op: "reserve", uid: "b"}, {op: "reserve", uid: "a"}},
			want:  trackerWant{size: 1, reserved: 2, rejectedAt: never, waitingSince: never},
		},
		{
			name: "first waiter only once per attempt",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", at: time.Second, wantFirstWaiter: true},
				{op: "reserve", uid: "b"}, {op: "wait", at: 2 * time.Second},
			},
			want: trackerWant{size: 1, reserved: 2, rejectedAt: never, waitingSince: time.Second},
		},
		{
			name: "rejection without reservations is reported every time",
			steps: []trackerStep{
				{op: "reject", backoff: 5 * time.Second, wantFirst: true},
				{op: "reject", at: time.Second, backoff: 5 * time.Second, wantFirst: true},
			},
			want: trackerWant{at: time.Second, size: 1, rejectedAt: time.Second, backingOff: true, backoffLeft: 5 * time.Second, reason: "reason", waitingSince: never},
		},
		{
			name: "rejection with reservations is reported once per attempt",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", wantFirstWaiter: true}, {op: "reserve", uid: "b"}, {op: "reserve", uid: "c"},
				{op: "reject", exclude: "a", at: 3 * time.Second, backoff: 5 * time.Second, wantFirst: true, wantWaiting: []types.UID{"b", "c"}, wantWaited: 3 * time.Second},
				{op: "reject", exclude: "b", at: 4 * time.Second, backoff: 5 * time.Second, wantWaiting: []types.UID{"a", "c"}},
				{op: "unreserve", uid: "a", at: 4 * time.Second},
				{op: "reject", exclude: "c", at: 4 * time.Second, backoff: 5 * time.Second, wantWaiting: []types.UID{"b"}},
				{op: "unreserve", uid: "b", at: 4 * time.Second},
			},
			// The first rejection's time and backoff stand.
			want: trackerWant{at: 4 * time.Second, size: 1, reserved: 1, rejectedAt: 3 * time.Second, backingOff: true, backoffLeft: 4 * time.Second, reason: "reason", waitingSince: 0},
		},
		{
			name: "the last unreserve ends the failed attempt: the next rejection is reported",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", wantFirstWaiter: true},
				{op: "reject", exclude: "a", backoff: 5 * time.Second, wantFirst: true},
				{op: "unreserve", uid: "a"},
				{op: "reserve", uid: "a", at: 6 * time.Second}, {op: "wait", at: 6 * time.Second, wantFirstWaiter: true},
				{op: "reject", exclude: "a", at: 7 * time.Second, backoff: 5 * time.Second, wantFirst: true, wantWaited: time.Second},
			},
			want: trackerWant{at: 7 * time.Second, size: 1, reserved: 1, rejectedAt: 7 * time.Second, backingOff: true, backoffLeft: 5 * time.Second, reason: "reason", waitingSince: 6 * time.Second},
		},
		{
			name: "admission clears the rejection and the wait",
			steps: []trackerStep{
				{op: "reject", backoff: time.Second, wantFirst: true},
				{op: "reserve", uid: "a", at: 2 * time.Second}, {op: "wait", at: 2 * time.Second, wantFirstWaiter: true},
				{op: "reserve", uid: "b", at: 3 * time.Second},
				{op: "admitted", at: 5 * time.Second, wantWaited: 3 * time.Second},
			},
			want: trackerWant{at: 5 * time.Second, size: 1, reserved: 2, rejectedAt: never, waitingSince: never},
		},
		{
			name: "admission of an unknown group waited nothing",
			steps: []trackerStep{
				{op: "admitted", at: 5 * time.Second},
			},
			want: trackerWant{at: 5 * time.Second, rejectedAt: never, waitingSince: never},
		},
		{
			name: "admitted and bound: the idle group is dropped",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "wait", wantFirstWaiter: true}, {op: "reserve", uid: "b"},
				{op: "admitted", at: time.Second, wantWaited: time.Second},
				{op: "bound", uid: "a", at: 2 * time.Second},
				{op: "bound", uid: "b", at: 2 * time.Second},
			},
			want: trackerWant{at: 2 * time.Second, rejectedAt: never, waitingSince: never},
		},
		{
			name: "bound but one member still holds a reservation",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "reserve", uid: "b"},
				{op: "admitted"},
				{op: "bound", uid: "a"},
			},
			want: trackerWant{size: 1, reserved: 1, rejectedAt: never, waitingSince: never},
		},
		{
			// Admission does not clear backoffUntil: a later member finding
			// no reservation is told the group backs off, with no reason.
			name: "bound during a backoff: kept until the backoff ends",
			steps: []trackerStep{
				{op: "reject", backoff: 10 * time.Second, wantFirst: true},
				{op: "reserve", uid: "a", at: time.Second},
				{op: "admitted", at: time.Second},
				{op: "bound", uid: "a", at: 2 * time.Second},
			},
			want: trackerWant{at: 2 * time.Second, size: 1, rejectedAt: never, backingOff: true, backoffLeft: 8 * time.Second, waitingSince: never},
		},
		{
			name: "bound without admission keeps a rejected group",
			steps: []trackerStep{
				{op: "reserve", uid: "a"},
				{op: "reject", exclude: "x", backoff: time.Second, wantFirst: true, wantWaiting: []types.UID{"a"}},
				{op: "bound", uid: "a", at: 2 * time.Second},
			},
			want: trackerWant{at: 2 * time.Second, size: 1, rejectedAt: 0, reason: "reason", waitingSince: never},
		},
		{
			name: "unreserve of an unknown group is a no-op",
			steps: []trackerStep{
				{op: "unreserve", uid: "a"},
				{op: "bound", uid: "a"},
			},
			want: trackerWant{rejectedAt: never, waitingSince: never},
		},
		{
			name: "backoff ends exactly at its deadline",
			steps: []trackerStep{
				{op: "reject", backoff: 5 * time.Second, wantFirst: true},
			},
			want: trackerWant{at: 5 * time.Second, size: 1, rejectedAt: 0, reason: "", waitingSince: never},
		},
		{
			name: "forget returns the reservations and drops the group",
			steps: []trackerStep{
				{op: "reserve", uid: "a"}, {op: "reserve", uid: "b"},
				{op: "reject", backoff: time.Minute, wantFirst: true, wantWaiting: []types.UID{"a", "b"}},
				{op: "forget", wantForgotten: []types.UID{"a", "b"}},
				{op: "forget"},
			},
			want: trackerWant{rejectedAt: never, waitingSince: never},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newGroupTracker()
			for i, s := range tt.steps {
				now := baseTime.Add(s.at)
				switch s.op {
				case "reserve":
					tr.reserve(testKey, s.uid, "node1")
				case "unreserve":
					tr.unreserve(testKey, s.uid, now)
				case "bound":
					tr.bound(testKey, s.uid, now)
				case "wait":
					if got := tr.startWaiting(testKey, now); got != s.wantFirstWaiter {
						t.Errorf("step %d (wait): first waiter %v, want %v", i, got, s.wantFirstWaiter)
					}
				case "admitted":
					if got := tr.admitted(testKey, now); got != s.wantWaited {
						t.Errorf("step %d (admitted): waited %v, want %v", i, got, s.wantWaited)
					}
				case "reject":
					r := tr.reject(testKey, s.exclude, "reason", now, s.backoff)
					slices.Sort(r.waiting)
					if r.first != s.wantFirst {
						t.Errorf("step %d (reject): first %v, want %v", i, r.first, s.wantFirst)
					}
					if diff := cmp.Diff(s.wantWaiting, r.waiting); diff != "" {
						t.Errorf("step %d (reject): waiting (-want +got):\n%s", i, diff)
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
				default:
					t.Fatalf("unknown op %q", s.op)
				}
			}
			w := tt.want
			now := baseTime.Add(w.at)
			if got := tr.size(); got != w.size {
				t.Errorf("size: got %d, want %d", got, w.size)
			}
			if got := tr.reservedCount(testKey); got != w.reserved {
				t.Errorf("reservedCount: got %d, want %d", got, w.reserved)
			}
			if got := len(tr.reservedMembers(testKey)); got != w.reserved {
				t.Errorf("reservedMembers: got %d, want %d", got, w.reserved)
			}
			checkTime(t, "rejectedAt", tr.rejectedAt(testKey), w.rejectedAt)
			checkTime(t, "waitingSince", tr.waitingSince(testKey), w.waitingSince)
			reason, left, ok := tr.backingOff(testKey, now)
			if ok != w.backingOff || left != w.backoffLeft || (ok && reason != w.reason) {
				t.Errorf("backingOff: got (%q, %v, %v), want (%q, %v, %v)", reason, left, ok, w.reason, w.backoffLeft, w.backingOff)
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
	tr.reserve(testKey, "a", "node1")
	got := tr.reservedMembers(testKey)
	tr.reserve(testKey, "b", "node2")
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

// TestGroupTrackerBoundEndsFailedAttempt: an admitted group whose member
// failed to bind has a failed attempt (attemptFailed) while the others still
// hold reservations. When those others are bound rather than unreserved, the
// attempt is over too, and the group's next rejection must be reported (and
// start a backoff) like any first rejection.
func TestGroupTrackerBoundEndsFailedAttempt(t *testing.T) {
	tr := newGroupTracker()
	tr.reserve(testKey, "a", "node1")
	tr.reserve(testKey, "b", "node2")
	tr.admitted(testKey, baseTime)
	// a's binding fails: Unreserve rejects the group, then drops a.
	if r := tr.reject(testKey, "a", "member failed", baseTime, 5*time.Second); !r.first {
		t.Fatal("the failed binding should be reported")
	}
	tr.unreserve(testKey, "a", baseTime)
	// b binds.
	tr.bound(testKey, "b", baseTime.Add(time.Second))
	if n := tr.reservedCount(testKey); n != 0 {
		t.Fatalf("reservations left: %d", n)
	}
	// Later, a is retried and its group is turned away at PreFilter.
	later := baseTime.Add(time.Minute)
	r := tr.reject(testKey, "", "does not fit", later, 5*time.Second)
	if !r.first {
		t.Errorf("BUG: rejection after the failed attempt's last member was bound is not reported (attemptFailed survives bound)")
	}
	if _, _, ok := tr.backingOff(testKey, later); !ok {
		t.Errorf("BUG: that rejection starts no backoff")
	}
}
