package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// TestFaults checks all-or-nothing where things go wrong.
func TestFaults(t *testing.T) {
	c := startCluster(t)

	t.Run("scheduler restarted while members wait at Permit: the gang binds whole or not at all", func(t *testing.T) {
		s := c.newScenario(t, nodes("restart", 2, "4", "8Gi"), nil)
		s.createGroup(testutil.WithTimeout(testutil.PodGroup(s.ns, "job", 3), 300))
		pods := s.members("job", 3, "1", "1Gi")
		gate(pods[2])
		names := s.createPods(pods...)
		// Two members hold reservations in the scheduler's memory only.
		s.expectNoneBound(names, 2*time.Second)
		s.restartScheduler(nil)
		s.expectNoneBound(names, 3*time.Second)
		ungate(s, pods[2].Name)
		s.expectAllBound(names, bindTimeout)
	})

	t.Run("the PodGroup deleted while members wait: they are released at once", func(t *testing.T) {
		s := c.newScenario(t, nodes("pgdeleted", 1, "4", "8Gi"), func(a *config.CoschedGangArgs) {
			a.PodGroupBackoffSeconds = ptr.To[int64](10)
		})
		_, names := s.gangWaitingAtPermit(300)
		if err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Delete(s.ctx, "job", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The room the members held is free again: a pod that needs all of
		// it binds long before the 300s timeout.
		plain := s.createPods(testutil.Pod(s.ns, "plain", "", "3", "1Gi"))
		s.expectAllBound(plain, bindTimeout)
		s.expectNoneBound(names[:2], time.Second)
	})

	t.Run("minMember raised past the pods that exist while members wait: they are released", func(t *testing.T) {
		s := c.newScenario(t, nodes("raised", 1, "4", "8Gi"), func(a *config.CoschedGangArgs) {
			a.PodGroupBackoffSeconds = ptr.To[int64](10)
		})
		_, names := s.gangWaitingAtPermit(300)
		pg, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Get(s.ctx, "job", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pg.Spec.MinMember = 5
		if _, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Update(s.ctx, pg, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		s.expectEvent("job", "minMember changed from 3 to 5", bindTimeout)
		s.expectNoneBound(names, time.Second)
	})

	t.Run("minMember lowered to what is reserved while members wait: they bind", func(t *testing.T) {
		s := c.newScenario(t, nodes("lowered", 1, "4", "8Gi"), nil)
		_, names := s.gangWaitingAtPermit(300)
		pg, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Get(s.ctx, "job", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pg.Spec.MinMember = 2
		if _, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Update(s.ctx, pg, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		s.expectAllBound(names[:2], bindTimeout)
	})

	// A node that goes away under a waiting gang: deleted, or lost (tainted
	// as the node lifecycle controller does when its kubelet stops
	// reporting).
	for _, tc := range []struct {
		name, nodes, event string
		timeout            int32
		loseNode           func(s *scenario, name string) error
	}{
		{
			name: "a node deleted under a waiting gang", nodes: "nodegone", event: "was deleted", timeout: 5,
			loseNode: func(s *scenario, name string) error {
				return s.cs.CoreV1().Nodes().Delete(s.ctx, name, metav1.DeleteOptions{})
			},
		},
		{
			name: "a node lost under a waiting gang (tainted unreachable)", nodes: "nodelost", event: "was tainted node.kubernetes.io/unreachable:NoExecute", timeout: 30,
			loseNode: func(s *scenario, name string) error {
				node, err := s.cs.CoreV1().Nodes().Get(s.ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				node.Spec.Taints = append(node.Spec.Taints,
					v1.Taint{Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoSchedule},
					v1.Taint{Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoExecute})
				_, err = s.cs.CoreV1().Nodes().Update(s.ctx, node, metav1.UpdateOptions{})
				return err
			},
		},
	} {
		t.Run(tc.name+": nothing binds to it, the gang retries", func(t *testing.T) {
			s := c.newScenario(t, nodes(tc.nodes, 2, "4", "8Gi"), func(a *config.CoschedGangArgs) {
				a.PodGroupBackoffSeconds = ptr.To[int64](1)
			})
			pods, names := s.gangWaitingAtPermit(tc.timeout)
			if err := tc.loseNode(s, s.nodes[0]); err != nil {
				t.Fatal(err)
			}
			s.expectEvent("job", tc.event, bindTimeout)
			ungate(s, pods[2].Name)
			placed := s.expectAllBound(names, bindTimeout)
			for name, node := range placed {
				if node == s.nodes[0] {
					t.Errorf("%s was bound to the node that went away, %s", name, node)
				}
			}
		})
	}
}

// TestRejectionReasonFollowsCluster: a stuck PodGroup's GangRejected event
// says why it waits now, not why it waited first. client-go folds events on
// the same objects into one series that keeps its first note, and a stuck
// PodGroup's resourceVersion does not move.
func TestRejectionReasonFollowsCluster(t *testing.T) {
	c := startCluster(t)
	s := c.newScenario(t, nodes("follows", 1, "2", "8Gi"), nil)
	s.createGroup(testutil.PodGroup(s.ns, "job", 2))
	names := s.createPods(s.members("job", 2, "3", "1Gi")...)
	s.expectEvent("job", "member needs cpu 3, best node has 2", bindTimeout)
	// Let the status writer settle, so the PodGroup itself does not change
	// between the two rejections.
	time.Sleep(2 * time.Second)
	s.addNodes(testutil.Node("follows-bigger", "2500m", "8Gi", nil))
	s.expectEvent("job", "member needs cpu 3, best node has 2500m", bindTimeout)
	s.expectNoneBound(names, time.Second)
	s.addNodes(testutil.Node("follows-big-0", "4", "8Gi", nil), testutil.Node("follows-big-1", "4", "8Gi", nil))
	s.expectAllBound(names, bindTimeout)
}

// TestBadInput checks that invalid PodGroups are refused by the API server
// with an error that names the field.
func TestBadInput(t *testing.T) {
	c := startCluster(t)
	s := c.newScenario(t, nodes("bad", 1, "4", "8Gi"), nil)
	// Only what no real client sends is refused (docs/clients.md): a
	// minMember below 1 written out (scheduler-plugins' own minimum), and a
	// PodGroup without a spec. An absent minMember, any quorum above 1 and
	// any timeout are what clients send; TestOperatorPodGroups has them.
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"negative-quorum", `,"spec":{"minMember":-3}`, "spec.minMember"},
		{"explicit-zero-quorum", `,"spec":{"minMember":0}`, "spec.minMember"},
		{"no-spec", ``, "spec: Required value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"apiVersion":"scheduling.x-k8s.io/v1alpha1","kind":"PodGroup","metadata":{"name":"` + tc.name + `"}` + tc.spec + `}`
			err := s.pg.SchedulingV1alpha1().RESTClient().Post().Namespace(s.ns).Resource("podgroups").Body([]byte(body)).Do(s.ctx).Error()
			if err == nil {
				t.Fatalf("PodGroup %s was accepted", body)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
		})
	}

	t.Run("pods of a PodGroup that does not exist wait, and say so", func(t *testing.T) {
		names := s.createPods(s.members("ghost", 2, "100m", "128Mi")...)
		s.expectNoneBound(names, 2*time.Second)
		s.expectPodScheduledFalse(names[0], "PodGroup "+s.ns+"/ghost does not exist")
		s.expectPodEvent(names[0], "FailedScheduling: ")
		// The plain pods beside them are not held up.
		plain := s.createPods(testutil.Pod(s.ns, "plain", "", "100m", "128Mi"))
		s.expectAllBound(plain, bindTimeout)
		// Nothing is lost: once the PodGroup exists, they bind.
		s.createGroup(testutil.PodGroup(s.ns, "ghost", 2))
		s.expectAllBound(names, bindTimeout)
	})

	t.Run("members naming different schedulers: the group is refused with a reason", func(t *testing.T) {
		s.createGroup(testutil.PodGroup(s.ns, "split", 2))
		pods := s.members("split", 2, "100m", "128Mi")
		pods[1].Spec.SchedulerName = "someone-else"
		names := s.createPods(pods...)
		s.expectEvent("split", "members name different schedulers (cosched: split-0; someone-else: split-1)", bindTimeout)
		s.expectNoneBound(names, time.Second)
		s.expectPodScheduledFalse(names[0], "every member of a group must use the same schedulerName")
	})

	t.Run("members with different priorities: a warning, and the group still runs", func(t *testing.T) {
		s.createGroup(testutil.PodGroup(s.ns, "mixed", 2))
		pods := s.members("mixed", 2, "100m", "128Mi")
		testutil.WithPriorityClass(pods[0], testutil.HighPriority)
		names := s.createPods(pods...)
		s.expectAllBound(names, bindTimeout)
		s.expectEvent("mixed", "MembersDisagree: members have different priorities (0: mixed-1; 1000: mixed-0)", bindTimeout)
	})

	t.Run("a topology key no node carries: refused with a reason, others not held up", func(t *testing.T) {
		pg := testutil.PodGroup(s.ns, "nowhere", 2)
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: "example.com/no-such-label"}
		s.createGroup(pg)
		names := s.createPods(s.members("nowhere", 2, "100m", "128Mi")...)
		s.expectEvent("nowhere", "GangRejected: no example.com/no-such-label", bindTimeout)
		s.expectNoneBound(names, time.Second)
		plain := s.createPods(testutil.Pod(s.ns, "plain-2", "", "100m", "128Mi"))
		s.expectAllBound(plain, bindTimeout)
	})

	t.Run("minResources larger than the cluster: refused with a reason", func(t *testing.T) {
		s.createGroup(testutil.WithMinResources(testutil.PodGroup(s.ns, "huge", 1), "400", "1Ti"))
		names := s.createPods(s.members("huge", 1, "100m", "128Mi")...)
		s.expectEvent("huge", "GangRejected: minResources needs cpu 400", bindTimeout)
		s.expectNoneBound(names, time.Second)
	})
}

// expectPodScheduledFalse waits until the pod's PodScheduled condition is
// False with a message containing want: what kubectl describe shows.
func (s *scenario) expectPodScheduledFalse(name, want string) {
	s.t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		pod, err := s.cs.CoreV1().Pods(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == v1.PodScheduled {
				last = string(c.Status) + " " + c.Reason + ": " + c.Message
				return c.Status == v1.ConditionFalse && strings.Contains(c.Message, want), nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("pod %s: PodScheduled never False with %q; last %q", name, want, last)
	}
}

func ungate(s *scenario, name string) {
	s.t.Helper()
	p, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	p.Spec.SchedulingGates = nil
	if _, err := s.cs.CoreV1().Pods(s.ns).Update(s.ctx, p, metav1.UpdateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// gangWaitingAtPermit creates the PodGroup "job" (quorum 3) whose third
// member is held by a scheduling gate, so the first two reserve nodes and
// wait at Permit for it.
func (s *scenario) gangWaitingAtPermit(timeoutSeconds int32) ([]*v1.Pod, []string) {
	s.t.Helper()
	s.createGroup(testutil.WithTimeout(testutil.PodGroup(s.ns, "job", 3), timeoutSeconds))
	pods := s.members("job", 3, "1", "1Gi")
	gate(pods[2])
	names := s.createPods(pods...)
	s.expectNoneBound(names, 2*time.Second)
	return pods, names
}
