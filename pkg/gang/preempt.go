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
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/pkg/preemption"
	"github.com/cosched/cosched/pkg/simulation"
)

// Gang preemption: a group that cannot be placed asks pkg/preemption's
// search for the cheapest lower-priority units (plain pods, or whole gangs)
// whose removal lets every member its quorum needs fit at once, checked
// with the profile's own Filter plugins. It evicts nothing unless such a set
// exists, nominates the members to the nodes the search found, and waits
// for the victims to terminate before it would ever preempt again.

// maxPreemptionWait is how long a group at least waits for its victims to
// go before it may choose new ones (longer when their grace periods are).
const maxPreemptionWait = 5 * time.Minute

// preemptForGroup tries to make room for pod's group; PostFilter has
// already made sure no earlier victims of the group are still there. When
// it preempts it returns the PostFilter outcome; else a nil status and, if
// preemption was considered, why it cannot help, for the caller to add to
// the group's failure.
func (pl *CoschedGang) preemptForGroup(ctx context.Context, pod *v1.Pod, key string, pg *schedv1alpha1.PodGroup) (*fwk.PostFilterResult, *fwk.Status, string) {
	if !*pl.args.GangPreemption || pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return nil, nil, ""
	}
	fw, ok := pl.handle.(simulation.Framework)
	if !ok {
		return nil, nil, ""
	}
	members := pl.membersToPlace(key, pg, pod)
	if len(members) == 0 {
		return nil, nil, ""
	}
	req, whyNot, err := pl.roomRequest(ctx, fw, key, pg, members)
	if err != nil {
		return nil, fwk.AsStatus(err), ""
	}
	if req == nil {
		preemptions.WithLabelValues("no_room").Inc()
		return nil, nil, whyNot
	}
	res := preemption.SearchRoom(*req)
	switch {
	case res.FitsNow:
		pl.activateAfterBackoff(key)
		return nil, nil, "the group fits without evicting anyone now and retries"
	case res.Choice == nil:
		preemptions.WithLabelValues("no_room").Inc()
		return nil, nil, res.WhyNot
	}
	why := fmt.Sprintf("to place %d member(s) of PodGroup %s (priority %d)%s", len(members), key, req.Priority, domainOf(req.TopologyKey, res.Choice.Domain))
	if err := pl.evictFor(ctx, key, pg, res.Choice, why); err != nil {
		preemptions.WithLabelValues("error").Inc()
		return nil, fwk.AsStatus(err), ""
	}
	preemptions.WithLabelValues("preempted").Inc()
	preemptionVictims.Add(float64(res.Choice.Cost.Pods))
	pl.nominate(ctx, pod, members, res.Choice.Nodes)
	note := fmt.Sprintf("preempting %s %s", describeUnits(res.Choice.Victims), why)
	klog.FromContext(ctx).V(2).Info("Pod group preempts", "podGroup", key, "victims", res.Choice.Cost.Pods, "units", len(res.Choice.Victims),
		"topPriority", res.Choice.Cost.TopPriority, "gangs", res.Choice.Cost.Gangs, "domain", res.Choice.Domain)
	pl.handle.EventRecorder().Eventf(pg, pod, v1.EventTypeNormal, "Preempting", "Scheduling", podgroup.TruncateNote(note))
	return &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatedNodeName: res.Choice.Nodes[pod.UID], NominatingMode: fwk.ModeOverride}},
		fwk.NewStatus(fwk.Success, note), ""
}

// roomRequest gathers what the search needs: the cluster, a simulation of
// it for members, the budgets and the group's own reserved room. It returns
// nil and why when a member fits no node at all.
func (pl *CoschedGang) roomRequest(ctx context.Context, fw simulation.Framework, key string, pg *schedv1alpha1.PodGroup, members []*v1.Pod) (*preemption.Request, string, error) {
	priority := corev1helpers.PodPriority(members[0])
	for _, m := range members[1:] {
		priority = min(priority, corev1helpers.PodPriority(m))
	}
	all, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil, "", err
	}
	// Planning must see the room the group is about to get, not the group's
	// own earlier nominations on top of it.
	for _, m := range members {
		pl.handle.DeleteNominatedPodIfExists(m)
	}
	nodes := slices.DeleteFunc(slices.Clone(all), func(ni fwk.NodeInfo) bool { return ni.Node() == nil })
	sim := simulation.New(ctx, fw, members, nodes)
	if p, why := sim.Unfit(); p != nil {
		return nil, fmt.Sprintf("member %s/%s fits no node: %s", p.Namespace, p.Name, why), nil
	}
	pdbs, err := pl.handle.SharedInformerFactory().Policy().V1().PodDisruptionBudgets().Lister().List(labels.Everything())
	if err != nil {
		return nil, "", err
	}
	return &preemption.Request{Group: key, Priority: priority, Members: members, Nodes: nodes,
		TopologyKey: pl.topologyKeyOf(pg, members[0]), Budgets: preemption.NewBudgets(pdbs), Free: pl.ownReserved(key, nodes), Sim: sim}, "", nil
}

// ownReserved returns the group's pods that its attempt just rejected had
// reserved: that room is the group's again.
func (pl *CoschedGang) ownReserved(key string, nodes []fwk.NodeInfo) []*v1.Pod {
	var out []*v1.Pod
	for _, ni := range nodes {
		for _, pi := range ni.GetPods() {
			if p := pi.GetPod(); podgroup.KeyOf(p) == key && !pl.boundInCache(p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// evictFor evicts the chosen victims. The group waits for whatever went,
// even after an error, rather than choosing more victims while those
// terminate.
func (pl *CoschedGang) evictFor(ctx context.Context, key string, pg *schedv1alpha1.PodGroup, choice *preemption.Choice, why string) error {
	taken, err := pl.evictor().Evict(ctx, choice.Victims, pg, why)
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
	return err
}

// nominate makes every member hold the room the search gave it, as
// upstream's preemptor holds its node: lower-priority pods' Filter counts
// the nominated pods as present, so the victims' recreated pods cannot take
// the room back. The framework nominates pod itself from the result.
func (pl *CoschedGang) nominate(ctx context.Context, pod *v1.Pod, members []*v1.Pod, plan map[types.UID]string) {
	var others []*v1.Pod
	for _, m := range members {
		if m.UID == pod.UID {
			continue
		}
		if pi, err := framework.NewPodInfo(m); err == nil {
			pl.handle.AddNominatedPod(klog.FromContext(ctx), pi, &fwk.NominatingInfo{NominatedNodeName: plan[m.UID], NominatingMode: fwk.ModeOverride})
		}
		others = append(others, m)
	}
	go pl.publishNominations(others, plan)
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
// pod first; nil when the quorum cannot be reached from the pods that exist.
func (pl *CoschedGang) membersToPlace(key string, pg *schedv1alpha1.PodGroup, pod *v1.Pod) []*v1.Pod {
	bound := 0
	var pending []*v1.Pod
	for _, m := range pl.attemptMembers(key) {
		switch {
		case phaseOf(m) == memberDeleting, m.UID == pod.UID:
			continue
		case phaseOf(m) == memberBound:
			bound++
			continue
		}
		if m.Spec.SchedulerName == pod.Spec.SchedulerName {
			pending = append(pending, m)
		}
	}
	need := podgroup.MinMember(pg) - bound
	if need <= 0 || len(pending)+1 < need {
		return nil
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].Name < pending[j].Name })
	return append([]*v1.Pod{pod}, pending[:need-1]...)
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
