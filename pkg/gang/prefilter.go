package gang

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"k8s.io/apimachinery/pkg/api/equality"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/capacity"
	"github.com/cosched/cosched/pkg/podgroup"
)

// PreFilter turns a member away before it reserves anything when its group
// is backing off, has lost its quorum, or cannot fit as a whole.
//
// The fit check runs once per group attempt, for the first member only: the
// members after it follow while the group holds reservations, and checking
// again would cost a pass over the nodes per member.
func (pl *CoschedGang) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	key, pg := pl.podGroupOf(pod)
	if key == "" {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if _, err := state.Read(simulationKey); err == nil {
		// The planner runs PreFilter for a member; the group is its
		// business, and no plan exists yet for Filter to enforce.
		return nil, fwk.NewStatus(fwk.Skip)
	}
	status, noFit := pl.preFilterMember(ctx, key, pg, pod, nodes)
	if !status.IsSuccess() {
		// PostFilter runs after a PreFilter rejection too; it must know the
		// group's fate is already settled, and whether preemption may help.
		state.Write(preFilterRejectedKey, preFilterRejected{noFit: noFit})
		return nil, status
	}
	if plan := pl.groups.planOf(key); plan != nil {
		if !plan.Shortcut {
			return planFor(state, key, plan, pod), nil
		}
		if res := pl.followShortcut(state, key, plan, pod); res != nil {
			return res, nil
		}
	} else if res, s := pl.joinDomain(state, key, pl.topologyKeyOf(pg, pod), pod, nodes); s != nil {
		state.Write(preFilterRejectedKey, preFilterRejected{})
		return nil, s
	} else if res != nil {
		return res, nil
	}
	// Nothing for Filter to enforce: Skip spares it a call per node.
	return nil, fwk.NewStatus(fwk.Skip)
}

// preFilterMember decides whether pod may try; noFit is set when the group
// was turned away because it does not fit as a whole.
func (pl *CoschedGang) preFilterMember(ctx context.Context, key string, pg *schedv1alpha1.PodGroup, pod *v1.Pod, nodes []fwk.NodeInfo) (status *fwk.Status, noFit bool) {
	if pg == nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(
			"PodGroup %s does not exist: create it, or remove the pod's %s label; the pod waits for it", key, podgroup.Label)), false
	}
	attemptStart := pl.groups.reservedCount(key) == 0
	if reason, left, ok := pl.groups.backingOff(key, pl.clock.Now()); ok && attemptStart {
		// The members that woke during the backoff come back when it ends.
		pl.activateAfterBackoff(key)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("PodGroup %s is backing off for %s after it was rejected: %s", key, left.Round(100*time.Millisecond), reason)), false
	}
	c := pl.countMembers(key, pod, attemptStart)
	quorum := podgroup.MinMember(pg)
	if c.live < quorum {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("waiting for quorum: %d/%d pods of PodGroup %s exist", c.live, quorum, key)), false
	}
	if !attemptStart {
		return nil, false
	}
	if schedulers, priorities := memberDisagreement(podgroup.Members(pl.pods, key)); schedulers != "" {
		msg := fmt.Sprintf("members name different schedulers (%s): every member of a group must use the same schedulerName, or the others are never placed with it", schedulers)
		pl.rejectGroup(key, pg, pod, "members_disagree", msg, false)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s: %s", key, msg)), false
	} else if priorities != "" {
		// Allowed (a driver may outrank its executors), but the members are
		// queued apart and the group preempts with its lowest priority.
		pl.handle.EventRecorder().Eventf(pg, nil, v1.EventTypeWarning, "MembersDisagree", "Scheduling", podgroup.TruncateNote(fmt.Sprintf(
			"members have different priorities (%s): they are queued apart, and the group preempts only pods below its lowest member's priority", priorities)))
	}
	// Planning must see the room as it is: nominations the group's own
	// pending members still carry (from an earlier wait at Permit or an
	// earlier preemption) would count as taken. While the victims of the
	// group's preemption terminate, the nominations keep others off the
	// room they free.
	if pl.groups.preemptionPending(key, pl.clock.Now(), pl.victimPresent) == 0 {
		for _, m := range c.pending {
			if m.UID != pod.UID {
				pl.handle.DeleteNominatedPodIfExists(m)
			}
		}
	}
	// The members still placed (a member was recreated, or the quorum
	// raised) hold a topology group's domain: the rest must join them.
	placedIn := ""
	if topologyKey := pl.topologyKeyOf(pg, pod); topologyKey != "" && c.placed > 0 && c.placed < quorum {
		value, _, problem := pl.placedDomain(key, topologyKey, "")
		if problem != "" {
			// No room can be made for that: no preemption.
			pl.rejectGroup(key, pg, pod, "domain_unavailable", problem, false)
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s: %s", key, problem)), false
		}
		placedIn = value
	}
	if msg := pl.groupDoesNotFit(ctx, pg, c, placedIn, nodes); msg != "" {
		pl.rejectGroup(key, pg, pod, "no_fit", msg, false)
		klog.FromContext(ctx).V(3).Info("Pod group does not fit", "podGroup", key, "why", msg)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s cannot fit as a whole: %s", key, msg)), true
	}
	return nil, false
}

// memberDisagreement describes how a group's live members differ in
// schedulerName and in priority ("" when they agree), as "value: members"
// lists.
func memberDisagreement(members []*v1.Pod) (schedulers, priorities string) {
	byScheduler := map[string][]string{}
	byPriority := map[string][]string{}
	for _, m := range members {
		if m.DeletionTimestamp != nil {
			continue
		}
		byScheduler[m.Spec.SchedulerName] = append(byScheduler[m.Spec.SchedulerName], m.Name)
		p := fmt.Sprint(corev1helpers.PodPriority(m))
		byPriority[p] = append(byPriority[p], m.Name)
	}
	return describeSplit(byScheduler), describeSplit(byPriority)
}

func describeSplit(split map[string][]string) string {
	if len(split) < 2 {
		return ""
	}
	var parts []string
	for _, value := range slices.Sorted(maps.Keys(split)) {
		names := split[value]
		slices.Sort(names)
		if len(names) > 3 {
			names = append(names[:3:3], fmt.Sprintf("%d more", len(split[value])-3))
		}
		parts = append(parts, fmt.Sprintf("%s: %s", value, strings.Join(names, ", ")))
	}
	return strings.Join(parts, "; ")
}

// preFilterRejectedKey marks, in a cycle's state, a member this plugin's
// PreFilter turned away.
const preFilterRejectedKey fwk.StateKey = Name + "/prefilter-rejected"

type preFilterRejected struct {
	// noFit: the group was turned away because it does not fit as a whole.
	noFit bool
}

func (r preFilterRejected) Clone() fwk.StateData { return r }

// PreFilterExtensions is nil: the plugin keeps no per-node state to update.
func (pl *CoschedGang) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// groupDoesNotFit returns why the members the group still needs cannot all
// get a place, or "" when they can. It checks minResources against the
// cluster's free total (what scheduler-plugins users rely on), then packs the
// pending members into the nodes' free room one node at a time.
//
// A group that must share a topology domain is planned instead of packed:
// the plan is stricter (real Filter plugins, one domain) and is kept for the
// members that follow. placedIn, when set, is the domain its placed members
// already hold, the only one the plan may use.
func (pl *CoschedGang) groupDoesNotFit(ctx context.Context, pg *schedv1alpha1.PodGroup, c memberCounts, placedIn string, nodes []fwk.NodeInfo) string {
	quorum := podgroup.MinMember(pg)
	need := quorum - c.placed
	if need <= 0 {
		// The quorum is placed: later members join a group that runs.
		return ""
	}
	if len(pg.Spec.MinResources) > 0 {
		want := capacity.FromList(pg.Spec.MinResources)
		// Members already placed hold part of minResources themselves.
		held := capacity.Vector{}
		for _, pod := range podgroup.Members(pl.pods, podgroup.Key(pg.Namespace, pg.Name)) {
			if pod.Spec.NodeName != "" && pod.DeletionTimestamp == nil {
				held = held.Add(capacity.RequestOf(pod))
			}
		}
		free := make([]capacity.Node, len(nodes))
		for i, ni := range nodes {
			free[i] = capacity.NodeOf(ni)
		}
		have := capacity.TotalFree(free).Add(held)
		if missing := want.Missing(have); missing != "" {
			return fmt.Sprintf("minResources needs %s %s, the cluster has %s free", missing,
				capacity.Format(missing, want.Get(missing)), capacity.Format(missing, have.Get(missing)))
		}
	}
	if len(c.pending) < need {
		// Quorum counted members that are placed or being deleted; the rest
		// arrive as they are created.
		return ""
	}
	if len(c.pending) > 0 {
		if topologyKey := pl.topologyKeyOf(pg, c.pending[0]); topologyKey != "" {
			key := podgroup.Key(pg.Namespace, pg.Name)
			plan, why := pl.planGroup(ctx, topologyKey, placedIn, need, c.pending, nodes)
			if plan == nil {
				return fmt.Sprintf("no %s", why)
			}
			plansMade.WithLabelValues("atomic").Inc()
			pl.groups.setPlan(key, plan)
			// Planning takes a while: the PodGroup may be gone by now.
			pl.forgetIfGone(key)
			return ""
		}
	}
	requests := make([]capacity.Vector, len(c.pending))
	for i, pod := range c.pending {
		requests[i] = capacity.RequestOf(pod)
	}
	// For packing, only the nodes the members may use count: their node
	// selection and the taints they tolerate rule out the rest.
	res := capacity.PackFrom(newEligibleNodes(klog.FromContext(ctx), c.pending, nodes), requests)
	if res.Placed >= need {
		pl.planWholeGroup(ctx, pg, need, c.pending, nodes)
		return ""
	}
	return fmt.Sprintf("%d/%d members fit (%d placed, %d more fit of %d needed); %s",
		c.placed+res.Placed, quorum, c.placed, res.Placed, need, res.Blocked)
}

// planWholeGroup plans a big group that shares no domain ahead, with the
// cluster as its one domain (wholeGroupPlanMinMembers): one pass of the
// Filter plugins at its first member instead of a search of the cluster per
// member. The plan is a shortcut only; without one the members search as
// usual, so no plan is no failure.
func (pl *CoschedGang) planWholeGroup(ctx context.Context, pg *schedv1alpha1.PodGroup, need int, pending []*v1.Pod, nodes []fwk.NodeInfo) {
	from := int(*pl.args.WholeGroupPlanMinMembers)
	if pl.args.PlacementStrategy != config.PlacementAtomic || from == 0 || len(pending) < from {
		return
	}
	key := podgroup.Key(pg.Namespace, pg.Name)
	plan, why := pl.planGroup(ctx, "", "", need, pending, nodes)
	if plan == nil {
		klog.FromContext(ctx).V(3).Info("No whole-group plan; members search the cluster", "podGroup", key, "why", why)
		return
	}
	plan.Shortcut = true
	// Members the plan does not cover search the whole cluster.
	plan.DomainNodes = nil
	plansMade.WithLabelValues("shortcut").Inc()
	pl.groups.setPlan(key, plan)
	pl.forgetIfGone(key)
}

// eligibleNodes serves the fit check the nodes whose free room the pending
// members may use: those their required node affinity selects and whose
// NoSchedule/NoExecute taints they tolerate. Members of a group usually
// share a template; when they do not agree, every node is kept, which keeps
// the check optimistic rather than wrong. Nodes are looked at only as the
// check reaches them.
type eligibleNodes struct {
	logger      klog.Logger
	nodes       []fwk.NodeInfo
	all         bool
	required    nodeaffinity.RequiredNodeAffinity
	tolerations []v1.Toleration
}

func newEligibleNodes(logger klog.Logger, pending []*v1.Pod, nodes []fwk.NodeInfo) *eligibleNodes {
	e := &eligibleNodes{logger: logger, nodes: nodes, all: len(pending) == 0}
	if e.all {
		return e
	}
	rep := pending[0]
	for _, p := range pending[1:] {
		if !equality.Semantic.DeepEqual(p.Spec.NodeSelector, rep.Spec.NodeSelector) ||
			!equality.Semantic.DeepEqual(nodeAffinityOf(p), nodeAffinityOf(rep)) ||
			!equality.Semantic.DeepEqual(p.Spec.Tolerations, rep.Spec.Tolerations) {
			e.all = true
			return e
		}
	}
	e.required = nodeaffinity.GetRequiredNodeAffinity(rep)
	e.tolerations = rep.Spec.Tolerations
	return e
}

func (e *eligibleNodes) Len() int { return len(e.nodes) }

func (e *eligibleNodes) At(i int) (capacity.Node, bool) {
	ni := e.nodes[i]
	if e.all {
		return capacity.NodeOf(ni), true
	}
	node := ni.Node()
	if node == nil {
		return capacity.Node{}, false
	}
	if ok, _ := e.required.Match(node); !ok {
		return capacity.Node{}, false
	}
	if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(e.logger, node.Spec.Taints, e.tolerations, hardTaint, false); untolerated {
		return capacity.Node{}, false
	}
	return capacity.NodeOf(ni), true
}

func hardTaint(t *v1.Taint) bool {
	return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
}

func nodeAffinityOf(p *v1.Pod) *v1.NodeAffinity {
	if p.Spec.Affinity == nil {
		return nil
	}
	return p.Spec.Affinity.NodeAffinity
}
