package testutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// RepoRoot finds the repository root (the folder holding go.mod) from the
// working directory, which `go test` sets to the package folder.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// CRDPath is the generated PodGroup CRD.
const CRDPath = "manifests/crds/scheduling.x-k8s.io_podgroups.yaml"

// InstallCRD creates the PodGroup CRD from manifests/ and waits until the API
// server serves it.
func InstallCRD(ctx context.Context, cfg *rest.Config) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(root, CRDPath))
	if err != nil {
		return err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		return fmt.Errorf("decoding %s: %w", CRDPath, err)
	}
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the PodGroup CRD: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the PodGroup CRD to be established: %w", err)
	}
	// Discovery can lag the Established condition by a moment.
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := client.Discovery().ServerResourcesForGroupVersion("scheduling.x-k8s.io/v1alpha1")
		return err == nil, nil
	})
}

// CreatePriorityClasses installs HighPriority (1000) and LowPriority (0).
func CreatePriorityClasses(ctx context.Context, cs kubernetes.Interface) error {
	for name, value := range map[string]int32{HighPriority: 1000, LowPriority: 0} {
		pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}
		if _, err := cs.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating priority class %s: %w", name, err)
		}
	}
	return nil
}

// BoundNodes returns each named pod's node ("" when unbound or missing).
func BoundNodes(ctx context.Context, cs kubernetes.Interface, ns string, names []string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, name := range names {
		pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out[name] = ""
			continue
		}
		if err != nil {
			return nil, err
		}
		out[name] = pod.Spec.NodeName
	}
	return out, nil
}

// WaitAllBound waits until every named pod is bound and returns where.
func WaitAllBound(ctx context.Context, cs kubernetes.Interface, ns string, names []string, timeout time.Duration) (map[string]string, error) {
	var last map[string]string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := BoundNodes(ctx, cs, ns, names)
		if err != nil {
			return false, nil
		}
		last = nodes
		for _, n := range nodes {
			if n == "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return last, fmt.Errorf("not all of %v bound within %s: %s", names, timeout, Describe(last))
	}
	return last, nil
}

// ExpectNoneBound watches the named pods for the whole duration and fails as
// soon as any of them is bound.
func ExpectNoneBound(ctx context.Context, cs kubernetes.Interface, ns string, names []string, during time.Duration) error {
	deadline := time.Now().Add(during)
	for time.Now().Before(deadline) {
		nodes, err := BoundNodes(ctx, cs, ns, names)
		if err != nil {
			return err
		}
		for name, n := range nodes {
			if n != "" {
				return fmt.Errorf("pod %s/%s was bound to %s; want none of %v bound: %s", ns, name, n, names, Describe(nodes))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// CountBound returns how many of the named pods are bound.
func CountBound(nodes map[string]string) int {
	n := 0
	for _, node := range nodes {
		if node != "" {
			n++
		}
	}
	return n
}

// Describe prints pod placements in a stable order.
func Describe(nodes map[string]string) string {
	names := make([]string, 0, len(nodes))
	for name := range nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		node := nodes[name]
		if node == "" {
			node = "<unbound>"
		}
		parts[i] = name + "=" + node
	}
	return strings.Join(parts, " ")
}

// Names returns the pods' names.
func Names(pods []*v1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Name
	}
	return out
}

// CreatePods creates the pods.
func CreatePods(ctx context.Context, cs kubernetes.Interface, pods ...*v1.Pod) error {
	for _, pod := range pods {
		if _, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}

// EventsFor lists the notes of events (events.k8s.io) regarding an object.
func EventsFor(ctx context.Context, cs kubernetes.Interface, ns, kind, name string) ([]string, error) {
	list, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return out, nil
}

// NamespaceEvents prints a namespace's events, one per line, to explain a
// failed wait.
func NamespaceEvents(ctx context.Context, cs kubernetes.Interface, ns string) string {
	list, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range list.Items {
		fmt.Fprintf(&b, "  %s %s/%s %s: %s\n", e.Type, e.Regarding.Kind, e.Regarding.Name, e.Reason, e.Note)
	}
	return b.String()
}
