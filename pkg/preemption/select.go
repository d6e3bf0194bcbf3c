package preemption

import (
	"sort"
)

// Select finds the victims to take among candidates so that fits holds,
// keeping as many units as it can. It first checks that taking every
// candidate is enough (otherwise preemption cannot help and nothing is
// taken), then gives units back, the most important first, as long as fits
// still holds without them. fits must not depend on candidates' order.
func Select(candidates []*Unit, fits func(victims []*Unit) bool) ([]*Unit, bool) {
	victims := append([]*Unit(nil), candidates...)
	sort.Slice(victims, func(i, j int) bool { return LessImportant(victims[j], victims[i]) })
	if !fits(victims) {
		return nil, false
	}
	// victims is sorted most important first: reprieve in that order.
	for i := 0; i < len(victims); {
		without := make([]*Unit, 0, len(victims)-1)
		without = append(without, victims[:i]...)
		without = append(without, victims[i+1:]...)
		if fits(without) {
			victims = without
			continue
		}
		i++
	}
	sort.Slice(victims, func(i, j int) bool { return LessImportant(victims[i], victims[j]) })
	return victims, true
}

// Cost is what a set of victims costs, compared in field order: the highest
// priority taken, then how many gangs are broken up, then how many pods go.
type Cost struct {
	TopPriority int32
	Gangs       int
	Pods        int
}

// CostOf sums up victims.
func CostOf(victims []*Unit) Cost {
	var c Cost
	for i, u := range victims {
		if i == 0 || u.Priority > c.TopPriority {
			c.TopPriority = u.Priority
		}
		if u.IsGang() {
			c.Gangs++
		}
		c.Pods += len(u.Pods)
	}
	return c
}

// Less reports whether c is cheaper than o.
func (c Cost) Less(o Cost) bool {
	if c.TopPriority != o.TopPriority {
		return c.TopPriority < o.TopPriority
	}
	if c.Gangs != o.Gangs {
		return c.Gangs < o.Gangs
	}
	return c.Pods < o.Pods
}
