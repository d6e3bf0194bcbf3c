package preemption

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/cosched/cosched/pkg/podgroup"
)

var t0 = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

func pod(name string, priority int32) *st.PodWrapper {
	return st.MakePod().Namespace("ns").Name(name).UID(name).Priority(priority).Node("n1")
}

func gangPod(name, group string, priority int32) *st.PodWrapper {
	return pod(name, priority).Label(podgroup.Label, group)
}

func started(w *st.PodWrapper, at time.Time) *v1.Pod {
	p := w.Obj()
	p.Status.StartTime = &metav1.Time{Time: at}
	return p
}

func TestUnitsOf(t *testing.T) {
	pods := []*v1.Pod{
		started(gangPod("a-0", "a", 5), t0.Add(time.Minute)),
		started(gangPod("a-1", "a", 7), t0),
		pod("plain", 1).Obj(),
		gangPod("b-0", "b", 2).Obj(),
	}
	type unit struct {
		Key      string
		Group    string
		Pods     int
		Priority int32
		Started  time.Time
	}
	var got []unit
	for _, u := range UnitsOf(pods) {
		got = append(got, unit{u.Key, u.Group, len(u.Pods), u.Priority, u.Started})
	}
	want := []unit{
		{Key: "group:ns/a", Group: "ns/a", Pods: 2, Priority: 7, Started: t0},
		{Key: "group:ns/b", Group: "ns/b", Pods: 1, Priority: 2},
		{Key: "ns/plain", Pods: 1, Priority: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("units (-want +got):\n%s", diff)
	}
}

func unit(key string, priority int32, gang bool, pods int, start time.Time) *Unit {
	u := &Unit{Key: key, Priority: priority, Started: start}
	if gang {
		u.Group = key
	}
	for i := 0; i < pods; i++ {
		u.Pods = append(u.Pods, pod(key, priority).Obj())
	}
	return u
}

func TestLessImportant(t *testing.T) {
	tests := []struct {
		name string
		a, b *Unit
		want bool
	}{
		{"lower priority first", unit("x", 1, true, 5, t0), unit("y", 2, false, 1, t0), true},
		{"higher priority later", unit("x", 3, false, 1, t0), unit("y", 2, true, 5, t0), false},
		{"plain pod before gang at equal priority", unit("x", 1, false, 3, t0), unit("y", 1, true, 1, t0), true},
		{"gang after plain pod", unit("x", 1, true, 1, t0), unit("y", 1, false, 3, t0), false},
		{"fewer pods first", unit("x", 1, true, 2, t0), unit("y", 1, true, 3, t0), true},
		{"younger first", unit("x", 1, false, 1, t0.Add(time.Hour)), unit("y", 1, false, 1, t0), true},
		{"not started before started", unit("x", 1, false, 1, time.Time{}), unit("y", 1, false, 1, t0), true},
		{"started after not started", unit("x", 1, false, 1, t0), unit("y", 1, false, 1, time.Time{}), false},
		{"key breaks ties", unit("x", 1, false, 1, t0), unit("y", 1, false, 1, t0), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := LessImportant(tc.a, tc.b); got != tc.want {
				t.Errorf("LessImportant = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEligible(t *testing.T) {
	now := metav1.Now()
	terminating := unit("t", 1, false, 1, t0)
	terminating.Pods[0].DeletionTimestamp = &now
	tests := []struct {
		name string
		u    *Unit
		prio int32
		want bool
	}{
		{"lower priority", unit("x", 1, false, 1, t0), 2, true},
		{"equal priority never", unit("x", 2, true, 1, t0), 2, false},
		{"higher priority never", unit("x", 3, false, 1, t0), 2, false},
		{"terminating never", terminating, 5, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Eligible(tc.u, tc.prio); got != tc.want {
				t.Errorf("Eligible = %v, want %v", got, tc.want)
			}
		})
	}
}
