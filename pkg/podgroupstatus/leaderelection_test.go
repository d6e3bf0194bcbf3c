package podgroupstatus

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

func TestRunWithLeaderElection(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := newFixture(t, ctx, []*schedv1alpha1.PodGroup{podGroup(1, schedv1alpha1.PodGroupStatus{})}, []*v1.Pod{running("a")})

	// Failing lease renewals is how the lease gets lost, e.g. when the API
	// server is unreachable for longer than the renew deadline.
	var leaseOutage atomic.Bool
	f.kube.PrependReactor("update", "leases", func(clienttesting.Action) (bool, runtime.Object, error) {
		if leaseOutage.Load() {
			return true, nil, errors.New("injected lease outage")
		}
		return false, nil, nil
	})

	cfg := LeaderElection{
		Client:        f.kube,
		Identity:      "candidate-1",
		LeaseDuration: time.Second,
		RenewDeadline: 500 * time.Millisecond,
		RetryPeriod:   100 * time.Millisecond,
	}
	done := make(chan error, 1)
	go func() { done <- f.controller.RunWithLeaderElection(ctx, cfg) }()

	waitForPodGroup(t, ctx, f, func(pg *schedv1alpha1.PodGroup) bool {
		return pg.Status.Phase == schedv1alpha1.PodGroupRunning && pg.Status.Running == 1
	})
	if holder := leaseHolder(t, ctx, f); holder != "candidate-1" {
		t.Fatalf("lease holder = %q, want candidate-1", holder)
	}

	leaseOutage.Store(true)
	waitFor(t, ctx, "workers to stop after the lease was lost", func() bool { return !f.controller.running() })
	leaseOutage.Store(false)
	waitFor(t, ctx, "workers to start after the lease was re-acquired", f.controller.running)

	// The second term picks up changes again.
	if _, err := f.kube.CoreV1().Pods(testNamespace).Create(ctx, running("b"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	waitForPodGroup(t, ctx, f, func(pg *schedv1alpha1.PodGroup) bool { return pg.Status.Running == 2 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunWithLeaderElection() = %v", err)
		}
	case <-time.After(pollTimeout):
		t.Fatal("RunWithLeaderElection did not return after cancellation")
	}
	if f.controller.running() {
		t.Error("workers still running after RunWithLeaderElection returned")
	}
	if holder := leaseHolder(t, context.Background(), f); holder != "" {
		t.Errorf("lease holder after shutdown = %q, want the lease released", holder)
	}
}

func TestRunWithLeaderElectionRejectsBadConfig(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t, ctx, nil, nil)
	tests := map[string]LeaderElection{
		"no client": {},
		"renew deadline beyond lease duration": {
			Client: f.kube, LeaseDuration: time.Second, RenewDeadline: 2 * time.Second,
		},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if err := f.controller.RunWithLeaderElection(ctx, cfg); err == nil {
				t.Error("RunWithLeaderElection() succeeded, want a configuration error")
			}
		})
	}
}

func TestLeaderElectionDefaults(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Skipf("no hostname: %v", err)
	}
	got, err := LeaderElection{}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults() error = %v", err)
	}
	suffix, found := strings.CutPrefix(got.Identity, hostname+"_")
	if !found || len(suffix) == 0 {
		t.Errorf("identity = %q, want %q followed by a random suffix", got.Identity, hostname+"_")
	}
	identity := got.Identity
	got.Identity = ""
	want := LeaderElection{
		Namespace:     "kube-system",
		Name:          "cosched-podgroup-status",
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("withDefaults() mismatch (-want +got):\n%s", diff)
	}

	other, _ := LeaderElection{}.withDefaults()
	if other.Identity == identity {
		t.Errorf("two processes got the same identity %q", other.Identity)
	}
}

func leaseHolder(t *testing.T, ctx context.Context, f *fixture) string {
	t.Helper()
	lease, err := f.kube.CoordinationV1().Leases("kube-system").Get(ctx, "cosched-podgroup-status", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting lease: %v", err)
	}
	return ptr.Deref(lease.Spec.HolderIdentity, "")
}

func waitFor(t *testing.T, ctx context.Context, what string, condition func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, pollInterval, pollTimeout, true, func(context.Context) (bool, error) {
		return condition(), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
