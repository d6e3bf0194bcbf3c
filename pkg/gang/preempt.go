package gang

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/pkg/preemption"
)

// Gang preemption: a group that cannot be placed looks, domain by domain
// (the whole cluster when it asks for no topology), for the cheapest set of
// lower-priority units (plain pods, or whole gangs) whose removal lets every
// member its quorum needs fit at once, checked with the profile's own
// Filter plugins. It evicts nothing unless such a set exists, nominates the
// members to the nodes the simulation found, and waits for the victims to
// terminate before it would ever preempt again.

// maxPreemptionWait bounds how long a group waits for its victims to go
// before it may choose new ones.
const maxPreemptionWait = 5 * time.Minute

// preemptForGroup tries to make room for pod's group. When it preempts, or
// waits for earlier victims to go, it returns the PostFilter outcome; else
// a nil status and, if preemption was considered, why it cannot help, for
// the caller to add to the group's failure.
func (pl *CoschedGang) preemptForGroup(ctx context.Context, pod *v1.Pod, key string, pg *schedv1alpha1.PodGroup) (*fwk.PostFilterResult, *fwk.Status, string) {
	if !*pl.args.GangPreemption {
		return nil, nil, ""
	}
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return nil, nil, ""
	}
	logger := klog.FromContext(ctx)
	if left := pl.groups.preemptionPending(key, pl.clock.Now(), maxPreemptionWait, pl.victimPresent); left > 0 {
		preemptions.WithLabelValues("waiting").Inc()
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("PodGroup %s waits for %d preempted pod(s) to terminate", key, left)), ""
	}
	runner, ok := pl.handle.(preFilterRunner)
	if !ok {
		return nil, nil, ""
	}
	members, need := pl.membersToPlace(key, pg, pod)
	if len(members) == 0 {
		return nil, nil, ""
	}
	priority := corev1helpers.PodPriority(members[0])
	for _, m := range members[1:] {
		priority = min(priority, corev1helpers.PodPriority(m))
	}
	nodes, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil, fwk.AsStatus(err), ""
	}
	// Planning must see the room the group is about to get, not the group's
	// own earlier nominations on top of it.
	for _, m := range members {
		pl.handle.DeleteNominatedPodIfExists(m)
	}
	shapes, memberShape := shapeStatesOf(ctx, runner, members)
	for _, s := range shapes {
		if s.failure != "" {
			preemptions.WithLabelValues("no_room").Inc()
			return nil, nil, fmt.Sprintf("member %s/%s fits no node: %s", s.pod.Namespace, s.pod.Name, s.failure)
		}
	}
	pdbs, err := pl.handle.SharedInformerFactory().Policy().V1().PodDisruptionBudgets().Lister().List(labels.Everything())
	if err != nil {
		return nil, fwk.AsStatus(err), ""
	}
	budgets := preemption.NewBudgets(pdbs)

	var placedPods []*v1.Pod
	nodeIndex := map[string]fwk.NodeInfo{}
	for _, ni := range nodes {
		if ni.Node() == nil {
			continue
		}
		nodeIndex[ni.Node().Name] = ni
		for _, pi := range ni.GetPods() {
			placedPods = append(placedPods, pi.GetPod())
		}
	}
	var candidates []*preemption.Unit
	for _, u := range preemption.UnitsOf(placedPods) {
		if u.Group == key || !preemption.Eligible(u, priority) || budgets.Violation([]*preemption.Unit{u}) != "" {
			continue
		}
		candidates = append(candidates, u)
	}
	if len(candidates) == 0 {
		preemptions.WithLabelValues("no_room").Inc()
		return nil, nil, fmt.Sprintf("no pods or gangs of priority below %d that may be evicted", priority)
	}

	topologyKey := podgroup.TopologyKey(pg, pod)
	type choice struct {
		domain  string
		victims []*preemption.Unit
		cost    preemption.Cost
		plan    map[types.UID]string
	}
	var best *choice
	for _, d := range domainsOf(nodes, topologyKey) {
		sim := &roomSim{ctx: ctx, handle: pl.handle, shapes: shapes, memberShape: memberShape, members: members, domain: d.nodes, nodeIndex: nodeIndex}
		var here []*preemption.Unit
		for _, u := range candidates {
			if sim.touches(u) {
				here = append(here, u)
			}
		}
		if len(here) == 0 {
			continue
		}
		victims, ok := preemption.Select(here, func(v []*preemption.Unit) bool { return sim.place(v) != nil })
		if !ok || len(victims) == 0 || budgets.Violation(victims) != "" {
			continue
		}
		c := &choice{domain: d.value, victims: victims, cost: preemption.CostOf(victims)}
		if best == nil || c.cost.Less(best.cost) {
			c.plan = sim.place(victims)
			if c.plan != nil {
				best = c
			}
		}
	}
	if best == nil {
		preemptions.WithLabelValues("no_room").Inc()
		return nil, nil, fmt.Sprintf("evicting lower-priority pods and gangs cannot make room for %d member(s)%s", need, domainNote(topologyKey))
	}

	why := fmt.Sprintf("to place %d member(s) of PodGroup %s (priority %d)%s", need, key, priority, domainOf(topologyKey, best.domain))
	var refs []victimRef
	for _, u := range best.victims {
		for _, p := range u.Pods {
			refs = append(refs, victimRef{namespace: p.Namespace, name: p.Name, uid: p.UID})
		}
	}
	pl.groups.startPreemption(key, refs, pl.clock.Now())
	evictor := &preemption.Evictor{
		Client:      pl.handle.ClientSet(),
		Recorder:    pl.handle.EventRecorder(),
		Waiting:     func(uid types.UID) fwk.WaitingPod { return pl.handle.GetWaitingPod(uid) },
		GroupObject: pl.podGroupObject,
		PluginName:  Name,
	}
	if err := evictor.Evict(ctx, best.victims, pg, why); err != nil {
		preemptions.WithLabelValues("error").Inc()
		return nil, fwk.AsStatus(err), ""
	}
	preemptions.WithLabelValues("preempted").Inc()
	preemptionVictims.Add(float64(best.cost.Pods))
	for _, m := range members {
		if m.UID == pod.UID {
			continue
		}
		if pi, err := framework.NewPodInfo(m); err == nil {
			pl.handle.AddNominatedPod(logger, pi, &fwk.NominatingInfo{NominatedNodeName: best.plan[m.UID], NominatingMode: fwk.ModeOverride})
		}
	}
	note := fmt.Sprintf("preempting %s %s", describeUnits(best.victims), why)
	logger.V(2).Info("Pod group preempts", "podGroup", key, "victims", best.cost.Pods, "units", len(best.victims),
		"topPriority", best.cost.TopPriority, "gangs", best.cost.Gangs, "domain", best.domain)
	pl.handle.EventRecorder().Eventf(pg, nil, v1.EventTypeNormal, "Preempting", "Scheduling", truncate(note))
	return &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatedNodeName: best.plan[pod.UID], NominatingMode: fwk.ModeOverride}},
		fwk.NewStatus(fwk.Success, note), ""
}

// membersToPlace returns the pending members the group's quorum still needs,
// pod first, and how many that is; nil when the quorum cannot be reached
// from the pods that exist.
func (pl *CoschedGang) membersToPlace(key string, pg *schedv1alpha1.PodGroup, pod *v1.Pod) ([]*v1.Pod, int) {
	bound := 0
	var pending []*v1.Pod
	for _, m := range podgroup.Members(pl.pods, key) {
		if m.DeletionTimestamp != nil {
			continue
		}
		if m.Spec.NodeName != "" {
			bound++
			continue
		}
		if m.UID == pod.UID {
			continue
		}
		if m.Spec.SchedulerName == pod.Spec.SchedulerName {
			pending = append(pending, m)
		}
	}
	need := podgroup.MinMember(pg) - bound
	if need <= 0 || len(pending)+1 < need {
		return nil, 0
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].Name < pending[j].Name })
	return append([]*v1.Pod{pod}, pending[:need-1]...), need
}

// victimPresent reports whether a preempted pod still holds its place.
func (pl *CoschedGang) victimPresent(v victimRef) bool {
	if pl.handle.GetWaitingPod(v.uid) != nil {
		return true
	}
	obj, ok, err := pl.pods.GetByKey(v.namespace + "/" + v.name)
	if err != nil || !ok {
		return false
	}
	p, ok := obj.(*v1.Pod)
	return ok && p.UID == v.uid && p.Spec.NodeName != ""
}

func (pl *CoschedGang) podGroupObject(key string) runtime.Object {
	ns, name, ok := strings.Cut(key, "/")
	if !ok {
		return nil
	}
	pg, err := pl.podGroups.PodGroups(ns).Get(name)
	if err != nil {
		return nil
	}
	return pg
}

type domain struct {
	value string
	nodes []fwk.NodeInfo
}

// domainsOf splits the nodes by topologyKey; without one the whole cluster
// is a single domain. Nodes without the label belong to no domain.
func domainsOf(nodes []fwk.NodeInfo, topologyKey string) []domain {
	if topologyKey == "" {
		return []domain{{nodes: nodes}}
	}
	index := map[string]int{}
	var out []domain
	for _, ni := range nodes {
		if ni.Node() == nil {
			continue
		}
		value, ok := ni.Node().Labels[topologyKey]
		if !ok {
			continue
		}
		i, ok := index[value]
		if !ok {
			i = len(out)
			index[value] = i
			out = append(out, domain{value: value})
		}
		out[i].nodes = append(out[i].nodes, ni)
	}
	return out
}

func domainNote(topologyKey string) string {
	if topologyKey == "" {
		return ""
	}
	return " in any one " + topologyKey + " domain"
}

func domainOf(topologyKey, value string) string {
	if topologyKey == "" {
		return ""
	}
	return fmt.Sprintf(" in %s=%s", topologyKey, value)
}

func describeUnits(units []*preemption.Unit) string {
	var parts []string
	for _, u := range units {
		if u.IsGang() {
			parts = append(parts, fmt.Sprintf("PodGroup %s (%d pods, priority %d)", u.Group, len(u.Pods), u.Priority))
		} else {
			parts = append(parts, fmt.Sprintf("pod %s (priority %d)", u.Key, u.Priority))
		}
	}
	return strings.Join(parts, ", ")
}

// roomSim answers "do the members fit in this domain once these victims are
// gone?" with the profile's Filter plugins, on copies of the nodes.
type roomSim struct {
	ctx         context.Context
	handle      fwk.Handle
	shapes      []shapeState
	memberShape []int
	members     []*v1.Pod
	domain      []fwk.NodeInfo
	nodeIndex   map[string]fwk.NodeInfo
}

// touches reports whether u has a pod in the domain.
func (s *roomSim) touches(u *preemption.Unit) bool {
	for _, p := range u.Pods {
		for _, ni := range s.domain {
			if ni.Node().Name == p.Spec.NodeName {
				return true
			}
		}
	}
	return false
}

// place returns a node for every member with victims removed, or nil.
func (s *roomSim) place(victims []*preemption.Unit) map[types.UID]string {
	logger := klog.FromContext(s.ctx)
	inDomain := map[string]int{}
	infos := make([]fwk.NodeInfo, len(s.domain))
	for i, ni := range s.domain {
		infos[i] = ni
		inDomain[ni.Node().Name] = i
	}
	shapes := make([]shapeState, len(s.shapes))
	for i, sh := range s.shapes {
		shapes[i] = sh
		shapes[i].state = sh.state.Clone()
	}
	cloned := map[int]bool{}
	for _, u := range victims {
		for _, p := range u.Pods {
			pi, err := framework.NewPodInfo(p)
			if err != nil {
				return nil
			}
			host := s.nodeIndex[p.Spec.NodeName]
			if i, ok := inDomain[p.Spec.NodeName]; ok {
				if !cloned[i] {
					infos[i] = infos[i].Snapshot()
					cloned[i] = true
				}
				if err := infos[i].RemovePod(logger, p); err != nil {
					return nil
				}
				host = infos[i]
			}
			if host == nil {
				continue
			}
			for _, sh := range shapes {
				s.handle.RunPreFilterExtensionRemovePod(s.ctx, sh.state, sh.pod, pi, host)
			}
		}
	}
	sim := newFrameworkSim(s.ctx, s.handle, shapes, s.memberShape, s.members, infos)
	plan := map[types.UID]string{}
	for m := range s.members {
		placed := false
		for n := range infos {
			if sim.Fits(m, n) {
				sim.Place(m, n)
				plan[s.members[m].UID] = sim.nodeInfo(n).Node().Name
				placed = true
				break
			}
		}
		if !placed {
			return nil
		}
	}
	return plan
}
