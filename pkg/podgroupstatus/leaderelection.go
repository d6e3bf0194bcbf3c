package podgroupstatus

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

const (
	// DefaultLeaseName is the Lease that elects the status writer. It is
	// separate from the scheduler's own Lease so that the writer can move
	// independently of the scheduling leader.
	DefaultLeaseName      = "cosched-podgroup-status"
	DefaultLeaseNamespace = "kube-system"

	defaultLeaseDuration = 15 * time.Second
	defaultRenewDeadline = 10 * time.Second
	defaultRetryPeriod   = 2 * time.Second

	// leaderWorkers is the number of sync workers while leading.
	leaderWorkers = 2
)

// LeaderElection configures RunWithLeaderElection. Zero values get defaults.
type LeaderElection struct {
	// Client is used for the Lease. Required.
	Client kubernetes.Interface
	// Namespace of the Lease, default kube-system.
	Namespace string
	// Name of the Lease, default cosched-podgroup-status.
	Name string
	// Identity of this candidate, default "<hostname>_<random suffix>".
	Identity string

	LeaseDuration time.Duration // default 15s
	RenewDeadline time.Duration // default 10s
	RetryPeriod   time.Duration // default 2s
}

func (le LeaderElection) withDefaults() (LeaderElection, error) {
	if le.Namespace == "" {
		le.Namespace = DefaultLeaseNamespace
	}
	if le.Name == "" {
		le.Name = DefaultLeaseName
	}
	if le.Identity == "" {
		hostname, err := os.Hostname()
		if err != nil {
			return le, fmt.Errorf("getting hostname for the leader election identity: %w", err)
		}
		// The suffix keeps two processes on one host apart.
		le.Identity = hostname + "_" + utilrand.String(8)
	}
	if le.LeaseDuration == 0 {
		le.LeaseDuration = defaultLeaseDuration
	}
	if le.RenewDeadline == 0 {
		le.RenewDeadline = defaultRenewDeadline
	}
	if le.RetryPeriod == 0 {
		le.RetryPeriod = defaultRetryPeriod
	}
	return le, nil
}

// RunWithLeaderElection runs the controller with two workers whenever this
// process holds the Lease, until ctx is done. Losing the Lease stops the
// workers and the process goes back to campaigning: the controller shares
// the scheduler's process, so it must not exit. It returns an error only for
// an invalid configuration, and nil once ctx is done.
func (c *Controller) RunWithLeaderElection(ctx context.Context, cfg LeaderElection) error {
	if cfg.Client == nil {
		return fmt.Errorf("leader election needs a client")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	logger := klog.LoggerWithValues(klog.FromContext(ctx), "lease", klog.KRef(cfg.Namespace, cfg.Name), "identity", cfg.Identity)
	ctx = klog.NewContext(ctx, logger)

	config := leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
			Client:     cfg.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		},
		Name:            cfg.Name,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStoppedLeading: func() {
				logger.Info("Stopped leading PodGroup status writing")
			},
			OnNewLeader: func(identity string) {
				logger.V(2).Info("New PodGroup status leader observed", "leader", identity)
			},
		},
	}

	for ctx.Err() == nil {
		if err := c.campaign(ctx, config); err != nil {
			return err
		}
		if ctx.Err() == nil {
			logger.Info("Lost the PodGroup status lease, campaigning again")
		}
	}
	return nil
}

// campaign runs one leader election term: it waits for the lease, runs the
// controller while holding it, and returns once the lease is lost or ctx is
// done and the workers have stopped.
func (c *Controller) campaign(ctx context.Context, config leaderelection.LeaderElectionConfig) error {
	// The elector calls OnStartedLeading in a goroutine of its own that may
	// still be starting when the term ends. Handing the context over through
	// a channel lets this term wait for Run, so two terms never overlap.
	leading := make(chan context.Context, 1)
	config.Callbacks.OnStartedLeading = func(leaderCtx context.Context) {
		leading <- leaderCtx
	}
	elector, err := leaderelection.NewLeaderElector(config)
	if err != nil {
		return fmt.Errorf("configuring leader election: %w", err)
	}

	termDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case leaderCtx := <-leading:
			klog.FromContext(ctx).Info("Started leading, writing PodGroup status")
			// leaderCtx is cancelled when the lease is lost.
			c.Run(leaderCtx, leaderWorkers)
		case <-termDone:
		}
	})
	// Run returns when ctx is done or the lease was lost.
	elector.Run(ctx)
	close(termDone)
	wg.Wait()
	return nil
}
