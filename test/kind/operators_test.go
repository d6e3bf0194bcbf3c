package kind

import (
	"context"
	"os"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/cosched/cosched/test/testutil"
)

// The operators that hack/kind/operators.sh deploys as pods, from the
// manifests their modules ship.
var operatorDeployments = []struct{ namespace, name string }{
	{"ray-system", "kuberay-operator"},
	{"kubeflow", "training-operator"},
}

var (
	rayClusters = schema.GroupVersionResource{Group: "ray.io", Version: "v1", Resource: "rayclusters"}
	pyTorchJobs = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "pytorchjobs"}
)

// A RayCluster as users write it for gang scheduling with KubeRay's
// scheduler-plugins integration (the label), whose containers run the
// workload image's entrypoint (the annotation: no `ray start` in a shell).
const rayClusterYAML = `
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: ray
  labels:
    ray.io/gang-scheduling-enabled: "true"
  annotations:
    ray.io/overwrite-container-cmd: "true"
spec:
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: cosched-kind/workload:v1
          imagePullPolicy: Never
          resources: {requests: {cpu: 50m, memory: 32Mi}}
  workerGroupSpecs:
  - groupName: workers
    replicas: 2
    minReplicas: 2
    maxReplicas: 2
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: cosched-kind/workload:v1
          imagePullPolicy: Never
          resources: {requests: {cpu: 50m, memory: 32Mi}}
`

// A PyTorchJob of a master and two workers that train for 15 s; the
// training-operator makes its PodGroup (minMember 3) and names cosched as
// the pods' scheduler.
const pyTorchJobYAML = `
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: pt
spec:
  runPolicy:
    cleanPodPolicy: None
    schedulingPolicy: {minAvailable: 3}
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: Never
      template:
        spec:
          containers:
          - name: pytorch
            image: cosched-kind/workload:v1
            imagePullPolicy: Never
            args: ["-seconds", "15"]
            resources: {requests: {cpu: 50m, memory: 32Mi}}
    Worker:
      replicas: 2
      restartPolicy: Never
      template:
        spec:
          containers:
          - name: pytorch
            image: cosched-kind/workload:v1
            imagePullPolicy: Never
            args: ["-seconds", "15"]
            resources: {requests: {cpu: 50m, memory: 32Mi}}
`

// TestOperatorsAsPods: KubeRay and training-operator run as pods of the
// cluster; a RayCluster's head and workers and a PyTorchJob's master and
// workers are each bound whole by cosched, their containers run on real
// kubelets, and the PyTorchJob succeeds.
func TestOperatorsAsPods(t *testing.T) {
	c := newCluster(t)
	if os.Getenv("KIND_OPERATORS") != "1" {
		t.Skip("KIND_OPERATORS is not 1: hack/kind-e2e.sh did not deploy the operators")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KIND_KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	for _, d := range operatorDeployments {
		c.waitDeploymentAvailable(t, d.namespace, d.name, 5*time.Minute)
	}
	watch := testutil.WatchGangs(c.ctx, t, c.cs, c.ns, 10*time.Second)
	watch.Track("ray", 3)
	watch.Track("pt", 3)
	for _, o := range []struct {
		gvr  schema.GroupVersionResource
		yaml string
	}{{rayClusters, rayClusterYAML}, {pyTorchJobs, pyTorchJobYAML}} {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(o.yaml), &obj.Object); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(o.gvr).Namespace(c.ns).Create(c.ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}

	for _, group := range []string{"ray", "pt"} {
		pg := c.waitOperatorPodGroup(t, group, 2*time.Minute)
		if pg != 3 {
			t.Errorf("PodGroup %s has minMember %d, want 3", group, pg)
		}
		names := c.waitMembers(t, group, 3, 2*time.Minute)
		nodes, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, names, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s bound whole: %s", group, testutil.Describe(nodes))
		if phases, err := c.waitPhases(names, 2*time.Minute, v1.PodRunning, v1.PodSucceeded); err != nil {
			t.Errorf("%s's containers did not start: %v", group, phases)
		}
	}
	// The PyTorchJob's master exits 0 after 15 s: the job succeeds.
	err = wait.PollUntilContextTimeout(c.ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		job, err := dyn.Resource(pyTorchJobs).Namespace(c.ns).Get(ctx, "pt", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(job.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Succeeded" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("PyTorchJob pt did not succeed: %v", err)
	}
	watch.Check()
}

// waitDeploymentAvailable waits until every replica of the Deployment is
// available.
func (c *cluster) waitDeploymentAvailable(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	started := time.Now()
	err := wait.PollUntilContextTimeout(c.ctx, 2*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := c.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && d.Status.AvailableReplicas == *d.Spec.Replicas, nil
	})
	if err != nil {
		pods, _ := c.cs.CoreV1().Pods(ns).List(c.ctx, metav1.ListOptions{})
		for _, p := range pods.Items {
			t.Logf("%s/%s: %s %+v", ns, p.Name, p.Status.Phase, p.Status.ContainerStatuses)
		}
		t.Fatalf("operator %s/%s is not available after %s", ns, name, timeout)
	}
	t.Logf("operator %s/%s available (waited %s)", ns, name, time.Since(started).Round(time.Second))
}

// waitOperatorPodGroup waits for the PodGroup the operator creates and
// returns its minMember.
func (c *cluster) waitOperatorPodGroup(t *testing.T, name string, timeout time.Duration) int32 {
	t.Helper()
	var minMember int32
	err := wait.PollUntilContextTimeout(c.ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		pg, err := c.pg.SchedulingV1alpha1().PodGroups(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		minMember = pg.Spec.MinMember
		return true, nil
	})
	if err != nil {
		t.Fatalf("the operator created no PodGroup %s: %v", name, err)
	}
	return minMember
}

// waitMembers waits until n pods of group exist and returns their names.
func (c *cluster) waitMembers(t *testing.T, group string, n int, timeout time.Duration) []string {
	t.Helper()
	var names []string
	err := wait.PollUntilContextTimeout(c.ctx, time.Second, timeout, true, func(context.Context) (bool, error) {
		names = names[:0]
		for name := range c.podsOf(t, group) {
			names = append(names, name)
		}
		return len(names) >= n, nil
	})
	if err != nil {
		t.Fatalf("%d of %d pods of %s exist: %v", len(names), n, group, names)
	}
	return names
}
