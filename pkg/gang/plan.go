package gang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/capacity"
	"github.com/cosched/cosched/pkg/placement"
	"github.com/cosched/cosched/pkg/simulation"
)

// Pod-atomic placement: the first member of an attempt plans every member
// into one topology domain, running the profile's real PreFilter and Filter
// plugins against node state that includes the members planned so far.
// Members then only consider their planned node, so a group never lands
// half in one place; a plan that no longer fits is dropped with the attempt.

// simulationKey marks the cycle state of a planning or preemption
// simulation, in which this plugin's own PreFilter must stand aside.
const simulationKey = simulation.StateKey

// planGroup plans the pending members into one domain of topologyKey (into
// the domain whose value is only, when that is set), or, with topologyKey
// "", into the cluster as one domain. It returns the plan, or why there is
// none.
func (pl *CoschedGang) planGroup(ctx context.Context, topologyKey, only string, need int, pending []*v1.Pod, nodes []fwk.NodeInfo) (*placement.Plan, string) {
	fw, ok := pl.handle.(simulation.Framework)
	if !ok {
		return nil, "the scheduler framework cannot run PreFilter plugins for planning"
	}
	in, infos := planningInput(topologyKey, only, need, nodes)
	sim := simulation.New(ctx, fw, pending, infos)
	for i, pod := range pending {
		in.Members = append(in.Members, placement.Member{ID: string(pod.UID), Request: capacity.RequestOf(pod), Shape: sim.ShapeOf(i)})
	}
	// Each domain starts from the cluster as it is: the last one's plan is
	// undone rather than copied away.
	start := sim.Checkpoint()
	in.Open = func(placement.Domain) placement.Simulator {
		sim.Revert(start)
		return sim
	}
	res := placement.Compute(in)
	if res.Plan == nil {
		reason := fmt.Sprintf("%s: %s", topologyKey, res.Reason)
		if pod, why := sim.Unfit(); pod != nil {
			reason = fmt.Sprintf("%s (member %s/%s fits no node: %s)", reason, pod.Namespace, pod.Name, why)
		}
		return nil, reason
	}
	klog.FromContext(ctx).V(3).Info("Planned pod group", "topologyKey", topologyKey, "domain", res.Plan.Domain,
		"members", len(res.Plan.Nodes), "simulatedDomains", res.Simulated)
	return res.Plan, ""
}

// planningInput lists the nodes of every domain of topologyKey (only the
// domain whose value is only, when that is set); infos[i] is the NodeInfo
// of the input's node i.
func planningInput(topologyKey, only string, need int, nodes []fwk.NodeInfo) (placement.Input, []fwk.NodeInfo) {
	in := placement.Input{Need: need}
	byValue := map[string]int{}
	infos := make([]fwk.NodeInfo, 0, len(nodes))
	for _, ni := range nodes {
		node := ni.Node()
		if node == nil {
			continue
		}
		value, ok := node.Labels[topologyKey]
		if !ok && topologyKey != "" || only != "" && value != only {
			continue
		}
		infos = append(infos, ni)
		in.Nodes = append(in.Nodes, placement.Node{Name: node.Name, Free: capacity.NodeOf(ni).Free})
		d, ok := byValue[value]
		if !ok {
			d = len(in.Domains)
			byValue[value] = d
			in.Domains = append(in.Domains, placement.Domain{Value: value})
		}
		in.Domains[d].Nodes = append(in.Domains[d].Nodes, len(in.Nodes)-1)
	}
	return in, infos
}

// planStateKey carries a planned member's allowed nodes from PreFilter to
// Filter in the cycle state.
const planStateKey fwk.StateKey = Name + "/plan"

// planState is a planned member's share of its group's plan: its allowed
// nodes, or, for a member joining a group already placed (no plan), the
// topology domain its placed siblings share.
type planState struct {
	group  string
	domain string
	nodes  sets.Set[string]
	// topologyKey is set for a joiner: a node passes when its label
	// topologyKey has the value domain.
	topologyKey string
	// outside is the joiner's rejection message, built once.
	outside string
	// planned: nodes is the member's own planned node, so failing it means
	// the plan went stale (PostFilter).
	planned bool
}

// Clone shares the state: it is never changed after PreFilter.
func (s *planState) Clone() fwk.StateData { return s }

// planStateOf returns the member's plan share PreFilter wrote, nil if none.
func planStateOf(state fwk.CycleState) *planState {
	data, err := state.Read(planStateKey)
	if err != nil {
		return nil
	}
	ps, _ := data.(*planState)
	return ps
}
