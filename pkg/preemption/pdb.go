package preemption

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Budgets tracks how many more disruptions each PodDisruptionBudget allows,
// as the Eviction API would count them.
type Budgets struct {
	pdbs    []*policyv1.PodDisruptionBudget
	allowed []int32
	sel     []labels.Selector
}

// NewBudgets starts from the budgets' current status.
func NewBudgets(pdbs []*policyv1.PodDisruptionBudget) *Budgets {
	b := &Budgets{}
	for _, pdb := range pdbs {
		if pdb.Spec.Selector == nil {
			// policy/v1: a missing selector matches no pod.
			continue
		}
		// An empty selector ({}) matches every pod in the namespace.
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			continue
		}
		b.pdbs = append(b.pdbs, pdb)
		b.allowed = append(b.allowed, pdb.Status.DisruptionsAllowed)
		b.sel = append(b.sel, sel)
	}
	return b
}

// Violation returns the first budget that taking all of victims would
// exceed, or "" when every budget holds.
func (b *Budgets) Violation(victims []*Unit) string {
	left := append([]int32(nil), b.allowed...)
	for _, u := range victims {
		for _, pod := range u.Pods {
			for i, pdb := range b.pdbs {
				if !b.covers(i, pod) {
					continue
				}
				left[i]--
				if left[i] < 0 {
					return fmt.Sprintf("evicting %s/%s would violate PodDisruptionBudget %s/%s (%d disruption(s) allowed)",
						pod.Namespace, pod.Name, pdb.Namespace, pdb.Name, b.allowed[i])
				}
			}
		}
	}
	return ""
}

func (b *Budgets) covers(i int, pod *v1.Pod) bool {
	pdb := b.pdbs[i]
	if pdb.Namespace != pod.Namespace || !b.sel[i].Matches(labels.Set(pod.Labels)) {
		return false
	}
	// A pod the disruption controller already counts as disrupted does not
	// use the budget again.
	_, counted := pdb.Status.DisruptedPods[pod.Name]
	return !counted
}
