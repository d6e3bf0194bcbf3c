package preemption

import (
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
)

// Gang preemption's search: a group that cannot be placed looks, domain by
// domain (the whole cluster when it asks for no topology), for the cheapest
// set of lower-priority units whose removal lets every member it needs fit
// at once. The search only decides; the gang plugin evicts and nominates.

// maxCandidateUnits bounds the units one domain's search considers, the
// least important first: each step of the search simulates the domain.
const maxCandidateUnits = 64

// Simulator is the cluster as the search tries it: pkg/simulation's, backed
// by the profile's plugins, in the scheduler; plain arithmetic in tests.
// Members and nodes are indices into Request.Members and Request.Nodes.
type Simulator interface {
	Fits(member, node int) bool
	Place(member, node int)
	// Remove takes a placed pod off its node; false if it cannot.
	Remove(pod *v1.Pod) bool
	Checkpoint() int
	// Revert undoes every Place and Remove since the checkpoint.
	Revert(checkpoint int)
}

// Request is one group's search for room.
type Request struct {
	// Group is the group's key: its own pods are never victims.
	Group string
	// Priority is the lowest among Members: only units below it are taken.
	Priority int32
	// Members are the pods to place, in the order they are placed.
	Members []*v1.Pod
	// Nodes is the cluster; the simulator's node i is Nodes[i].
	Nodes []fwk.NodeInfo
	// TopologyKey is the label all members must share a value of; "" makes
	// the cluster one domain.
	TopologyKey string
	// Budgets drops victims whose eviction would break a budget.
	Budgets *Budgets
	// Free are placed pods whose room counts as the group's (its own
	// reservations from the attempt that just failed).
	Free []*v1.Pod
	Sim  Simulator
}

// Choice is who to evict and where the members go then.
type Choice struct {
	// Domain is the topology value chosen, "" without a topology key.
	Domain  string
	Victims []*Unit
	Cost    Cost
	// Nodes maps each member to its node.
	Nodes map[types.UID]string
}

// Result is a Choice, or why there is none.
type Result struct {
	Choice *Choice
	// FitsNow says some domain holds the members without evicting anyone:
	// the cluster changed since the group was turned away.
	FitsNow bool
	// WhyNot explains a missing Choice when the members do not fit now.
	WhyNot string
}

// SearchRoom finds the cheapest victims, in any one domain, that make room
// for every member. It leaves the simulator as it found it.
func SearchRoom(req Request) Result {
	candidates := candidatesOf(req)
	if len(candidates) == 0 {
		return Result{WhyNot: fmt.Sprintf("no pods or gangs of priority below %d that may be evicted", req.Priority)}
	}
	noRoom := Result{WhyNot: fmt.Sprintf("evicting lower-priority pods and gangs cannot make room for %d member(s)%s",
		len(req.Members), domainNote(req.TopologyKey))}
	defer req.Sim.Revert(req.Sim.Checkpoint())
	for _, p := range req.Free {
		if !req.Sim.Remove(p) {
			return noRoom
		}
	}
	var best *Choice
	fitsNow := false
	for _, d := range domainsOf(req.Nodes, req.TopologyKey) {
		victims, ok := selectIn(req, d, candidates)
		if ok && len(victims) == 0 {
			fitsNow = true
			continue
		}
		if !ok || req.Budgets.Violation(victims) != "" {
			continue
		}
		c := &Choice{Domain: d.value, Victims: victims, Cost: CostOf(victims)}
		if best == nil || c.Cost.Less(best.Cost) {
			if c.Nodes = planWithout(req, d, victims); c.Nodes != nil {
				best = c
			}
		}
	}
	switch {
	case best != nil:
		return Result{Choice: best}
	case fitsNow:
		return Result{FitsNow: true}
	}
	return noRoom
}

// candidatesOf returns the placed units the group may take, each within
// the budgets on its own.
func candidatesOf(req Request) []*Unit {
	var placed []*v1.Pod
	for _, ni := range req.Nodes {
		for _, pi := range ni.GetPods() {
			placed = append(placed, pi.GetPod())
		}
	}
	var out []*Unit
	for _, u := range UnitsOf(placed) {
		if u.Group != req.Group && Eligible(u, req.Priority) && req.Budgets.Violation([]*Unit{u}) == "" {
			out = append(out, u)
		}
	}
	return out
}

// selectIn chooses the fewest, cheapest victims among the candidates with a
// pod in d; ok is false when none or all of them are not enough.
func selectIn(req Request, d domain, candidates []*Unit) ([]*Unit, bool) {
	var here []*Unit
	for _, u := range candidates {
		if d.holds(u) {
			here = append(here, u)
		}
	}
	if len(here) == 0 {
		return nil, false
	}
	if len(here) > maxCandidateUnits {
		sort.Slice(here, func(i, j int) bool { return LessImportant(here[i], here[j]) })
		here = here[:maxCandidateUnits]
	}
	return Select(here, func(v []*Unit) bool { return planWithout(req, d, v) != nil })
}

// planWithout places every member in d, in order, each on the first node
// that takes it once victims are gone; nil when one fits nowhere.
func planWithout(req Request, d domain, victims []*Unit) map[types.UID]string {
	sim := req.Sim
	defer sim.Revert(sim.Checkpoint())
	for _, u := range victims {
		for _, p := range u.Pods {
			if !sim.Remove(p) {
				return nil
			}
		}
	}
	plan := make(map[types.UID]string, len(req.Members))
	for m, member := range req.Members {
		n := firstFit(sim, m, d.nodes)
		if n < 0 {
			return nil
		}
		sim.Place(m, n)
		plan[member.UID] = req.Nodes[n].Node().Name
	}
	return plan
}

func firstFit(sim Simulator, m int, nodes []int) int {
	for _, n := range nodes {
		if sim.Fits(m, n) {
			return n
		}
	}
	return -1
}
