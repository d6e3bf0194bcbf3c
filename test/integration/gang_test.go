package integration

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/test/testutil"
)

const (
	bindTimeout = 30 * time.Second
	// holdFor is how long a test watches pods that must stay unbound; long
	// enough for several scheduling attempts and group backoffs.
	holdFor = 4 * time.Second
)

func TestGangScheduling(t *testing.T) {
	c := startCluster(t)

	t.Run("a gang that reaches quorum binds every member", func(t *testing.T) {
		s := c.newScenario(t, nodes("quorum", 2, "4", "8Gi"), nil)
		s.createGroup(testutil.PodGroup(s.ns, "train", 3))
		names := s.createPods(s.members("train", 3, "1", "1Gi")...)
		s.expectAllBound(names, bindTimeout)
	})

	t.Run("a gang one member short binds none, then all once the member arrives", func(t *testing.T) {
		s := c.newScenario(t, nodes("short", 2, "4", "8Gi"), nil)
		s.createGroup(testutil.PodGroup(s.ns, "train", 4))
		pods := s.members("train", 4, "500m", "512Mi")
		first := s.createPods(pods[:3]...)
		s.expectNoneBound(first, holdFor)
		s.createPods(pods[3])
		s.expectAllBound(testutil.Names(pods), bindTimeout)
	})

	t.Run("a gang that cannot fit holds nothing and smaller work behind it binds", func(t *testing.T) {
		// 3 CPU are free in total, but no node has room for a second 1-CPU
		// member: the gang of three cannot fit.
		s := c.newScenario(t, nodes("frag", 2, "1500m", "8Gi"), nil)
		s.createGroup(testutil.PodGroup(s.ns, "big", 3))
		big := s.createPods(s.members("big", 3, "1", "1Gi")...)
		s.expectEvent("big", "member needs cpu 1, best node has 500m", bindTimeout)

		plain := s.createPods(testutil.Pod(s.ns, "plain", "", "1", "1Gi"))
		s.expectAllBound(plain, bindTimeout)
		s.createGroup(testutil.PodGroup(s.ns, "small", 2))
		small := s.createPods(s.members("small", 2, "250m", "256Mi")...)
		s.expectAllBound(small, bindTimeout)
		s.expectNoneBound(big, holdFor)
	})

	t.Run("two gangs that fit only one at a time: one completes, no deadlock", func(t *testing.T) {
		s := c.newScenario(t, nodes("compete", 2, "2", "8Gi"), nil)
		s.createGroup(testutil.PodGroup(s.ns, "a", 3))
		s.createGroup(testutil.PodGroup(s.ns, "b", 3))
		a, b := s.members("a", 3, "1", "1Gi"), s.members("b", 3, "1", "1Gi")
		// Interleave the members so that neither gang arrives first.
		s.createPods(a[0], b[0], a[1], b[1], a[2], b[2])
		winner, loser := testutil.Names(a), testutil.Names(b)
		deadline := time.Now().Add(bindTimeout)
		for {
			na, err := testutil.BoundNodes(s.ctx, s.cs, s.ns, winner)
			if err != nil {
				t.Fatal(err)
			}
			nb, err := testutil.BoundNodes(s.ctx, s.cs, s.ns, loser)
			if err != nil {
				t.Fatal(err)
			}
			if testutil.CountBound(nb) == 3 {
				winner, loser = loser, winner
				break
			}
			if testutil.CountBound(na) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("neither gang completed: a: %s; b: %s", testutil.Describe(na), testutil.Describe(nb))
			}
			time.Sleep(200 * time.Millisecond)
		}
		s.expectNoneBound(loser, holdFor)
		// Once the winner is gone the loser fits and must complete.
		for _, name := range winner {
			if err := s.cs.CoreV1().Pods(s.ns).Delete(s.ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
				t.Fatal(err)
			}
		}
		s.expectAllBound(loser, bindTimeout)
	})

	t.Run("a placed member's Permit timeout releases every reservation", func(t *testing.T) {
		s := c.newScenario(t, nodes("timeout", 1, "4", "8Gi"), func(a *config.CoschedGangArgs) {
			a.PodGroupBackoffSeconds = ptr.To[int64](10)
		})
		s.createGroup(testutil.WithTimeout(testutil.PodGroup(s.ns, "slow", 3), 2))
		pods := s.members("slow", 3, "1", "1Gi")
		// The third member is held back by a scheduling gate (as a queueing
		// system would hold it), so the other two wait until the timeout.
		gate(pods[2])
		names := s.createPods(pods...)
		s.expectEvent("slow", "timed out after 2s waiting for quorum", bindTimeout)
		s.expectNoneBound(names, time.Second)
		// A pod that needs the room the members held now fits.
		plain := s.createPods(testutil.Pod(s.ns, "plain", "", "3", "1Gi"))
		s.expectAllBound(plain, bindTimeout)
		s.expectNoneBound(names, time.Second)
	})

	t.Run("a member deleted while the others wait rejects them at once", func(t *testing.T) {
		s := c.newScenario(t, nodes("deleted", 1, "4", "8Gi"), func(a *config.CoschedGangArgs) {
			a.PodGroupBackoffSeconds = ptr.To[int64](10)
		})
		s.createGroup(testutil.WithTimeout(testutil.PodGroup(s.ns, "job", 3), 300))
		pods := s.members("job", 3, "1", "1Gi")
		gate(pods[2])
		names := s.createPods(pods...)
		s.expectNoneBound(names, 2*time.Second)
		start := time.Now()
		if err := s.cs.CoreV1().Pods(s.ns).Delete(s.ctx, pods[2].Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		s.expectEvent("job", "was deleted", bindTimeout)
		if waited := time.Since(start); waited > 20*time.Second {
			t.Errorf("rejection took %s; it must not wait for the 300s timeout", waited)
		}
		plain := s.createPods(testutil.Pod(s.ns, "plain", "", "3", "1Gi"))
		s.expectAllBound(plain, bindTimeout)
		s.expectNoneBound(names[:2], time.Second)
	})

	t.Run("the PodGroup created after its pods releases them", func(t *testing.T) {
		s := c.newScenario(t, nodes("late", 1, "4", "8Gi"), nil)
		names := s.createPods(s.members("late", 3, "500m", "512Mi")...)
		s.expectNoneBound(names, 2*time.Second)
		s.createGroup(testutil.PodGroup(s.ns, "late", 3))
		s.expectAllBound(names, bindTimeout)
	})

	t.Run("a higher-priority gang goes before lower-priority plain pods", func(t *testing.T) {
		s := c.newStoppedScenario(t, nodes("prio", 1, "2", "8Gi"))
		s.createGroup(testutil.PodGroup(s.ns, "urgent", 2))
		var plain []*v1.Pod
		for _, name := range []string{"low-0", "low-1"} {
			plain = append(plain, testutil.WithPriorityClass(testutil.Pod(s.ns, name, "", "1", "1Gi"), testutil.LowPriority))
		}
		lowNames := s.createPods(plain...)
		gang := s.members("urgent", 2, "1", "1Gi")
		for _, p := range gang {
			testutil.WithPriorityClass(p, testutil.HighPriority)
		}
		gangNames := s.createPods(gang...)
		s.startScheduler(nil)
		s.expectAllBound(gangNames, bindTimeout)
		s.expectNoneBound(lowNames, time.Second)
	})

	t.Run("a higher-priority plain pod goes before a lower-priority gang", func(t *testing.T) {
		s := c.newStoppedScenario(t, nodes("prio2", 1, "2", "8Gi"))
		s.createGroup(testutil.PodGroup(s.ns, "batch", 2))
		gang := s.members("batch", 2, "1", "1Gi")
		for _, p := range gang {
			testutil.WithPriorityClass(p, testutil.LowPriority)
		}
		gangNames := s.createPods(gang...)
		urgent := s.createPods(testutil.WithPriorityClass(testutil.Pod(s.ns, "urgent", "", "1500m", "1Gi"), testutil.HighPriority))
		s.startScheduler(nil)
		s.expectAllBound(urgent, bindTimeout)
		s.expectNoneBound(gangNames, holdFor)
	})
}

// newStoppedScenario is newScenario without a scheduler, for tests that
// queue work before the scheduler starts.
func (c *cluster) newStoppedScenario(t *testing.T, ns []*v1.Node) *scenario {
	s := c.newScenario(t, ns, nil)
	s.stop()
	s.stop = func() {}
	return s
}

// gate holds a pod back from scheduling until the gate is removed.
func gate(pod *v1.Pod) {
	pod.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "example.com/hold"}}
}
