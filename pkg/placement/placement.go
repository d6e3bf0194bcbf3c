// Package placement plans a whole group into one topology domain before any
// member reserves anything: pod-atomic placement.
//
// The planner knows nothing about the scheduler. It asks a Simulator, opened
// afresh for each candidate domain, whether a member fits a node given the
// members already planned there, and tells it where each member goes. The
// gang plugin backs the Simulator with the scheduler's own Filter plugins
// (pkg/simulation); tests back it with plain resource vectors.
package placement

import (
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/cosched/cosched/pkg/capacity"
)

// Member is one pod to place.
type Member struct {
	// ID names the member in the plan (the pod's UID in the scheduler).
	ID string
	// Request is what the member asks of a node.
	Request capacity.Vector
	// Shape groups members with identical requirements (requests, node
	// selection, affinity, tolerations, ports, volumes): members of one shape
	// share the simulator's per-shape work and one first-fit cursor.
	Shape int
}

// Node is one node of the cluster.
type Node struct {
	Name string
	// Free is the room left on the node before planning.
	Free capacity.Vector
}

// Domain is a set of nodes sharing one value of the topology key.
type Domain struct {
	// Value is the topology label's value, e.g. "rack-3" or a hostname.
	Value string
	// Nodes are indices into the node list given to Plan.
	Nodes []int
}

// Simulator answers feasibility questions for one candidate domain.
type Simulator interface {
	// Fits reports whether member may go on node, counting what Place put
	// on it so far.
	Fits(member, node int) bool
	// Place puts member on node for the rest of this domain's simulation.
	Place(member, node int)
}

// Plan is where the group goes.
type Plan struct {
	// Domain is the chosen topology value.
	Domain string
	// Nodes maps a member's ID to its node; members that did not fit (only
	// possible when fewer than all were needed) are absent.
	Nodes map[string]string
	// DomainNodes lists every node of the domain, for members that arrive
	// after planning.
	DomainNodes []string
	// Shortcut marks the plan of a group that shares no domain (the cluster
	// was the one domain): it only spares members their search, and a
	// member whose planned node no longer has room may go anywhere.
	Shortcut bool
}

// Input is one planning question.
type Input struct {
	Nodes   []Node
	Domains []Domain
	Members []Member
	// Need is how many members must fit (the quorum still to be placed).
	Need int
	// Open starts a fresh simulation of one domain.
	Open func(Domain) Simulator
}

// Result is a plan, or why there is none.
type Result struct {
	Plan *Plan
	// Reason explains a missing plan in words a person can act on.
	Reason string
	// Simulated counts domains that ran the full simulation; the rest were
	// ruled out by arithmetic alone.
	Simulated int
}

// Compute finds the tightest domain that holds at least Need members.
//
// The rule: domains whose free room, summed over their nodes, cannot hold
// the members are skipped without simulation. The rest are tried from the
// tightest, the one whose spare room after the group is smallest measured
// in multiples of the group's own request, so that big domains stay free
// for big groups; the first domain where the simulation places Need members
// wins. Ties go to the smaller domain value, so plans are deterministic.
func Compute(in Input) Result {
	if in.Need <= 0 || len(in.Members) == 0 {
		return Result{Reason: "nothing to place"}
	}
	order := orderMembers(in.Members)
	needed := requestOfSmallest(in.Members, in.Need)
	type candidate struct {
		domain Domain
		spare  float64
	}
	var candidates []candidate
	// fullest remembers the domain that came closest to the arithmetic
	// bound, to explain a failure.
	var fullest struct {
		domain  string
		missing v1.ResourceName
		free    int64
		ratio   float64
	}
	for _, d := range in.Domains {
		free := capacity.Vector{}
		for _, n := range d.Nodes {
			free = free.Add(in.Nodes[n].Free)
		}
		if missing := needed.Missing(free); missing != "" {
			ratio := float64(free.Get(missing)) / float64(max(needed.Get(missing), 1))
			if fullest.domain == "" || ratio > fullest.ratio {
				fullest.domain, fullest.missing, fullest.free, fullest.ratio = d.Value, missing, free.Get(missing), ratio
			}
			continue
		}
		candidates = append(candidates, candidate{domain: d, spare: spareRatio(free, needed)})
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		if candidates[i].spare != candidates[j].spare {
			return candidates[i].spare < candidates[j].spare
		}
		return candidates[i].domain.Value < candidates[j].domain.Value
	})
	res := Result{}
	bestFit, bestFitDomain := -1, ""
	for _, c := range candidates {
		res.Simulated++
		nodes := tryDomain(in, c.domain, order)
		if len(nodes) >= in.Need {
			plan := &Plan{Domain: c.domain.Value, Nodes: nodes}
			for _, n := range c.domain.Nodes {
				plan.DomainNodes = append(plan.DomainNodes, in.Nodes[n].Name)
			}
			res.Plan = plan
			return res
		}
		if len(nodes) > bestFit {
			bestFit, bestFitDomain = len(nodes), c.domain.Value
		}
	}
	switch {
	case len(in.Domains) == 0:
		res.Reason = "no node carries the topology label"
	case bestFit >= 0:
		res.Reason = fmt.Sprintf("no domain holds %d members together; the best, %s, holds %d", in.Need, bestFitDomain, bestFit)
	default:
		res.Reason = fmt.Sprintf("no domain has room for %d members (%s); the roomiest, %s, has %s %s free", in.Need, needed,
			fullest.domain, fullest.missing, capacity.Format(fullest.missing, fullest.free))
	}
	return res
}

// tryDomain plans members into one domain, largest first, each on the first
// node that accepts it. Members of one shape and request keep a cursor:
// a node that refused one of them refuses the next, except where an earlier
// placement makes a node acceptable (affinity), which the final rescan
// catches.
func tryDomain(in Input, d Domain, order []int) map[string]string {
	sim := in.Open(d)
	placed := map[string]string{}
	cursor := 0
	for k, m := range order {
		if k > 0 && !sameClass(in.Members[m], in.Members[order[k-1]]) {
			cursor = 0
		}
		node := -1
		for i := cursor; i < len(d.Nodes); i++ {
			if sim.Fits(m, d.Nodes[i]) {
				node, cursor = i, i
				break
			}
		}
		if node < 0 {
			for i := 0; i < cursor && i < len(d.Nodes); i++ {
				if sim.Fits(m, d.Nodes[i]) {
					node = i
					break
				}
			}
		}
		if node < 0 {
			if len(in.Members)-(k+1)+len(placed) < in.Need {
				return placed // the rest cannot make up the quorum
			}
			cursor = len(d.Nodes)
			continue
		}
		sim.Place(m, d.Nodes[node])
		placed[in.Members[m].ID] = in.Nodes[d.Nodes[node]].Name
	}
	return placed
}

func orderMembers(members []Member) []int {
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ma, mb := members[order[a]], members[order[b]]
		if !ma.Request.Equal(mb.Request) {
			return capacity.Larger(ma.Request, mb.Request)
		}
		return ma.Shape < mb.Shape
	})
	return order
}

func sameClass(a, b Member) bool { return a.Shape == b.Shape && a.Request.Equal(b.Request) }

// requestOfSmallest sums the need smallest requests: the least any domain
// must have free.
func requestOfSmallest(members []Member, need int) capacity.Vector {
	order := orderMembers(members)
	sum := capacity.Vector{}
	for i := len(order) - 1; i >= 0 && i >= len(order)-need; i-- {
		sum = sum.Add(members[order[i]].Request)
	}
	return sum
}

// spareRatio is the room a domain keeps after the group, in multiples of
// the group's request, summed over CPU and memory.
func spareRatio(free, need capacity.Vector) float64 {
	ratio := func(f, n int64) float64 { return float64(f-n) / float64(max(n, 1)) }
	return ratio(free.MilliCPU, need.MilliCPU) + ratio(free.Memory, need.Memory)
}
