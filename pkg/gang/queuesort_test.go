package gang

import (
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

func queued(t *testing.T, pod *v1.Pod, ts time.Time) *framework.QueuedPodInfo {
	t.Helper()
	pi, err := framework.NewPodInfo(pod)
	if err != nil {
		t.Fatal(err)
	}
	return &framework.QueuedPodInfo{PodInfo: pi, QueueingParams: framework.QueueingParams{Timestamp: ts}}
}

func at(seconds int) time.Time { return baseTime.Add(time.Duration(seconds) * time.Second) }

func TestLess(t *testing.T) {
	// "old" was created at +0s, "new" at +10s; "gone" has no PodGroup.
	oldMember := func(name string) *v1.Pod { return member(name, "old").Obj() }
	newMember := func(name string) *v1.Pod { return member(name, "new").Obj() }
	tests := []struct {
		name string
		// rejected sets groups' last rejection times before comparing.
		rejected map[string]time.Time
		// admitted groups were admitted after their rejection.
		admitted []string
		a, b     *v1.Pod
		aTS, bTS time.Time
		want     bool
	}{
		{
			name: "higher priority first even for a younger plain pod",
			a:    plain("p").Priority(100).Obj(), aTS: at(50),
			b: member("o", "old").Priority(10).Obj(), bTS: at(0),
			want: true,
		},
		{
			name: "lower priority second even for an older group",
			a:    member("o", "old").Priority(10).Obj(), aTS: at(0),
			b: plain("p").Priority(100).Obj(), bTS: at(50),
			want: false,
		},
		{
			name: "older group first although its member was queued later",
			a:    oldMember("o"), aTS: at(40),
			b: newMember("n"), bTS: at(11),
			want: true,
		},
		{
			name: "younger group second although its member was queued earlier",
			a:    newMember("n"), aTS: at(11),
			b: oldMember("o"), bTS: at(40),
			want: false,
		},
		{
			name:     "a group rejected after the other's creation goes behind it",
			rejected: map[string]time.Time{"ns/old": at(20)},
			a:        oldMember("o"), aTS: at(0),
			b: newMember("n"), bTS: at(11),
			want: false,
		},
		{
			name:     "an admission puts a rejected group back at its creation time",
			rejected: map[string]time.Time{"ns/old": at(20)},
			admitted: []string{"ns/old"},
			a:        oldMember("o"), aTS: at(0),
			b: newMember("n"), bTS: at(11),
			want: true,
		},
		{
			name:     "a rejection older than the group's creation does not move it",
			rejected: map[string]time.Time{"ns/new": at(5)},
			a:        oldMember("o"), aTS: at(30),
			b: newMember("n"), bTS: at(11),
			want: true,
		},
		{
			name: "plain pod queued before the group's creation goes first",
			a:    plain("p").Obj(), aTS: at(-1),
			b: oldMember("o"), bTS: at(-5),
			want: true,
		},
		{
			name: "plain pod queued after the group's creation goes second",
			a:    plain("p").Obj(), aTS: at(1),
			b: oldMember("o"), bTS: at(30),
			want: false,
		},
		{
			name: "plain pod queued at the group's creation: the empty key sorts first",
			a:    plain("p").Obj(), aTS: at(0),
			b: oldMember("o"), bTS: at(-30),
			want: true,
		},
		{
			name: "members of one group by queue time: earlier first",
			a:    oldMember("o1"), aTS: at(3),
			b: oldMember("o2"), bTS: at(4),
			want: true,
		},
		{
			name: "members of one group by queue time: later second",
			a:    oldMember("o1"), aTS: at(4),
			b: oldMember("o2"), bTS: at(3),
			want: false,
		},
		{
			name: "member of a missing PodGroup uses its pod's creation time",
			a:    member("g", "gone").CreationTimestamp(metav1.NewTime(at(-5))).Obj(), aTS: at(100),
			b: oldMember("o"), bTS: at(1),
			want: true,
		},
		{
			name: "identical entries are not less than each other",
			a:    oldMember("o"), aTS: at(3),
			b: oldMember("o"), bTS: at(3),
			want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(makePG("old", 2), makePG("new", 2, createdAt(at(10))))
			for key, when := range tt.rejected {
				e.pl.groups.reject(key, "test", phaseBackingOff, when, time.Second)
			}
			for _, key := range tt.admitted {
				e.pl.groups.admitAll(key, at(30))
			}
			if got := e.queueSort().Less(queued(t, tt.a, tt.aTS), queued(t, tt.b, tt.bTS)); got != tt.want {
				t.Errorf("Less(a, b) = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLessKeepsGroupsTogether sorts a mixed queue: members of a group come
// out back to back whatever their queue times.
func TestLessKeepsGroupsTogether(t *testing.T) {
	e := newTestEnv(t)
	// x and y were created at the same time; the key breaks the tie.
	e.addPodGroups(makePG("x", 2), makePG("y", 2), makePG("late", 2, createdAt(at(60))))
	entries := []*framework.QueuedPodInfo{
		queued(t, member("y-late", "y").Obj(), at(7)),
		queued(t, plain("after").Obj(), at(1)),
		queued(t, member("x-late", "x").Obj(), at(9)),
		queued(t, member("late-1", "late").Obj(), at(61)),
		queued(t, plain("before").Obj(), at(-1)),
		queued(t, member("y-early", "y").Obj(), at(3)),
		queued(t, plain("urgent").Priority(1000).Obj(), at(100)),
		queued(t, member("x-early", "x").Obj(), at(5)),
		queued(t, plain("between").Obj(), at(30)),
	}
	sort.SliceStable(entries, func(i, j int) bool { return e.queueSort().Less(entries[i], entries[j]) })
	var got []string
	for _, qpi := range entries {
		got = append(got, qpi.Pod.Name)
	}
	want := []string{"urgent", "before", "x-early", "x-late", "y-early", "y-late", "after", "between", "late-1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queue order (-want +got):\n%s", diff)
	}
	// A strict weak order never says both a<b and b<a.
	for _, a := range entries {
		for _, b := range entries {
			if e.queueSort().Less(a, b) && e.queueSort().Less(b, a) {
				t.Errorf("Less(%s, %s) and Less(%s, %s) both hold", a.Pod.Name, b.Pod.Name, b.Pod.Name, a.Pod.Name)
			}
		}
	}
}

// queueSort is the queue-order plugin over the test plugin's PodGroups and
// group memory, as the scheduler's shared state wires them.
func (e *testEnv) queueSort() *QueueSort {
	return &QueueSort{podGroups: e.pl.podGroups, groups: e.pl.groups}
}
