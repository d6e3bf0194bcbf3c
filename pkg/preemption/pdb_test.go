package preemption

import (
	"strings"
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pdb(name string, app string, allowed int32, disrupted ...string) *policyv1.PodDisruptionBudget {
	p := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
		Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed, DisruptedPods: map[string]metav1.Time{}},
	}
	for _, d := range disrupted {
		p.Status.DisruptedPods[d] = metav1.Now()
	}
	return p
}

func appUnit(key, app string, names ...string) *Unit {
	u := &Unit{Key: key}
	for _, n := range names {
		u.Pods = append(u.Pods, pod(n, 0).Label("app", app).Obj())
	}
	return u
}

func TestBudgetsViolation(t *testing.T) {
	otherNS := pdb("other", "web", 0)
	otherNS.Namespace = "elsewhere"
	empty := pdb("empty", "web", 0)
	empty.Spec.Selector = &metav1.LabelSelector{}
	noSelector := pdb("none", "web", 0)
	noSelector.Spec.Selector = nil
	tests := []struct {
		name    string
		pdbs    []*policyv1.PodDisruptionBudget
		victims []*Unit
		want    string
	}{
		{"no budgets", nil, []*Unit{appUnit("a", "web", "w1")}, ""},
		{"within budget", []*policyv1.PodDisruptionBudget{pdb("web", "web", 2)}, []*Unit{appUnit("a", "web", "w1", "w2")}, ""},
		{"over budget", []*policyv1.PodDisruptionBudget{pdb("web", "web", 1)}, []*Unit{appUnit("a", "web", "w1"), appUnit("b", "web", "w2")},
			"evicting ns/w2 would violate PodDisruptionBudget ns/web (1 disruption(s) allowed)"},
		{"other labels untouched", []*policyv1.PodDisruptionBudget{pdb("db", "db", 0)}, []*Unit{appUnit("a", "web", "w1")}, ""},
		{"other namespace untouched", []*policyv1.PodDisruptionBudget{otherNS}, []*Unit{appUnit("a", "web", "w1")}, ""},
		{"empty selector matches every pod", []*policyv1.PodDisruptionBudget{empty}, []*Unit{appUnit("a", "web", "w1")},
			"evicting ns/w1 would violate PodDisruptionBudget ns/empty"},
		{"missing selector matches nothing", []*policyv1.PodDisruptionBudget{noSelector}, []*Unit{appUnit("a", "web", "w1")}, ""},
		{"already disrupted pods do not count", []*policyv1.PodDisruptionBudget{pdb("web", "web", 0, "w1")}, []*Unit{appUnit("a", "web", "w1")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := NewBudgets(tc.pdbs).Violation(tc.victims)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("Violation = %q, want %q", got, tc.want)
			}
		})
	}
}
