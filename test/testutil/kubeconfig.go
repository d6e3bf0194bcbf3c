package testutil

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClusterFromKubeconfig returns the client config of the cluster KUBECONFIG
// names, for suites that run against a live cluster (QPS 100, burst 200). It
// skips the test with skipMsg when KUBECONFIG is not set.
func ClusterFromKubeconfig(t testing.TB, skipMsg string) *rest.Config {
	t.Helper()
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		t.Skip(skipMsg)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("loading KUBECONFIG %s: %v", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg
}

// TestID names one test's objects on a shared cluster: the test's name
// lowercased with / and _ as -, cut to 40 characters, and a number from the
// clock so that runs do not collide.
func TestID(t testing.TB) string {
	id := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(id) > 40 {
		id = id[:40]
	}
	return strings.Trim(id, "-") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
}

// CreateNamespace creates the namespace name and returns its name; it fails
// the test when it cannot.
func CreateNamespace(ctx context.Context, t testing.TB, cs kubernetes.Interface, name string) string {
	t.Helper()
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}
