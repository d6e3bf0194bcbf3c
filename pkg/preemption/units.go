// Package preemption makes preemption gang-aware: a gang is taken or left as
// a whole, never split, and a gang that needs room preempts for all the
// members its quorum needs at once.
//
// It holds the rules shared by both kinds of preemptor (victim units, their
// order, the choice of the fewest and cheapest victims, PodDisruptionBudget
// budgets and eviction), gang preemption's search for room (SearchRoom) and
// the CoschedPreemption plugin, which replaces DefaultPreemption for pods
// outside pending gangs. Pending gangs preempt through CoschedGang, which
// knows the group and asks SearchRoom.
package preemption

import (
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Unit is what preemption takes or leaves as a whole: one plain pod, or
// every placed pod (bound or waiting at Permit) of one gang.
type Unit struct {
	// Key identifies the unit: the gang's key, or the pod's namespace/name.
	Key string
	// Group is the gang's key, "" for a plain pod.
	Group string
	Pods  []*v1.Pod
	// Priority is the highest priority among Pods: a gang is as important
	// as its most important member.
	Priority int32
	// Started is the earliest start time among Pods (zero if none started).
	Started time.Time
}

// IsGang reports whether the unit is a gang.
func (u *Unit) IsGang() bool { return u.Group != "" }

// Terminating reports whether any of the unit's pods is already going away;
// such a unit is neither a victim again nor counted on to stay.
func (u *Unit) Terminating() bool {
	for _, p := range u.Pods {
		if p.DeletionTimestamp != nil {
			return true
		}
	}
	return false
}

// UnitsOf groups placed pods into units: pods labelled with a group form one
// unit per group, every other pod is a unit of its own. The result is sorted
// by key.
func UnitsOf(pods []*v1.Pod) []*Unit {
	byKey := map[string]*Unit{}
	for _, pod := range pods {
		key, group := pod.Namespace+"/"+pod.Name, podgroup.KeyOf(pod)
		if group != "" {
			key = "group:" + group
		}
		u, ok := byKey[key]
		if !ok {
			u = &Unit{Key: key, Group: group, Priority: corev1helpers.PodPriority(pod)}
			byKey[key] = u
		}
		u.add(pod)
	}
	units := make([]*Unit, 0, len(byKey))
	for _, u := range byKey {
		units = append(units, u)
	}
	sort.Slice(units, func(i, j int) bool { return units[i].Key < units[j].Key })
	return units
}

func (u *Unit) add(pod *v1.Pod) {
	u.Pods = append(u.Pods, pod)
	if p := corev1helpers.PodPriority(pod); p > u.Priority {
		u.Priority = p
	}
	if pod.Status.StartTime != nil {
		if t := pod.Status.StartTime.Time; u.Started.IsZero() || t.Before(u.Started) {
			u.Started = t
		}
	}
}

// LessImportant orders victims: a is evicted before b when it has the lower
// priority; at equal priority a plain pod goes before a gang, then the unit
// with fewer pods, then the one that started later (it loses less work).
func LessImportant(a, b *Unit) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if a.IsGang() != b.IsGang() {
		return !a.IsGang()
	}
	if len(a.Pods) != len(b.Pods) {
		return len(a.Pods) < len(b.Pods)
	}
	if !a.Started.Equal(b.Started) {
		// A unit that has not started loses the least work.
		if a.Started.IsZero() || b.Started.IsZero() {
			return a.Started.IsZero()
		}
		return a.Started.After(b.Started)
	}
	return a.Key < b.Key
}

// Eligible reports whether a preemptor of the given priority may take u.
// Equal priority never preempts, so two gangs of one priority never evict
// each other.
func Eligible(u *Unit, preemptorPriority int32) bool {
	return u.Priority < preemptorPriority && !u.Terminating()
}
