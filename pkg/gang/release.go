package gang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/pkg/preemption"
)

// A member can fail to bind after its group was let through Permit (its node
// vanished, an admission webhook refused the binding, the API server failed).
// Its siblings may already be bound, and a binding cannot be undone: the
// only way back to "none bound" is to evict them. cosched does that when
// every sibling has a controller that recreates it, so the group retries
// whole; a sibling without one (a bare pod) would be lost for good, so then
// the siblings keep their nodes and the failed member retries alone, with a
// warning on the PodGroup.

// releaseAfterBindFailure handles the bind failure of failed, a member
// admitted with siblings.
func (pl *CoschedGang) releaseAfterBindFailure(ctx context.Context, key string, pg *schedv1alpha1.PodGroup, failed *v1.Pod, nodeName string, siblings []types.UID) {
	logger := klog.FromContext(ctx)
	if pg == nil {
		return
	}
	admitted := sets.New(siblings...)
	// kept are the members that hold a node or will: the siblings admitted
	// with the failed member, and members bound before (a member recreated
	// and bound while the group still ran counts too).
	var kept []*v1.Pod
	for _, m := range pl.memberPods(key) {
		if m.UID == failed.UID || phaseOf(m) == memberDeleting {
			continue
		}
		if admitted.Has(m.UID) || phaseOf(m) == memberBound {
			kept = append(kept, m)
		}
	}
	quorum := podgroup.MinMember(pg)
	if len(kept) >= quorum {
		// The group holds its quorum without the failed member, which
		// joins later like any member of a running group.
		logger.V(2).Info("Admitted member failed to bind; its group keeps its quorum", "pod", klog.KObj(failed), "podGroup", key)
		return
	}
	cause := fmt.Sprintf("member %s/%s failed to bind to node %s after the group was admitted", failed.Namespace, failed.Name, nodeName)
	if pl.keepBareSiblings(logger, pg, failed, kept, cause) {
		return
	}
	groupRejections.WithLabelValues("bind_failed").Inc()
	pl.groups.endAdmission(key)
	backoff := pl.groups.bindFailed(key, cause, pl.clock.Now(), pl.backoff())
	pl.activateAfterBackoff(key)
	// Siblings still before their bind stop there; the rest are evicted.
	msg := cause + "; the group is released to retry whole"
	for _, m := range kept {
		if p := pl.handle.GetPodInPreBind(m.UID); p != nil {
			p.CancelPod(msg)
		}
	}
	pl.handle.EventRecorder().Eventf(pg, failed, v1.EventTypeWarning, "GangReleased", "Binding", podgroup.TruncateNote(fmt.Sprintf(
		"%s; releasing %d bound or admitted sibling(s) (their controllers recreate them) so the group retries whole in %s", cause, len(kept), backoff)))
	evictor := pl.evictor()
	evictor.Action = "Released"
	// The PodGroup's event is the one above.
	evictor.GroupObject = nil
	// Part of the gang is bound already: a budget must not keep the rest of
	// it there.
	evictor.Force = true
	units := preemption.UnitsOf(kept)
	go func() {
		// Unreserve must not wait on API calls; the scheduler's context
		// outlives the cycle.
		if _, err := evictor.Evict(pl.ctx, units, pg, cause); err != nil {
			logger.Error(err, "Releasing the siblings of a member that failed to bind", "podGroup", key)
		}
	}()
}

// keepBareSiblings reports whether a sibling that must be released has no
// controller to recreate it; the siblings then keep their nodes, with a
// warning on the PodGroup, and the failed member retries alone.
func (pl *CoschedGang) keepBareSiblings(logger klog.Logger, pg *schedv1alpha1.PodGroup, failed *v1.Pod, kept []*v1.Pod, cause string) bool {
	var bare []string
	for _, m := range kept {
		if metav1.GetControllerOf(m) == nil {
			bare = append(bare, m.Name)
		}
	}
	if len(bare) == 0 {
		return false
	}
	groupRejections.WithLabelValues("bind_failed_kept").Inc()
	logger.Info("Admitted member failed to bind; siblings without a controller keep their nodes", "pod", klog.KObj(failed), "podGroup", podgroup.Key(pg.Namespace, pg.Name), "bare", bare)
	pl.handle.EventRecorder().Eventf(pg, failed, v1.EventTypeWarning, "GangBindFailed", "Binding", podgroup.TruncateNote(fmt.Sprintf(
		"%s; %d sibling(s) keep their nodes because no controller would recreate them (%v), so the group is below its quorum of %d until %s binds",
		cause, len(kept), bare, podgroup.MinMember(pg), failed.Name)))
	return true
}
