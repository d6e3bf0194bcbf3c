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

	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

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
	status, why := pl.preFilterMember(ctx, key, pg, pod, nodes)
	if !status.IsSuccess() {
		// PostFilter runs after a PreFilter rejection too; it must know the
		// group's fate is already settled, and whether preemption may help.
		state.Write(preFilterRejectedKey, why)
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

// preFilterMember decides whether pod may try, and when not, says why for
// PostFilter.
func (pl *CoschedGang) preFilterMember(ctx context.Context, key string, pg *schedv1alpha1.PodGroup, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.Status, preFilterRejected) {
	if pg == nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(
			"PodGroup %s does not exist: create it, or remove the pod's %s label; the pod waits for it", key, podgroup.Label)), preFilterRejected{}
	}
	attemptStart := pl.groups.reservedCount(key) == 0
	if attemptStart {
		if status, why := pl.mayStartAttempt(ctx, key, pg, pod, nodes); status != nil {
			return status, why
		}
	}
	c := pl.countMembers(key, pod, attemptStart)
	quorum := podgroup.MinMember(pg)
	if c.live < quorum {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("waiting for quorum: %d/%d pods of PodGroup %s exist", c.live, quorum, key)), preFilterRejected{}
	}
	if !attemptStart {
		return nil, preFilterRejected{}
	}
	if schedulers, priorities := memberDisagreement(pl.attemptMembers(key)); schedulers != "" {
		msg := fmt.Sprintf("members name different schedulers (%s): every member of a group must use the same schedulerName, or the others are never placed with it", schedulers)
		pl.rejectGroup(key, pg, pod, "members_disagree", msg, false)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s: %s", key, msg)), preFilterRejected{}
	} else if priorities != "" {
		// Allowed (a driver may outrank its executors), but the members are
		// queued apart and the group preempts with its lowest priority.
		pl.handle.EventRecorder().Eventf(pg, nil, v1.EventTypeWarning, "MembersDisagree", "Scheduling", podgroup.TruncateNote(fmt.Sprintf(
			"members have different priorities (%s): they are queued apart, and the group preempts only pods below its lowest member's priority", priorities)))
	}
	// Planning must see the room as it is: nominations the group's own
	// pending members still carry (from an earlier wait at Permit or an
	// earlier preemption) would count as taken. (While the victims of the
	// group's preemption terminated, the members were turned away above and
	// the nominations kept others off the room they free.) The attempt runs
	// back to back: the first member to wait activates the rest.
	for _, m := range c.pending {
		if m.UID != pod.UID {
			pl.handle.DeleteNominatedPodIfExists(m)
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
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s: %s", key, problem)), preFilterRejected{}
		}
		placedIn = value
	}
	if msg := pl.groupDoesNotFit(ctx, pg, c, placedIn, nodes); msg != "" {
		pl.rejectGroup(key, pg, pod, "no_fit", msg, false)
		klog.FromContext(ctx).V(3).Info("Pod group does not fit", "podGroup", key, "why", msg)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s cannot fit as a whole: %s", key, msg)), preFilterRejected{noFit: true}
	}
	return nil, preFilterRejected{}
}

// mayStartAttempt turns away the member that would start an attempt while
// the group waits for the victims of its preemption, or backs off; nil when
// it may go on. A group that backs off because it did not fit goes on when
// an event that can make room reached it and it now fits.
func (pl *CoschedGang) mayStartAttempt(ctx context.Context, key string, pg *schedv1alpha1.PodGroup, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.Status, preFilterRejected) {
	if left := pl.groups.preemptionPending(key, pl.clock.Now(), pl.victimPresent); left > 0 {
		// Not a rejection: no backoff, no event. The members keep their
		// nominated nodes (lower-priority pods' Filter counts them as
		// taken) and come back as the victims go (isSchedulableAfterRoomFreed).
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(
			"PodGroup %s waits for %d preempted pod(s) to terminate; its members hold their nominated nodes", key, left)), preFilterRejected{victimsLeft: true}
	}
	reason, left, backingOff := pl.groups.backingOff(key, pl.clock.Now())
	if !backingOff {
		return nil, preFilterRejected{}
	}
	if !pl.groups.takeRoomRecheck(key, pl.clock.Now()) || !pl.fitsByPacking(ctx, key, pg, pod, nodes) {
		// The members that woke during the backoff come back when it ends.
		pl.activateAfterBackoff(key)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("PodGroup %s is backing off for %s after it was rejected: %s", key, left.Round(100*time.Millisecond), reason)), preFilterRejected{}
	}
	// Room appeared for a group that did not fit: waiting out the backoff
	// would only leave the room to others.
	pl.groups.endBackoff(key)
	klog.FromContext(ctx).V(3).Info("Room appeared for a pod group that did not fit; it tries now", "podGroup", key, "backoffLeft", left)
	return nil, preFilterRejected{}
}

// memberDisagreement describes how a group's live members differ in
// schedulerName and in priority ("" when they agree), as "value: members"
// lists.
func memberDisagreement(members []*v1.Pod) (schedulers, priorities string) {
	byScheduler := map[string][]string{}
	byPriority := map[string][]string{}
	for _, m := range members {
		if phaseOf(m) == memberDeleting {
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
	if msg := pl.minResourcesShortfall(pg, nodes); msg != "" {
		return msg
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
			pl.groups.setPlan(key, plan, pl.clock.Now())
			// Planning takes a while: the PodGroup may be gone by now.
			pl.forgetIfGone(key)
			return ""
		}
	}
	res := pl.packPending(ctx, c.pending, nodes)
	if res.Placed >= need {
		pl.planWholeGroup(ctx, pg, need, c.pending, nodes)
		return ""
	}
	return fmt.Sprintf("%d/%d members fit (%d placed, %d more fit of %d needed); %s",
		c.placed+res.Placed, quorum, c.placed, res.Placed, need, res.Blocked)
}

// fitsByPacking is the fit check's arithmetic alone (minResources, then the
// node-by-node packing), without planning or side effects: whether room
// appeared for a group that backs off because it did not fit. A topology
// group is planned when its attempt starts, so packing is optimistic here.
func (pl *CoschedGang) fitsByPacking(ctx context.Context, key string, pg *schedv1alpha1.PodGroup, pod *v1.Pod, nodes []fwk.NodeInfo) bool {
	c := pl.countMembers(key, pod, true)
	need := podgroup.MinMember(pg) - c.placed
	if need <= 0 {
		return true
	}
	if pl.minResourcesShortfall(pg, nodes) != "" {
		return false
	}
	return len(c.pending) < need || pl.packPending(ctx, c.pending, nodes).Placed >= need
}

// minResourcesShortfall checks minResources against the cluster's free total
// (what scheduler-plugins users rely on); "" when it is met or unset.
func (pl *CoschedGang) minResourcesShortfall(pg *schedv1alpha1.PodGroup, nodes []fwk.NodeInfo) string {
	if len(pg.Spec.MinResources) == 0 {
		return ""
	}
	want := capacity.FromList(pg.Spec.MinResources)
	// Members already placed hold part of minResources themselves.
	held := capacity.Vector{}
	for _, pod := range pl.attemptMembers(podgroup.Key(pg.Namespace, pg.Name)) {
		if phaseOf(pod) == memberBound {
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
	return ""
}

// packPending packs the pending members into the free room of the nodes
// they may use: their node selection and the taints they tolerate rule out
// the rest, and room nominated to pods of at least the group's priority
// (another group's preemption, a waiting member) counts as taken, as the
// scheduler's Filter counts it.
func (pl *CoschedGang) packPending(ctx context.Context, pending []*v1.Pod, nodes []fwk.NodeInfo) capacity.PackResult {
	requests := make([]capacity.Vector, len(pending))
	for i, pod := range pending {
		requests[i] = capacity.RequestOf(pod)
	}
	return capacity.PackFrom(capacity.NewEligible(klog.FromContext(ctx), pending, nodes, pl.nominatedPodsOn), requests)
}

// planWholeGroup plans, ahead, a group that shares no domain, with the
// cluster as its one domain, when it is big (wholeGroupPlanMinMembers): one
// pass of the Filter plugins at its first member instead of a search of the
// cluster per member. A group of mixed sizes is planned too, whatever its
// size: the fit check packed it largest first, and members placed one by
// one in queue order and spread by scoring can let small ones take the room
// a big one needs, so that a group that fits is turned down. The plan is a
// shortcut only; without one the members search as usual, so no plan is no
// failure.
func (pl *CoschedGang) planWholeGroup(ctx context.Context, pg *schedv1alpha1.PodGroup, need int, pending []*v1.Pod, nodes []fwk.NodeInfo) {
	if pl.args.PlacementStrategy != config.PlacementAtomic {
		return
	}
	from := int(*pl.args.WholeGroupPlanMinMembers)
	if (from == 0 || len(pending) < from) && !mixedSizes(pending) {
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
	pl.groups.setPlan(key, plan, pl.clock.Now())
	pl.forgetIfGone(key)
}

// mixedSizes reports whether the members do not all request the same.
func mixedSizes(pods []*v1.Pod) bool {
	if len(pods) < 2 {
		return false
	}
	first := capacity.RequestOf(pods[0])
	for _, p := range pods[1:] {
		if !capacity.RequestOf(p).Equal(first) {
			return true
		}
	}
	return false
}
