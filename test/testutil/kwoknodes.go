package testutil

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// KWOKNodeAnnotation marks a node the KWOK controller simulates.
const KWOKNodeAnnotation = "kwok.x-k8s.io/node"

// CreateKWOKNodes creates nodes for KWOK to simulate (annotated, and tainted
// so that only pods tolerating the taint land there), leaving their
// conditions to KWOK, and waits up to timeout until KWOK reports each Ready
// and the node lifecycle controller has lifted the not-ready taint that new
// nodes get (until then no pod is placed there, and a test that counts on
// the room races the controller).
func CreateKWOKNodes(ctx context.Context, t *testing.T, cs kubernetes.Interface, nodes []*v1.Node, timeout time.Duration) []string {
	t.Helper()
	names := make([]string, 0, len(nodes))
	for _, node := range nodes {
		node.Annotations = map[string]string{KWOKNodeAnnotation: "fake"}
		node.Spec.Taints = []v1.Taint{{Key: KWOKNodeAnnotation, Value: "fake", Effect: v1.TaintEffectNoSchedule}}
		node.Status.Conditions = nil
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating node %s: %v", node.Name, err)
		}
		names = append(names, node.Name)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || !NodeReady(n) || hasConditionTaint(n) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("fake nodes %v never became Ready (is KWOK running?): %v", names, err)
	}
	return names
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// hasConditionTaint reports whether the node still carries a taint that the
// node lifecycle controller sets from its conditions (not-ready,
// unreachable, ...).
func hasConditionTaint(n *v1.Node) bool {
	for _, t := range n.Spec.Taints {
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") && t.Effect != v1.TaintEffectPreferNoSchedule {
			return true
		}
	}
	return false
}
