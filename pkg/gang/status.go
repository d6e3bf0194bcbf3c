package gang

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	schedv1alpha1informers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroupstatus"
)

// startStatusWriter runs the PodGroup status writer inside the scheduler
// process, under its own Lease, so that users need no second deployment and
// only one replica writes. It watches member pods of every phase (the
// scheduler's own pod cache drops finished pods, which status must count).
func startStatusWriter(ctx context.Context, handle fwk.Handle, client versioned.Interface, pgInformer schedv1alpha1informers.PodGroupInformer, args *config.CoschedGangArgs) error {
	podFactory := podgroupstatus.NewMemberPodInformerFactory(handle.ClientSet(), 0)
	ctrl, err := podgroupstatus.NewController(handle.ClientSet(), client, pgInformer, podFactory.Core().V1().Pods(), handle.EventRecorder())
	if err != nil {
		return fmt.Errorf("building the PodGroup status writer: %w", err)
	}
	go func() {
		// Start once the scheduler has started its informers (the
		// PodGroup informer is one of them), not while it is being built.
		if !syncedAfterStart(ctx, pgInformer.Informer(), 0) {
			return
		}
		podFactory.Start(ctx.Done())
		err := ctrl.RunWithLeaderElection(ctx, podgroupstatus.LeaderElection{
			Client:    handle.ClientSet(),
			Namespace: args.StatusLeaseNamespace,
		})
		if err != nil {
			klog.FromContext(ctx).Error(err, "PodGroup status writer stopped")
		}
	}()
	return nil
}

// syncedAfterStart waits until informer has synced, which happens only after
// the scheduler started its informer factory, and reports whether it did.
// It gives up when ctx ends or, if patience is positive, that long after the
// informer started (not before: a scheduler may wait long for its lease).
func syncedAfterStart(ctx context.Context, informer cache.SharedIndexInformer, patience time.Duration) bool {
	started, _ := informer.(interface{ HasStarted() bool })
	var startedAt time.Time
	_ = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		if informer.HasSynced() {
			return true, nil
		}
		if startedAt.IsZero() && (started == nil || started.HasStarted()) {
			startedAt = time.Now()
		}
		return patience > 0 && !startedAt.IsZero() && time.Since(startedAt) > patience, nil
	})
	return informer.HasSynced()
}
