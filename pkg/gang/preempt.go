package gang

import (
	"context"
	"fmt"
	"slices"
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
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"
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

// maxCandidateUnits bounds the units one domain's search considers, the
// least important first: each step of the search simulates the domain.
const maxCandidateUnits = 64

// maxPreemptionWait is how long a group at least waits for its victims to
// go before it may choose new ones (longer when their grace periods are).
const maxPreemptionWait = 5 * time.Minute

// preemptForGroup tries to make room for pod's group; PostFilter has
// already made sure no earlier victims of the group are still there. When
// it preempts it returns the PostFilter outcome; else a nil status and, if
// preemption was considered, why it cannot help, for the caller to add to
// the group's failure.
func (pl *CoschedGang) preemptForGroup(ctx context.Context, pod *v1.Pod, key string, pg *schedv1alpha1.PodGroup) (*fwk.PostFilterResult, *fwk.Status, string) {
	if !*pl.args.GangPreemption {
		return nil, nil, ""
	}
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return nil, nil, ""
	}
	logger := klog.FromContext(ctx)
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

	var placedPods, ownReserved []*v1.Pod
	nodeIndex := map[string]fwk.NodeInfo{}
	for _, ni := range nodes {
		if ni.Node() == nil {
			continue
		}
		nodeIndex[ni.Node().Name] = ni
		for _, pi := range ni.GetPods() {
			p := pi.GetPod()
			placedPods = append(placedPods, p)
			if podgroup.KeyOf(p) == key && !pl.boundInCache(p) {
				// Reserved by the group's attempt that was just rejected:
				// that room is the group's again.
				ownReserved = append(ownReserved, p)
			}
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

	topologyKey := pl.topologyKeyOf(pg, pod)
	type choice struct {
		domain  string
		victims []*preemption.Unit
		cost    preemption.Cost
		plan    map[types.UID]string
	}
	var best *choice
	fitsWithout := false
	for _, d := range domainsOf(nodes, topologyKey) {
		sim := newRoomSim(ctx, pl.handle, shapes, memberShape, members, d.nodes, nodeIndex, ownReserved)
		var here []*preemption.Unit
		for _, u := range candidates {
			if sim.touches(u) {
				here = append(here, u)
			}
		}
		if len(here) == 0 {
			continue
		}
		if len(here) > maxCandidateUnits {
			// Each step of the search simulates the whole domain: look at
			// the least important units only.
			sort.Slice(here, func(i, j int) bool { return preemption.LessImportant(here[i], here[j]) })
			here = here[:maxCandidateUnits]
		}
		victims, ok := preemption.Select(here, func(v []*preemption.Unit) bool { return sim.place(v) != nil })
		if ok && len(victims) == 0 {
			fitsWithout = true
			continue
		}
		if !ok || budgets.Violation(victims) != "" {
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
	if best == nil && fitsWithout {
		// The cluster changed since the group was turned away: it retries
		// without evicting anyone.
		pl.activateAfterBackoff(key)
		return nil, nil, "the group fits without evicting anyone now and retries"
	}
	if best == nil {
		preemptions.WithLabelValues("no_room").Inc()
		return nil, nil, fmt.Sprintf("evicting lower-priority pods and gangs cannot make room for %d member(s)%s", need, domainNote(topologyKey))
	}

	why := fmt.Sprintf("to place %d member(s) of PodGroup %s (priority %d)%s", need, key, priority, domainOf(topologyKey, best.domain))
	taken, err := pl.evictor().Evict(ctx, best.victims, pg, why)
	// The group waits for whatever went, even after an error, rather than
	// choosing more victims while those terminate.
	var refs []victimRef
	grace := int64(0)
	for _, p := range taken {
		refs = append(refs, victimRef{namespace: p.Namespace, name: p.Name, uid: p.UID})
		if p.Spec.TerminationGracePeriodSeconds != nil {
			grace = max(grace, *p.Spec.TerminationGracePeriodSeconds)
		}
	}
	if len(refs) > 0 {
		pl.groups.startPreemption(key, refs, pl.clock.Now(), max(maxPreemptionWait, time.Duration(grace)*time.Second+time.Minute))
		pl.forgetIfGone(key)
	}
	if err != nil {
		preemptions.WithLabelValues("error").Inc()
		return nil, fwk.AsStatus(err), ""
	}
	preemptions.WithLabelValues("preempted").Inc()
	preemptionVictims.Add(float64(best.cost.Pods))
	// Every member holds the room the simulation gave it, as upstream's
	// preemptor holds its node: lower-priority pods' Filter counts the
	// nominated pods as present, so the victims' recreated pods cannot take
	// the room back. The framework nominates pod itself from the result.
	var others []*v1.Pod
	for _, m := range members {
		if m.UID == pod.UID {
			continue
		}
		if pi, err := framework.NewPodInfo(m); err == nil {
			pl.handle.AddNominatedPod(logger, pi, &fwk.NominatingInfo{NominatedNodeName: best.plan[m.UID], NominatingMode: fwk.ModeOverride})
		}
		others = append(others, m)
	}
	go pl.publishNominations(others, best.plan)
	note := fmt.Sprintf("preempting %s %s", describeUnits(best.victims), why)
	logger.V(2).Info("Pod group preempts", "podGroup", key, "victims", best.cost.Pods, "units", len(best.victims),
		"topPriority", best.cost.TopPriority, "gangs", best.cost.Gangs, "domain", best.domain)
	pl.handle.EventRecorder().Eventf(pg, pod, v1.EventTypeNormal, "Preempting", "Scheduling", podgroup.TruncateNote(note))
	return &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatedNodeName: best.plan[pod.UID], NominatingMode: fwk.ModeOverride}},
		fwk.NewStatus(fwk.Success, note), ""
}

// publishNominations writes the nominated nodes of a preempting group's
// members to their status, where users and the cluster autoscaler see the
// room the group holds, and where a restarted scheduler finds it again. It
// runs outside the scheduling cycle: a big group is many writes.
func (pl *CoschedGang) publishNominations(members []*v1.Pod, plan map[types.UID]string) {
	logger := klog.FromContext(pl.ctx)
	for _, m := range members {
		node := plan[m.UID]
		if node == "" || m.Status.NominatedNodeName == node || pl.ctx.Err() != nil {
			continue
		}
		updated := m.Status.DeepCopy()
		updated.NominatedNodeName = node
		if err := schedutil.PatchPodStatus(pl.ctx, pl.handle.ClientSet(), m.Name, m.Namespace, &m.Status, updated); err != nil {
			// The nomination still holds in memory; only its record is missing.
			logger.V(2).Info("Could not record a preempting member's nominated node", "pod", klog.KObj(m), "node", node, "err", err)
		}
	}
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

// boundInCache reports whether the informer shows p bound (rather than only
// assumed by this scheduler).
func (pl *CoschedGang) boundInCache(p *v1.Pod) bool {
	return pl.cachedBound(p.Namespace, p.Name, p.UID)
}

// victimPresent reports whether a preempted pod still holds its place.
func (pl *CoschedGang) victimPresent(v victimRef) bool {
	return pl.handle.GetWaitingPod(v.uid) != nil || pl.cachedBound(v.namespace, v.name, v.uid)
}

func (pl *CoschedGang) cachedBound(namespace, name string, uid types.UID) bool {
	obj, ok, err := pl.pods.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return false
	}
	p, ok := obj.(*v1.Pod)
	return ok && p.UID == uid && p.Spec.NodeName != ""
}

// evictor takes victims for this plugin, with events on their PodGroups.
func (pl *CoschedGang) evictor() *preemption.Evictor {
	return &preemption.Evictor{
		Client:      pl.handle.ClientSet(),
		Recorder:    pl.handle.EventRecorder(),
		Waiting:     func(uid types.UID) fwk.WaitingPod { return pl.handle.GetWaitingPod(uid) },
		GroupObject: pl.podGroupObject,
		PluginName:  Name,
	}
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
	inDomain    map[string]int
	nodeIndex   map[string]fwk.NodeInfo
	// free are pods whose room counts as free in every simulation.
	free []*v1.Pod
}

func newRoomSim(ctx context.Context, handle fwk.Handle, shapes []shapeState, memberShape []int, members []*v1.Pod,
	domain []fwk.NodeInfo, nodeIndex map[string]fwk.NodeInfo, free []*v1.Pod) *roomSim {
	s := &roomSim{ctx: ctx, handle: handle, shapes: shapes, memberShape: memberShape, members: members,
		domain: domain, inDomain: make(map[string]int, len(domain)), nodeIndex: nodeIndex, free: free}
	for i, ni := range domain {
		s.inDomain[ni.Node().Name] = i
	}
	return s
}

// touches reports whether u has a pod in the domain.
func (s *roomSim) touches(u *preemption.Unit) bool {
	for _, p := range u.Pods {
		if _, ok := s.inDomain[p.Spec.NodeName]; ok {
			return true
		}
	}
	return false
}

// place returns a node for every member with victims removed, or nil.
func (s *roomSim) place(victims []*preemption.Unit) map[types.UID]string {
	logger := klog.FromContext(s.ctx)
	infos := slices.Clone(s.domain)
	shapes := make([]shapeState, len(s.shapes))
	for i, sh := range s.shapes {
		shapes[i] = sh
		shapes[i].state = sh.state.Clone()
	}
	cloned := map[int]bool{}
	remove := func(p *v1.Pod) bool {
		pi, err := framework.NewPodInfo(p)
		if err != nil {
			return false
		}
		host := s.nodeIndex[p.Spec.NodeName]
		if i, ok := s.inDomain[p.Spec.NodeName]; ok {
			if !cloned[i] {
				infos[i] = infos[i].Snapshot()
				cloned[i] = true
			}
			if err := infos[i].RemovePod(logger, p); err != nil {
				return false
			}
			host = infos[i]
		}
		if host == nil {
			return true
		}
		for _, sh := range shapes {
			s.handle.RunPreFilterExtensionRemovePod(s.ctx, sh.state, sh.pod, pi, host)
		}
		return true
	}
	for _, p := range s.free {
		if !remove(p) {
			return nil
		}
	}
	for _, u := range victims {
		for _, p := range u.Pods {
			if !remove(p) {
				return nil
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
