package gang

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/capacity"
	"github.com/cosched/cosched/pkg/placement"
	"github.com/cosched/cosched/pkg/podgroup"
)

// Pod-atomic placement: the first member of an attempt plans every member
// into one topology domain, running the profile's real PreFilter and Filter
// plugins against node state that includes the members planned so far.
// Members then only consider their planned node, so a group never lands
// half in one place; a plan that no longer fits is dropped with the attempt.

// preFilterRunner is the part of the scheduler's framework the planner needs
// beyond fwk.Handle: running every PreFilter plugin for a member.
type preFilterRunner interface {
	RunPreFilterPlugins(ctx context.Context, state fwk.CycleState, pod *v1.Pod) (*fwk.PreFilterResult, *fwk.Status, sets.Set[string])
}

// simulationKey marks the cycle state of a planning simulation, in which
// this plugin's own PreFilter must stand aside.
const simulationKey fwk.StateKey = Name + "/simulation"

type simulation struct{}

func (simulation) Clone() fwk.StateData { return simulation{} }

// topologyKeyOf returns the domain label the group must share when the
// atomic strategy applies to it, else "".
func (pl *CoschedGang) topologyKeyOf(pg *schedv1alpha1.PodGroup, member *v1.Pod) string {
	if pl.args.PlacementStrategy != config.PlacementAtomic || pg == nil {
		return ""
	}
	return podgroup.TopologyKey(pg, member)
}

// planGroup plans the pending members into one domain of topologyKey (into
// the domain whose value is only, when that is set), or, with topologyKey
// "", into the cluster as one domain. It returns the plan, or why there is
// none.
func (pl *CoschedGang) planGroup(ctx context.Context, topologyKey, only string, need int, pending []*v1.Pod, nodes []fwk.NodeInfo) (*placement.Plan, string) {
	runner, ok := pl.handle.(preFilterRunner)
	if !ok {
		return nil, "the scheduler framework cannot run PreFilter plugins for planning"
	}
	sims, memberShape := shapeStatesOf(ctx, runner, pending)

	in := placement.Input{Need: need}
	byValue := map[string]int{}
	// infos[i] is the NodeInfo of in.Nodes[i].
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
	for i, pod := range pending {
		in.Members = append(in.Members, placement.Member{ID: string(pod.UID), Request: capacity.RequestOf(pod), Shape: memberShape[i]})
	}
	in.Open = func(placement.Domain) placement.Simulator {
		return newFrameworkSim(ctx, pl.handle, sims, memberShape, pending, infos)
	}
	res := placement.Compute(in)
	if res.Plan == nil {
		reason := fmt.Sprintf("%s: %s", topologyKey, res.Reason)
		for _, s := range sims {
			if s.failure != "" {
				reason = fmt.Sprintf("%s (member %s/%s fits no node: %s)", reason, s.pod.Namespace, s.pod.Name, s.failure)
				break
			}
		}
		return nil, reason
	}
	klog.FromContext(ctx).V(3).Info("Planned pod group", "topologyKey", topologyKey, "domain", res.Plan.Domain,
		"members", len(res.Plan.Nodes), "simulatedDomains", res.Simulated)
	return res.Plan, ""
}

// shapeStatesOf runs the PreFilter plugins once per shape of pods.
func shapeStatesOf(ctx context.Context, runner preFilterRunner, pods []*v1.Pod) ([]shapeState, []int) {
	shapes, memberShape := shapesOf(pods)
	sims := make([]shapeState, len(shapes))
	for i, rep := range shapes {
		st := framework.NewCycleState()
		st.Write(simulationKey, simulation{})
		res, status, _ := runner.RunPreFilterPlugins(ctx, st, rep)
		sims[i] = shapeState{pod: rep, state: st, allowed: res}
		if !status.IsSuccess() {
			sims[i].failure = status.Message()
		}
	}
	return sims, memberShape
}

// shapeState is one requirement class's simulation: a representative member
// and the cycle state its PreFilter plugins computed.
type shapeState struct {
	pod     *v1.Pod
	state   fwk.CycleState
	allowed *fwk.PreFilterResult
	failure string
}

// frameworkSim answers the planner with the profile's Filter plugins. Nodes
// that receive planned members are cloned so the real snapshot is never
// changed, and every shape's cycle state learns about each planned member
// through the PreFilter AddPod extensions, as preemption does.
type frameworkSim struct {
	ctx         context.Context
	handle      fwk.Handle
	shapes      []shapeState
	memberShape []int
	members     []*v1.Pod
	nodes       []fwk.NodeInfo
	planned     map[int]fwk.NodeInfo
}

func newFrameworkSim(ctx context.Context, handle fwk.Handle, shapes []shapeState, memberShape []int, members []*v1.Pod, nodes []fwk.NodeInfo) *frameworkSim {
	sim := &frameworkSim{ctx: ctx, handle: handle, memberShape: memberShape, members: members, nodes: nodes, planned: map[int]fwk.NodeInfo{}}
	sim.shapes = make([]shapeState, len(shapes))
	for i, s := range shapes {
		sim.shapes[i] = s
		sim.shapes[i].state = s.state.Clone()
	}
	return sim
}

func (s *frameworkSim) nodeInfo(n int) fwk.NodeInfo {
	if ni, ok := s.planned[n]; ok {
		return ni
	}
	return s.nodes[n]
}

func (s *frameworkSim) Fits(m, n int) bool {
	shape := s.shapes[s.memberShape[m]]
	if shape.failure != "" {
		return false
	}
	ni := s.nodeInfo(n)
	if !shape.allowed.AllNodes() && !shape.allowed.NodeNames.Has(ni.Node().Name) {
		return false
	}
	// With nominated pods, as the scheduler's own Filter does: a plan onto
	// room that a nominated pod will take fails its member at once.
	return s.handle.RunFilterPluginsWithNominatedPods(s.ctx, shape.state, shape.pod, ni).IsSuccess()
}

func (s *frameworkSim) Place(m, n int) {
	ni, ok := s.planned[n]
	if !ok {
		ni = s.nodes[n].Snapshot()
		s.planned[n] = ni
	}
	pod := s.members[m].DeepCopy()
	pod.Spec.NodeName = ni.Node().Name
	pi, err := framework.NewPodInfo(pod)
	if err != nil {
		return
	}
	ni.AddPodInfo(pi)
	for _, shape := range s.shapes {
		if shape.failure == "" {
			s.handle.RunPreFilterExtensionAddPod(s.ctx, shape.state, shape.pod, pi, ni)
		}
	}
}

// shapesOf groups pods by everything the Filter plugins look at, so members
// made from one template share one PreFilter run and one cursor.
func shapesOf(pods []*v1.Pod) ([]*v1.Pod, []int) {
	index := map[string]int{}
	var reps []*v1.Pod
	memberShape := make([]int, len(pods))
	for i, pod := range pods {
		key := shapeKey(pod)
		s, ok := index[key]
		if !ok {
			s = len(reps)
			index[key] = s
			reps = append(reps, pod)
		}
		memberShape[i] = s
	}
	return reps, memberShape
}

// Labels are left out on purpose: members differ in per-replica labels, and
// anti-affinity to those is rare inside one group.
func shapeKey(pod *v1.Pod) string {
	var ports []v1.ContainerPort
	for _, c := range pod.Spec.Containers {
		ports = append(ports, c.Ports...)
	}
	key, err := json.Marshal(struct {
		Request     capacity.Vector
		Selector    map[string]string
		Affinity    *v1.Affinity
		Tolerations []v1.Toleration
		Spread      []v1.TopologySpreadConstraint
		Ports       []v1.ContainerPort
		Volumes     []v1.Volume
		Claims      []v1.PodResourceClaim
		Priority    *int32
	}{capacity.RequestOf(pod), pod.Spec.NodeSelector, pod.Spec.Affinity, pod.Spec.Tolerations,
		pod.Spec.TopologySpreadConstraints, ports, pod.Spec.Volumes, pod.Spec.ResourceClaims, pod.Spec.Priority})
	if err != nil {
		return string(pod.UID) // cannot happen for API types; a shape of its own is safe
	}
	return string(key)
}
