package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// TestGangPreemption checks that preemption takes and leaves gangs whole.
func TestGangPreemption(t *testing.T) {
	c := startCluster(t)

	t.Run("a high-priority gang preempts the low gang holding the only rack where it fits", func(t *testing.T) {
		racks := []*v1.Node{
			testutil.Node("a-0", "2", "4Gi", map[string]string{"rack": "a"}),
			testutil.Node("a-1", "2", "4Gi", map[string]string{"rack": "a"}),
			// Rack b is too small for the high gang on its own.
			testutil.Node("b-0", "2", "4Gi", map[string]string{"rack": "b"}),
		}
		s := c.newScenario(t, racks, nil)
		s.createGroup(rackGroup(s.ns, "low", 2))
		low := s.members("low", 2, "2", "1Gi")
		for _, p := range low {
			testutil.WithPriorityClass(p, testutil.LowPriority)
			p.Spec.NodeSelector = map[string]string{"rack": "a"}
			// Victims terminate gracefully: the kubelet (played below) has
			// the last word.
			p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
		}
		lowNames := s.createPods(low...)
		s.expectAllBound(lowNames, bindTimeout)
		// Rack b is busy with a pod nobody may preempt.
		s.createPods(testutil.WithPriorityClass(testutil.Pod(s.ns, "b-resident", "", "1", "1Gi"), testutil.HighPriority))

		s.createGroup(rackGroup(s.ns, "high", 2))
		high := s.members("high", 2, "2", "1Gi")
		for _, p := range high {
			testutil.WithPriorityClass(p, testutil.HighPriority)
		}
		highNames := s.createPods(high...)

		// Both low members are asked to go, as one.
		s.waitTerminating(lowNames, bindTimeout)
		s.expectNoneBound(highNames, time.Second)
		s.playKubelet(lowNames)
		nodes := s.expectAllBound(highNames, bindTimeout)
		for _, n := range nodes {
			if !strings.HasPrefix(n, "a-") {
				t.Errorf("high gang placed outside rack a: %v", nodes)
			}
		}
		s.expectEvent("high", "Preempting: preempting PodGroup "+s.ns+"/low (2 pods, priority 0)", bindTimeout)
		s.expectEvent("low", "GangPreempted: all 2 placed member(s) preempted as a unit by PodGroup "+s.ns+"/high", bindTimeout)
		s.expectPodEvent(lowNames[0], "Preempted: Preempted with all 2 placed member(s) of PodGroup "+s.ns+"/low")
	})

	t.Run("a high-priority plain pod never leaves a gang partially bound", func(t *testing.T) {
		s := c.newScenario(t, nodes("plainpre", 2, "2", "4Gi"), nil)
		s.createGroup(testutil.PodGroup(s.ns, "job", 2))
		job := s.members("job", 2, "2", "1Gi")
		for _, p := range job {
			testutil.WithPriorityClass(p, testutil.LowPriority)
		}
		jobNames := s.createPods(job...)
		s.expectAllBound(jobNames, bindTimeout)
		// The plain pod needs a whole node: one member must go, so the
		// whole gang goes.
		urgent := s.createPods(testutil.WithPriorityClass(testutil.Pod(s.ns, "urgent", "", "2", "1Gi"), testutil.HighPriority))
		s.expectAllBound(urgent, bindTimeout)
		s.waitGone(jobNames, bindTimeout)
		s.expectEvent("job", "GangPreempted: all 2 placed member(s) preempted as a unit by pod "+s.ns+"/urgent (priority 1000)", bindTimeout)
	})

	t.Run("another scheduler preempts one member of a running gang: the rest go too", func(t *testing.T) {
		s := c.newScenario(t, nodes("foreign", 3, "2", "4Gi"), nil)
		s.createGroup(testutil.PodGroup(s.ns, "job", 3))
		names := s.createPods(s.members("job", 3, "1", "1Gi")...)
		s.expectAllBound(names, bindTimeout)
		// What kube-scheduler's DefaultPreemption does to its victim: mark
		// it as a disruption target, then delete it.
		victim, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, names[0], metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		victim.Status.Conditions = append(victim.Status.Conditions, v1.PodCondition{
			Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: v1.PodReasonPreemptionByScheduler,
			Message: "default-scheduler: preempting to accommodate a higher priority pod",
		})
		if _, err := s.cs.CoreV1().Pods(s.ns).UpdateStatus(s.ctx, victim, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		s.playKubelet(names[:1])
		s.waitGone(names, bindTimeout)
		s.expectEvent("job", "GangPreempted: all 2 placed member(s) preempted as a unit by cosched: member "+s.ns+"/job-0 was preempted", bindTimeout)
	})

	t.Run("a plain pod that fits by evicting plain pods leaves the gang alone", func(t *testing.T) {
		s := c.newScenario(t, nodes("plainonly", 2, "2", "4Gi"), nil)
		s.createGroup(testutil.PodGroup(s.ns, "job", 2))
		job := s.members("job", 2, "1", "1Gi")
		for _, p := range job {
			testutil.WithPriorityClass(p, testutil.LowPriority)
		}
		jobNames := s.createPods(job...)
		s.expectAllBound(jobNames, bindTimeout)
		fillers := []*v1.Pod{
			testutil.WithPriorityClass(testutil.Pod(s.ns, "filler-0", "", "1", "1Gi"), testutil.LowPriority),
			testutil.WithPriorityClass(testutil.Pod(s.ns, "filler-1", "", "1", "1Gi"), testutil.LowPriority),
		}
		fillerNames := s.createPods(fillers...)
		s.expectAllBound(fillerNames, bindTimeout)
		urgent := s.createPods(testutil.WithPriorityClass(testutil.Pod(s.ns, "urgent", "", "1", "1Gi"), testutil.HighPriority))
		s.expectAllBound(urgent, bindTimeout)
		s.expectAllBound(jobNames, time.Second)
		if gone := s.countGone(fillerNames); gone != 1 {
			t.Errorf("%d filler(s) evicted, want exactly 1", gone)
		}
	})

	t.Run("a gang that would not fit even after preemption evicts nothing", func(t *testing.T) {
		s := c.newScenario(t, nodes("nofit", 2, "2", "4Gi"), nil)
		low := []*v1.Pod{
			testutil.WithPriorityClass(testutil.Pod(s.ns, "low-0", "", "2", "1Gi"), testutil.LowPriority),
			testutil.WithPriorityClass(testutil.Pod(s.ns, "low-1", "", "2", "1Gi"), testutil.LowPriority),
		}
		lowNames := s.createPods(low...)
		s.expectAllBound(lowNames, bindTimeout)
		s.createGroup(testutil.PodGroup(s.ns, "big", 3))
		big := s.members("big", 3, "2", "1Gi")
		for _, p := range big {
			testutil.WithPriorityClass(p, testutil.HighPriority)
		}
		bigNames := s.createPods(big...)
		s.expectEvent("big", "GangRejected: 0/3 members fit", bindTimeout)
		s.expectPodEvent(bigNames[0], "preemption cannot help: evicting lower-priority pods and gangs cannot make room for 3 member(s)")
		s.expectNoneBound(bigNames, 3*time.Second)
		s.expectAllBound(lowNames, time.Second)
		s.expectNotTerminating(lowNames)
	})

	t.Run("a PodDisruptionBudget that allows no disruption is honoured", func(t *testing.T) {
		s := c.newScenario(t, nodes("pdb", 1, "2", "4Gi"), nil)
		guarded := testutil.WithPriorityClass(testutil.Pod(s.ns, "guarded", "", "2", "1Gi"), testutil.LowPriority)
		guarded.Labels["app"] = "guarded"
		names := s.createPods(guarded)
		s.expectAllBound(names, bindTimeout)
		s.createBlockingPDB("guard", map[string]string{"app": "guarded"})
		s.createGroup(testutil.PodGroup(s.ns, "high", 1))
		high := s.createPods(testutil.WithPriorityClass(testutil.Members(s.ns, "high", 1, "2", "1Gi")[0], testutil.HighPriority))
		s.expectNoneBound(high, 3*time.Second)
		s.expectAllBound(names, time.Second)
		s.expectNotTerminating(names)
	})

	t.Run("two gangs of equal priority never preempt each other", func(t *testing.T) {
		s := c.newScenario(t, nodes("equal", 2, "2", "4Gi"), nil)
		s.createGroup(testutil.PodGroup(s.ns, "first", 2))
		first := s.members("first", 2, "2", "1Gi")
		for _, p := range first {
			testutil.WithPriorityClass(p, testutil.HighPriority)
		}
		firstNames := s.createPods(first...)
		s.expectAllBound(firstNames, bindTimeout)
		s.createGroup(testutil.PodGroup(s.ns, "second", 2))
		second := s.members("second", 2, "2", "1Gi")
		for _, p := range second {
			testutil.WithPriorityClass(p, testutil.HighPriority)
		}
		secondNames := s.createPods(second...)
		s.expectEvent("second", "GangRejected: 0/2 members fit", bindTimeout)
		s.expectPodEvent(secondNames[0], "preemption cannot help: no pods or gangs of priority below 1000")
		s.expectNoneBound(secondNames, 3*time.Second)
		s.expectAllBound(firstNames, time.Second)
		s.expectNotTerminating(firstNames)
	})
}

// rackGroup is a PodGroup placed into one rack.
func rackGroup(ns, name string, minMember int32) *schedv1alpha1.PodGroup {
	pg := testutil.PodGroup(ns, name, minMember)
	pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: "rack"}
	return pg
}

// waitTerminating waits until every named pod is being deleted.
func (s *scenario) waitTerminating(names []string, timeout time.Duration) {
	s.t.Helper()
	err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			p, err := s.cs.CoreV1().Pods(s.ns).Get(ctx, n, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil || p.DeletionTimestamp == nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		s.t.Fatalf("pods %v were not all asked to terminate within %s\nevents:\n%s", names, timeout, testutil.NamespaceEvents(s.ctx, s.cs, s.ns))
	}
}

// playKubelet finishes the termination of the named pods, as the kubelet
// does once their containers stopped: integration tests run no kubelet.
func (s *scenario) playKubelet(names []string) {
	s.t.Helper()
	for _, n := range names {
		err := s.cs.CoreV1().Pods(s.ns).Delete(s.ctx, n, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		if err != nil && !apierrors.IsNotFound(err) {
			s.t.Fatal(err)
		}
	}
}

// waitGone waits until none of the named pods exists any more.
func (s *scenario) waitGone(names []string, timeout time.Duration) {
	s.t.Helper()
	err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		return s.countGone(names) == len(names), nil
	})
	if err != nil {
		s.t.Fatalf("pods %v not all gone within %s (%d gone)\nevents:\n%s", names, timeout, s.countGone(names), testutil.NamespaceEvents(s.ctx, s.cs, s.ns))
	}
}

func (s *scenario) countGone(names []string) int {
	gone := 0
	for _, n := range names {
		p, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, n, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil) {
			gone++
		}
	}
	return gone
}

func (s *scenario) expectNotTerminating(names []string) {
	s.t.Helper()
	if gone := s.countGone(names); gone != 0 {
		s.t.Fatalf("%d of %v were evicted", gone, names)
	}
}

// createBlockingPDB creates a PodDisruptionBudget that allows no disruption
// and writes the status the disruption controller would (none runs here).
func (s *scenario) createBlockingPDB(name string, selector map[string]string) {
	s.t.Helper()
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: selector},
		},
	}
	created, err := s.cs.PolicyV1().PodDisruptionBudgets(s.ns).Create(s.ctx, pdb, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	created.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: created.Generation,
		DisruptionsAllowed: 0,
		CurrentHealthy:     1,
		DesiredHealthy:     1,
		ExpectedPods:       1,
	}
	if _, err := s.cs.PolicyV1().PodDisruptionBudgets(s.ns).UpdateStatus(s.ctx, created, metav1.UpdateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}
