package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// TestBindFailure makes the API server refuse one member's binding after its
// group was admitted (a ValidatingAdmissionPolicy on pods/binding) and checks
// that the group is released and retried whole when its pods have
// controllers, and that bare pods are never deleted.
func TestBindFailure(t *testing.T) {
	c := startCluster(t)

	t.Run("pods with a controller: the bound siblings are released and the group retries whole", func(t *testing.T) {
		s := c.newScenario(t, nodes("bindfail", 1, "4", "8Gi"), nil)
		owner := s.createOwner()
		removePolicy := s.refuseBindings("refused-")
		s.createGroup(testutil.PodGroup(s.ns, "job", 3))
		pods := s.members("job", 3, "1", "1Gi")
		pods[2].Name = "refused-2"
		for _, p := range pods {
			p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, v1.SchemeGroupVersion.WithKind("ConfigMap"))}
		}
		names := s.createPods(pods...)
		s.expectEvent("job", "GangReleased: member "+s.ns+"/refused-2 failed to bind", bindTimeout)
		s.waitGone(names[:2], bindTimeout)
		s.expectNoneBound(names[2:], time.Second)

		// The controller recreates the released pods; the binding is
		// allowed again; the group binds whole.
		removePolicy()
		again := s.members("job", 2, "1", "1Gi")
		for _, p := range again {
			p.OwnerReferences = pods[0].OwnerReferences
		}
		s.waitDeleted(names[:2], bindTimeout)
		s.createPods(again...)
		s.expectAllBound(names, bindTimeout)
	})

	// A scheduler stopped while it released a gang (the eviction of the
	// bound sibling cancelled with it) leaves the sibling bound; the next
	// scheduler must finish the release, not wait for a quorum it already
	// has. With and without a topology key (the bound member then holds
	// the group's domain).
	for name, topology := range map[string]string{"no topology": "", "rack topology": rackLabel} {
		t.Run("a release the last scheduler left unfinished is finished by the next, "+name, func(t *testing.T) {
			rack := []*v1.Node{
				testutil.Node("bindrestart-0", "4", "8Gi", map[string]string{rackLabel: "rack-0"}),
				testutil.Node("bindrestart-1", "4", "8Gi", map[string]string{rackLabel: "rack-0"}),
			}
			s := c.newScenario(t, rack, nil)
			owner := s.createOwner()
			removePolicy := s.refuseBindings("refused-")
			s.stop()
			pg := testutil.PodGroup(s.ns, "job", 3)
			if topology != "" {
				pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: topology}
			}
			s.createGroup(pg)
			pods := s.members("job", 3, "1", "1Gi")
			pods[1].Name, pods[2].Name = "refused-1", "refused-2"
			pods[0].Spec.NodeName = s.nodes[0] // bound by the scheduler that stopped
			for _, p := range pods {
				p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, v1.SchemeGroupVersion.WithKind("ConfigMap"))}
			}
			names := s.createPods(pods...)
			s.startScheduler(nil)
			s.expectEvent("job", "GangReleased: member "+s.ns+"/refused-", bindTimeout)
			s.waitGone(names[:1], bindTimeout)
			// The controller recreates what was released (the bound
			// member, and an admitted sibling whose bind was still to come).
			removePolicy()
			s.waitDeleted(names[:1], bindTimeout)
			for _, p := range pods {
				if _, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, p.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					again := p.DeepCopy()
					again.ResourceVersion, again.UID, again.Spec.NodeName = "", "", ""
					s.createPods(again)
				}
			}
			s.expectAllBound(names, bindTimeout)
		})
	}

	t.Run("bare pods: nothing is deleted, the failed member retries alone", func(t *testing.T) {
		s := c.newScenario(t, nodes("bindbare", 1, "4", "8Gi"), nil)
		removePolicy := s.refuseBindings("refused-")
		s.createGroup(testutil.PodGroup(s.ns, "job", 3))
		pods := s.members("job", 3, "1", "1Gi")
		pods[2].Name = "refused-2"
		names := s.createPods(pods...)
		s.expectEvent("job", "GangBindFailed: member "+s.ns+"/refused-2 failed to bind", bindTimeout)
		s.expectAllBound(names[:2], time.Second)
		s.expectNotTerminating(names[:2])
		removePolicy()
		s.expectAllBound(names, bindTimeout)
	})
}

// createOwner creates an object for pods to name as their controller; no
// controller runs here, so the test plays it.
func (s *scenario) createOwner() *v1.ConfigMap {
	s.t.Helper()
	cm, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(s.ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return cm
}

// refuseBindings makes the API server refuse to bind pods of this
// namespace whose names start with prefix, and returns a function that
// lifts the refusal. Both take effect before they return.
func (s *scenario) refuseBindings(prefix string) func() {
	s.t.Helper()
	name := "refuse-bindings-" + s.ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/binding"}},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!object.metadata.name.startsWith('" + prefix + "')",
				Message:    "binding refused by the test",
			}},
		},
	}
	if _, err := s.cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(s.ctx, policy, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": s.ns},
			}},
		},
	}
	if _, err := s.cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(s.ctx, binding, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	deletePolicy := func() {
		_ = s.cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = s.cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	}
	s.t.Cleanup(deletePolicy)
	// A pod no scheduler handles probes, with dry-run bindings, whether the
	// API server enforces the policy yet (or still).
	probe := testutil.Pod(s.ns, prefix+"probe", "", "1m", "1Mi")
	probe.Spec.SchedulerName = "nobody"
	s.createPods(probe)
	waitRefused := func(want bool) {
		s.t.Helper()
		err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
			err := s.cs.CoreV1().Pods(s.ns).Bind(ctx, &v1.Binding{
				ObjectMeta: metav1.ObjectMeta{Name: probe.Name},
				Target:     v1.ObjectReference{Kind: "Node", Name: s.nodes[0]},
			}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			refused := err != nil && strings.Contains(err.Error(), "binding refused by the test")
			return refused == want && (refused || err == nil), nil
		})
		if err != nil {
			s.t.Fatalf("the API server never switched the binding policy (refusing=%v): %v", want, err)
		}
	}
	waitRefused(true)
	return func() {
		deletePolicy()
		waitRefused(false)
	}
}

// waitDeleted waits until none of the named pods exists.
func (s *scenario) waitDeleted(names []string, timeout time.Duration) {
	s.t.Helper()
	err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := s.cs.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, p := range list.Items {
			for _, n := range names {
				if p.Name == n {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		s.t.Fatalf("pods %v still exist after %s", names, timeout)
	}
}
