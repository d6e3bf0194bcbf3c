package capacity

import (
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
)

// PackResult says how many of the requests found a node.
type PackResult struct {
	// Placed is how many requests fit.
	Placed int
	// Blocked describes the first request that found no node, when any did not.
	Blocked *Shortfall
}

// Shortfall explains why one request found no node, in numbers a person can
// act on.
type Shortfall struct {
	Request Vector
	// Resource is the resource that no node has enough of, or "" when each
	// resource alone exists somewhere but no node has all of them together.
	Resource v1.ResourceName
	// BestFree is the most of Resource any node had left.
	BestFree int64
	// NoPodSlots is set when every node with room is full by pod count.
	NoPodSlots bool
	// After is how many requests the packing had placed before this one:
	// BestFree is what was left after them, not what the nodes have now.
	After int
}

func (s *Shortfall) String() string {
	// After the packing placed others, "best node" means after them: on an
	// empty cluster the plain number would read as wrong.
	once := ""
	if s.After > 0 {
		once = fmt.Sprintf(" once %d member(s) are placed", s.After)
	}
	switch {
	case s.Resource != "":
		return fmt.Sprintf("member needs %s %s, best node has %s free%s", s.Resource,
			Format(s.Resource, s.Request.Get(s.Resource)), Format(s.Resource, s.BestFree), once)
	case s.NoPodSlots:
		return fmt.Sprintf("member needs %s, nodes with room are at their pod limit%s", s.Request, once)
	default:
		return fmt.Sprintf("member needs %s on one node, no node has all of it%s", s.Request, once)
	}
}

// Pack places requests onto a copy of nodes, largest first, each on the
// first node with room (first-fit decreasing), and reports how many fit.
// When that leaves some unplaced it also tries smallest first, which fits
// the most members when only a quorum of a mixed group is needed; the better
// count wins.
//
// Requests with equal vectors share a cursor: free room only shrinks, so a
// node that could not take one copy cannot take the next. That keeps a group
// of n identical members at O(nodes + n) instead of O(nodes * n).
func Pack(nodes []Node, requests []Vector) PackResult {
	order := largestFirst(requests)
	best := packInOrder(nodes, requests, order)
	if best.Placed == len(requests) {
		return best
	}
	for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
		order[i], order[j] = order[j], order[i]
	}
	if alt := packInOrder(nodes, requests, order); alt.Placed > best.Placed {
		alt.Blocked = best.Blocked // the largest member is the more useful explanation
		return alt
	}
	return best
}

// largestFirst returns the indices of requests, largest first (stable).
func largestFirst(requests []Vector) []int {
	order := make([]int, len(requests))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return Larger(requests[order[a]], requests[order[b]]) })
	return order
}

// Source yields nodes one at a time, so that a fit check that succeeds
// early never builds the whole node list. At returns node i, and false when
// node i may not be used (node selection, taints).
type Source interface {
	Len() int
	At(i int) (Node, bool)
}

// PackFrom answers as Pack(nodes of src that may be used, requests), but
// when every request fits largest first it stops at the last node it needed:
// on a cluster with room, a group's check looks at a few nodes, not all of
// them. Only when some request does not fit does it collect every node, to
// try the other order and explain the shortfall exactly as Pack does.
func PackFrom(src Source, requests []Vector) PackResult {
	order := largestFirst(requests)
	// taken holds the room left on the nodes that received requests.
	taken := map[int]Node{}
	at := func(i int) (Node, bool) {
		if n, ok := taken[i]; ok {
			return n, true
		}
		return src.At(i)
	}
	cursor := 0
	for k, idx := range order {
		req := requests[idx]
		if k == 0 || !req.Equal(requests[order[k-1]]) {
			cursor = 0
		}
		for ; cursor < src.Len(); cursor++ {
			if n, ok := at(cursor); ok && n.Pods >= 1 && req.Fits(n.Free) {
				n.Free = n.Free.Sub(req)
				n.Pods--
				taken[cursor] = n
				break
			}
		}
		if cursor == src.Len() {
			var all []Node
			for i := range src.Len() {
				if n, ok := src.At(i); ok {
					all = append(all, n)
				}
			}
			return Pack(all, requests)
		}
	}
	return PackResult{Placed: len(requests)}
}

func packInOrder(nodes []Node, requests []Vector, order []int) PackResult {
	free := make([]Node, len(nodes))
	copy(free, nodes)
	res := PackResult{}
	cursor := 0
	for k, idx := range order {
		req := requests[idx]
		if k == 0 || !req.Equal(requests[order[k-1]]) {
			cursor = 0
		}
		for cursor < len(free) && (free[cursor].Pods < 1 || !req.Fits(free[cursor].Free)) {
			cursor++
		}
		if cursor == len(free) {
			if res.Blocked == nil {
				res.Blocked = explain(free, req)
				res.Blocked.After = res.Placed
			}
			continue
		}
		free[cursor].Free = free[cursor].Free.Sub(req)
		free[cursor].Pods--
		res.Placed++
	}
	return res
}

// Larger orders requests for first-fit decreasing: CPU, then memory, then
// ephemeral storage decide.
func Larger(a, b Vector) bool {
	if a.MilliCPU != b.MilliCPU {
		return a.MilliCPU > b.MilliCPU
	}
	if a.Memory != b.Memory {
		return a.Memory > b.Memory
	}
	return a.EphemeralStorage > b.EphemeralStorage
}

func explain(nodes []Node, req Vector) *Shortfall {
	s := &Shortfall{Request: req}
	names := append([]v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage}, sortedNames(req.Scalars)...)
	for _, name := range names {
		need := req.Get(name)
		if need <= 0 {
			continue
		}
		var bestFree int64
		for i := range nodes {
			if f := nodes[i].Free.Get(name); f > bestFree {
				bestFree = f
			}
		}
		if bestFree < need {
			s.Resource, s.BestFree = name, bestFree
			return s
		}
	}
	for i := range nodes {
		if req.Fits(nodes[i].Free) && nodes[i].Pods < 1 {
			s.NoPodSlots = true
			break
		}
	}
	return s
}

// TotalFree sums the free room of all nodes, as scheduler-plugins'
// minResources check does.
func TotalFree(nodes []Node) Vector {
	var sum Vector
	for i := range nodes {
		free := nodes[i].Free
		// Overcommitted nodes have negative room; they must not cancel out
		// another node's real room.
		free = clampZero(free)
		sum = sum.Add(free)
	}
	return sum
}

func clampZero(v Vector) Vector {
	out := Vector{MilliCPU: max(v.MilliCPU, 0), Memory: max(v.Memory, 0), EphemeralStorage: max(v.EphemeralStorage, 0)}
	for name, q := range v.Scalars {
		if out.Scalars == nil {
			out.Scalars = map[v1.ResourceName]int64{}
		}
		out.Scalars[name] = max(q, 0)
	}
	return out
}
