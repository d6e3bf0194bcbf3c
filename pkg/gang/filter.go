package gang

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/capacity"
	"github.com/cosched/cosched/pkg/placement"
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
	msg := fmt.Sprintf("node is outside the plan of PodGroup %s", ps.group)
	if ps.domain != "" {
		msg += fmt.Sprintf(" (domain %s)", ps.domain)
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
}

// planFor narrows a member of a planned group to its planned node, or to
// the planned domain for a member the plan did not cover, and records that
// in the cycle state for Filter.
func planFor(state fwk.CycleState, key string, plan *placement.Plan, pod *v1.Pod) *fwk.PreFilterResult {
	if plan == nil {
		return nil
	}
	nodes := sets.New(plan.DomainNodes...)
	node, planned := plan.Nodes[string(pod.UID)]
	if planned {
		nodes = sets.New(node)
	}
	state.Write(planStateKey, &planState{group: key, domain: plan.Domain, nodes: nodes, planned: planned})
	// Shared with Filter's state: the framework never changes a plugin's
	// NodeNames (PreFilterResult.Merge clones or intersects).
	return &fwk.PreFilterResult{NodeNames: nodes}
}

// followShortcut narrows a member of a group planned as a whole (a
// shortcut plan) to its planned node while that node still has room for it.
// Otherwise, or for a member the plan does not cover, it returns nil and the
// member searches the cluster like any pod: the group shares no domain, so
// any node that fits will do.
func (pl *CoschedGang) followShortcut(state fwk.CycleState, key string, plan *placement.Plan, pod *v1.Pod) *fwk.PreFilterResult {
	node, ok := plan.Nodes[string(pod.UID)]
	if !ok {
		return nil
	}
	ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(node)
	if err != nil || ni.Node() == nil || !pl.roomFor(pod, ni) {
		shortcutMembers.WithLabelValues("search").Inc()
		return nil
	}
	shortcutMembers.WithLabelValues("planned").Inc()
	nodes := sets.New(node)
	state.Write(planStateKey, &planState{group: key, nodes: nodes, planned: true})
	return &fwk.PreFilterResult{NodeNames: nodes}
}

// roomFor reports whether ni still has room for pod's requests and a pod
// slot, counting, as the scheduler's Filter does, the pods nominated to it
// with at least pod's priority. Other pods may have taken the room since
// the plan was made; the plan's Filter run covered everything else.
func (pl *CoschedGang) roomFor(pod *v1.Pod, ni fwk.NodeInfo) bool {
	free := capacity.NodeOf(ni)
	priority := corev1helpers.PodPriority(pod)
	for _, other := range pl.nominatedPodsOn(ni.Node().Name) {
		if other.UID != pod.UID && corev1helpers.PodPriority(other) >= priority {
			free.Free = free.Free.Sub(capacity.RequestOf(other))
			free.Pods--
		}
	}
	return free.Pods >= 1 && capacity.RequestOf(pod).Fits(free.Free)
}

// joinDomain keeps a member of a topology group that has no plan (the group
// is admitted or running, and the member joins it) in the domain where its
// siblings were placed. Without it a member beyond the quorum, or one
// scheduled while admitted siblings bind, could land in another domain; with
// the annotation form nothing else (no pod affinity) would stop it. When the
// siblings cannot be joined (their nodes are gone), the member is turned
// away with the reason.
//
// The PreFilterResult narrows the search to the domain's nodes, so the
// scheduler does not run every filter on nodes this Filter would refuse.
func (pl *CoschedGang) joinDomain(state fwk.CycleState, key string, topologyKey string, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if topologyKey == "" {
		return nil, nil
	}
	value, found, problem := pl.placedDomain(key, topologyKey, pod.UID)
	if problem != "" {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s: %s", key, problem))
	}
	if !found {
		return nil, nil // nobody placed: the member starts an attempt, or plans none
	}
	state.Write(planStateKey, &planState{group: key, domain: value, topologyKey: topologyKey,
		outside: fmt.Sprintf("node is outside the domain %s=%s where PodGroup %s is placed", topologyKey, value, key)})
	inDomain := sets.New[string]()
	for _, ni := range nodes {
		if n := ni.Node(); n != nil && n.Labels[topologyKey] == value {
			inDomain.Insert(n.Name)
		}
	}
	return &fwk.PreFilterResult{NodeNames: inDomain}, nil
}

// placedDomain returns the topologyKey value of the domain that holds key's
// placed members (reserved, or bound and not being deleted), leaving out
// self; found is false when no member is placed. problem says why the
// members that are placed cannot be joined: the nodes they are on are gone
// (their pods are about to be deleted, and the group with them), lack the
// label, or lie in more than one domain.
func (pl *CoschedGang) placedDomain(key, topologyKey string, self types.UID) (value string, found bool, problem string) {
	onNodes := sets.New[string]()
	for uid, node := range pl.groups.reservedMembers(key) {
		if uid != self {
			onNodes.Insert(node)
		}
	}
	for _, m := range pl.memberPods(key) {
		if phaseOf(m) == memberBound && m.UID != self {
			onNodes.Insert(m.Spec.NodeName)
		}
	}
	if onNodes.Len() == 0 {
		return "", false, ""
	}
	values := sets.New[string]()
	var gone, unlabelled []string
	for _, node := range sets.List(onNodes) {
		ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(node)
		if err != nil || ni.Node() == nil {
			gone = append(gone, node)
			continue
		}
		v, ok := ni.Node().Labels[topologyKey]
		if !ok {
			unlabelled = append(unlabelled, node)
			continue
		}
		values.Insert(v)
	}
	switch {
	case len(unlabelled) > 0:
		return "", true, fmt.Sprintf("placed members are on node(s) %s, which lack the label %s", strings.Join(unlabelled, ", "), topologyKey)
	case values.Len() == 1:
		// Members on a gone node are about to be deleted; the others hold
		// the domain.
		return values.UnsortedList()[0], true, ""
	case values.Len() == 0:
		return "", true, fmt.Sprintf("placed members are on node(s) %s, which are gone; the group waits for them to be deleted", strings.Join(gone, ", "))
	default:
		return "", true, fmt.Sprintf("placed members are in %d %s domains (%s)", values.Len(), topologyKey, strings.Join(sets.List(values), ", "))
	}
}
