package gang

import (
	"fmt"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/pkg/preemption"
)

// The gang guard: cosched's own preemption takes gangs whole, but another
// scheduler in the cluster (the default one, for its high-priority pods) may
// preempt a single member of a running gang. The rest would run on, below
// the group's minMember, holding nodes for a job that cannot make progress.
// When a bound member is marked as preempted by a scheduler and fewer than
// minMember of its group remain, the guard evicts the remaining members too.
// Every replica's informers see the preemption, so a standby may act as
// well; evicting a pod twice is harmless.

// guardDelay lets a preemption that already takes the whole gang (cosched's
// own) finish first, so the guard only acts on what is really left.
const guardDelay = 5 * time.Second

// preemptedByScheduler reports whether a scheduler marked pod as a
// preemption victim.
func preemptedByScheduler(pod *v1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.DisruptionTarget && c.Status == v1.ConditionTrue && c.Reason == v1.PodReasonPreemptionByScheduler {
			return true
		}
	}
	return false
}

// guardAfterPreemption schedules the check for victim's group.
func (pl *CoschedGang) guardAfterPreemption(victim *v1.Pod) {
	key := podgroup.KeyOf(victim)
	if key == "" || victim.Spec.NodeName == "" {
		return
	}
	// One check per group, however many of its members were preempted.
	if _, pending := pl.guarding.LoadOrStore(key, true); pending {
		return
	}
	pl.clock.AfterFunc(guardDelay, func() {
		pl.guarding.Delete(key)
		if pl.ctx.Err() == nil {
			pl.evictBelowQuorum(key, victim)
		}
	})
}

// evictBelowQuorum evicts the group's remaining bound members when the
// preemption of victim left fewer than minMember of them.
func (pl *CoschedGang) evictBelowQuorum(key string, victim *v1.Pod) {
	_, pg := pl.podGroupOf(victim)
	if pg == nil {
		return
	}
	var remaining []*v1.Pod
	for _, m := range pl.memberPods(key) {
		if phaseOf(m) == memberBound && !preemptedByScheduler(m) {
			remaining = append(remaining, m)
		}
	}
	quorum := podgroup.MinMember(pg)
	// Members on their way to a node (reserved, binding) count as staying.
	coming := 0
	for uid := range pl.groups.reservedMembers(key) {
		if !slices.ContainsFunc(remaining, func(p *v1.Pod) bool { return p.UID == uid }) {
			coming++
		}
	}
	if len(remaining) == 0 || len(remaining)+coming >= quorum {
		return
	}
	logger := klog.FromContext(pl.ctx)
	why := fmt.Sprintf("member %s/%s was preempted and only %d of the %d members the group needs remain", victim.Namespace, victim.Name, len(remaining), quorum)
	logger.V(2).Info("Evicting the rest of a preempted gang", "podGroup", key, "victim", klog.KObj(victim), "remaining", len(remaining))
	groupRejections.WithLabelValues("member_preempted").Inc()
	evictor := pl.evictor()
	// The gang is already broken: a budget must not keep half of it.
	evictor.Force = true
	if _, err := evictor.Evict(pl.ctx, preemption.UnitsOf(remaining), nil, why); err != nil {
		logger.Error(err, "Evicting the rest of a preempted gang", "podGroup", key)
	}
}
