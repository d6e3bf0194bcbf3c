package gang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/placement"
	"github.com/cosched/cosched/pkg/podgroup"
)

// The plan of an atomically placed group binds its members: PreFilter
// narrows each member to its planned node (or, for a member the plan does
// not cover, to the planned domain), and Filter enforces it. The narrowing
// alone is not enough: the scheduler tries a pod's status.nominatedNodeName,
// and a node hinted by opportunistic batching, before it narrows to the
// PreFilterResult (schedule_one.go, findNodesThatFitPod), and a nomination
// left from a preemption or set by another component can name a node
// outside the plan. Without Filter the member would land there, outside the
// domain its siblings were planned into (R2 in docs/design.md).

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
}

// Clone shares the state: it is never changed after PreFilter.
func (s *planState) Clone() fwk.StateData { return s }

// Filter keeps a member of a planned group on the nodes its plan allows.
// Pods outside any group never get here (PreFilter skips them); members of
// groups without a plan pass every node.
func (pl *CoschedGang) Filter(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	data, err := state.Read(planStateKey)
	if err != nil {
		return nil
	}
	ps, ok := data.(*planState)
	if !ok {
		return fwk.AsStatus(fmt.Errorf("%s: unexpected %T in the cycle state", planStateKey, data))
	}
	node := nodeInfo.Node()
	if node == nil {
		return nil
	}
	if ps.topologyKey != "" {
		if node.Labels[ps.topologyKey] == ps.domain {
			return nil
		}
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ps.outside)
	}
	if ps.nodes.Has(node.Name) {
		return nil
	}
	// Unresolvable on this node: preempting pods here cannot put the member
	// into its plan. PostFilter drops a plan the member cannot follow.
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("node is outside the plan of PodGroup %s (domain %s)", ps.group, ps.domain))
}

// planFor narrows a member of a planned group to its planned node, or to
// the planned domain for a member the plan did not cover, and records that
// in the cycle state for Filter.
func planFor(state fwk.CycleState, key string, plan *placement.Plan, pod *v1.Pod) *fwk.PreFilterResult {
	if plan == nil {
		return nil
	}
	nodes := sets.New(plan.DomainNodes...)
	if node, ok := plan.Nodes[string(pod.UID)]; ok {
		nodes = sets.New(node)
	}
	state.Write(planStateKey, &planState{group: key, domain: plan.Domain, nodes: nodes})
	// Shared with Filter's state: the framework never changes a plugin's
	// NodeNames (PreFilterResult.Merge clones or intersects).
	return &fwk.PreFilterResult{NodeNames: nodes}
}

// joinDomain keeps a member of a topology group that has no plan (the group
// is admitted or running, and the member joins it) in the domain where its
// siblings were placed. Without it a member beyond the quorum, or one
// scheduled while admitted siblings bind, could land in another domain; with
// the annotation form nothing else (no pod affinity) would stop it.
//
// The PreFilterResult narrows the search to the domain's nodes, so the
// scheduler does not run every filter on nodes this Filter would refuse.
func (pl *CoschedGang) joinDomain(state fwk.CycleState, key string, topologyKey string, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.PreFilterResult {
	if topologyKey == "" {
		return nil
	}
	node := ""
	for uid, n := range pl.groups.reservedMembers(key) {
		if uid != pod.UID {
			node = n
			break
		}
	}
	if node == "" {
		for _, m := range podgroup.Members(pl.pods, key) {
			if m.Spec.NodeName != "" && m.UID != pod.UID && m.DeletionTimestamp == nil {
				node = m.Spec.NodeName
				break
			}
		}
	}
	if node == "" {
		return nil // nobody placed: the member starts an attempt, or plans none
	}
	ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(node)
	if err != nil || ni.Node() == nil {
		return nil // the node is gone; its members are being released
	}
	value, ok := ni.Node().Labels[topologyKey]
	if !ok {
		return nil
	}
	state.Write(planStateKey, &planState{group: key, domain: value, topologyKey: topologyKey,
		outside: fmt.Sprintf("node is outside the domain %s=%s where PodGroup %s is placed", topologyKey, value, key)})
	inDomain := sets.New[string]()
	for _, ni := range nodes {
		if n := ni.Node(); n != nil && n.Labels[topologyKey] == value {
			inDomain.Insert(n.Name)
		}
	}
	return &fwk.PreFilterResult{NodeNames: inDomain}
}
