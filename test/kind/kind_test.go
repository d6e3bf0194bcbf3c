// Package kind tests cosched as its users run it: installed by its chart into
// a kind cluster whose nodes run real kubelets and containerd, so gang
// members start real containers. make test-kind (hack/kind-e2e.sh) creates the
// cluster, loads the images, installs the chart and runs this package with
// KIND_KUBECONFIG set; without it every test skips. A separate variable from
// the e2e suite's KUBECONFIG keeps these tests off the KWOK control plane.
package kind

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/cosched/cosched/pkg/capacity"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// workloadImage is hack/kind/workload, in every node's containerd (loaded
// from the node image; there is no registry to pull from).
const workloadImage = "cosched-kind/workload:v1"

type cluster struct {
	ctx context.Context
	cs  kubernetes.Interface
	pg  versioned.Interface
	ns  string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	kubeconfig := os.Getenv("KIND_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("KIND_KUBECONFIG is not set: no kind cluster to test against (make test-kind creates one)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("loading KIND_KUBECONFIG %s: %v", kubeconfig, err)
	}
	c := &cluster{ctx: context.Background(), cs: kubernetes.NewForConfigOrDie(cfg), pg: versioned.NewForConfigOrDie(cfg)}
	c.ns = testutil.CreateNamespace(c.ctx, t, c.cs, "kind-"+testutil.TestID(t))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("events in %s:\n%s", c.ns, testutil.NamespaceEvents(context.Background(), c.cs, c.ns))
		}
		_ = c.cs.CoreV1().Namespaces().Delete(context.Background(), c.ns, metav1.DeleteOptions{})
	})
	// Pods created before kube-controller-manager made the namespace's
	// default ServiceAccount are refused.
	err = wait.PollUntilContextTimeout(c.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.cs.CoreV1().ServiceAccounts(c.ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("the ServiceAccount %s/default never appeared: %v", c.ns, err)
	}
	return c
}

// members returns n pods of group running the workload image with args.
func (c *cluster) members(group string, n int, cpu string, args ...string) []*v1.Pod {
	pods := testutil.Members(c.ns, group, n, cpu, "16Mi")
	for _, p := range pods {
		p.Spec.RestartPolicy = v1.RestartPolicyNever
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
		p.Spec.Containers[0].Name = "main"
		p.Spec.Containers[0].Image = workloadImage
		p.Spec.Containers[0].ImagePullPolicy = v1.PullNever
		p.Spec.Containers[0].Args = args
	}
	return pods
}

// waitPhases waits until every named pod is in one of the phases.
func (c *cluster) waitPhases(names []string, timeout time.Duration, phases ...v1.PodPhase) (map[string]v1.PodPhase, error) {
	last := map[string]v1.PodPhase{}
	err := wait.PollUntilContextTimeout(c.ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		done := true
		for _, name := range names {
			pod, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			last[name] = pod.Status.Phase
			in := false
			for _, p := range phases {
				in = in || pod.Status.Phase == p
			}
			done = done && in
		}
		return done, nil
	})
	return last, err
}

// TestGangOfRealPodsBindsWhole: a gang of three real pods is bound whole by
// cosched running as the chart's Deployment, its containers run on real
// kubelets of the workers and exit 0, and no watcher ever sees the gang
// partly bound at rest.
func TestGangOfRealPodsBindsWhole(t *testing.T) {
	c := newCluster(t)
	watch := testutil.WatchGangs(c.ctx, t, c.cs, c.ns, 5*time.Second)
	const group = "real"
	watch.Track(group, 3)
	c.createGroup(t, group, 3, 120)
	pods := c.members(group, 3, "100m", "-seconds", "10")
	names := testutil.Names(pods)
	if err := testutil.CreatePods(c.ctx, c.cs, pods...); err != nil {
		t.Fatal(err)
	}
	nodes, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, names, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bound: %s", testutil.Describe(nodes))
	for pod, node := range nodes {
		if strings.HasSuffix(node, "-control-plane") {
			t.Errorf("%s was bound to the tainted control-plane node %s", pod, node)
		}
	}
	if phases, err := c.waitPhases(names, 2*time.Minute, v1.PodRunning, v1.PodSucceeded); err != nil {
		t.Fatalf("the members' containers did not start on their kubelets: %v", phases)
	}
	if phases, err := c.waitPhases(names, 2*time.Minute, v1.PodSucceeded); err != nil {
		t.Fatalf("the members did not all exit 0: %v", phases)
	}
	watch.Check()
}

// TestGangThatDoesNotFitHoldsNothing: three members that each need more than
// half of a worker's CPU fit two workers only two at a time; cosched binds
// none of them and says why on the PodGroup.
func TestGangThatDoesNotFitHoldsNothing(t *testing.T) {
	c := newCluster(t)
	workers := c.twoWorkers(t)
	// 60% of the smallest worker's allocatable CPU: one member per worker.
	least := workers[0].Status.Allocatable.Cpu().MilliValue()
	for _, n := range workers[1:] {
		least = min(least, n.Status.Allocatable.Cpu().MilliValue())
	}
	cpu := least * 6 / 10
	const group = "too-big"
	c.createGroup(t, group, 3, 0)
	pods := c.members(group, 3, milli(cpu), "-seconds", "5")
	if err := testutil.CreatePods(c.ctx, c.cs, pods...); err != nil {
		t.Fatal(err)
	}
	if err := testutil.ExpectNoneBound(c.ctx, c.cs, c.ns, testutil.Names(pods), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	events, err := testutil.EventsFor(c.ctx, c.cs, c.ns, "PodGroup", group)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if strings.HasPrefix(e, "GangRejected: ") {
			t.Logf("PodGroup says: %s", e)
			return
		}
	}
	t.Errorf("no GangRejected event on PodGroup %s; events: %v", group, events)
}

func milli(m int64) string { return strconv.FormatInt(m, 10) + "m" }

// TestAppAndLogCollectorShareANode: the seed's example on real kubelets.
// App (1Gi) and LogCollector (0.5Gi) must share a node; one worker is left
// with 1.25Gi of memory free and the disk App prefers, the other with 2Gi.
// Placed one by one, App would take the preferred worker and LogCollector
// could never follow; cosched plans the pair whole onto the roomier worker.
func TestAppAndLogCollectorShareANode(t *testing.T) {
	c := newCluster(t)
	workers := c.twoWorkers(t)
	preferred, roomy := workers[0].Name, workers[1].Name
	c.labelNode(t, preferred, "cosched.dev/disk", "ssd")
	c.leaveMemoryFree(t, preferred, 1280<<20)
	c.leaveMemoryFree(t, roomy, 2048<<20)

	const group = "app-with-logs"
	c.createGroup(t, group, 2, 120)
	pods := c.members(group, 2, "10m", "-seconds", "5")
	app, logs := pods[0], pods[1]
	app.Name, logs.Name = "app", "log-collector"
	app.Spec.Containers[0].Resources.Requests[v1.ResourceMemory] = resource.MustParse("1Gi")
	logs.Spec.Containers[0].Resources.Requests[v1.ResourceMemory] = resource.MustParse("512Mi")
	for _, p := range pods {
		// Co-location as users ask for it: required affinity to the group
		// on the hostname.
		p.Spec.Affinity = &v1.Affinity{PodAffinity: &v1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{podgroup.Label: group}},
			TopologyKey:   v1.LabelHostname,
		}}}}
	}
	app.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{
		Weight:     100,
		Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "cosched.dev/disk", Operator: v1.NodeSelectorOpIn, Values: []string{"ssd"}}}},
	}}}
	if err := testutil.CreatePods(c.ctx, c.cs, pods...); err != nil {
		t.Fatal(err)
	}
	nodes, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, testutil.Names(pods), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if nodes["app"] != roomy || nodes["log-collector"] != roomy {
		t.Errorf("placed %s, want both on %s (the only worker with room for both)", testutil.Describe(nodes), roomy)
	}
	if phases, err := c.waitPhases(testutil.Names(pods), 2*time.Minute, v1.PodSucceeded); err != nil {
		t.Fatalf("the pair did not run to completion: %v", phases)
	}
}

// labelNode sets a label on a node for the test and removes it after.
func (c *cluster) labelNode(t *testing.T, node, key, value string) {
	t.Helper()
	patch := func(v any) {
		data, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{key: v}}})
		if _, err := c.cs.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
			t.Fatalf("labelling node %s: %v", node, err)
		}
	}
	patch(value)
	t.Cleanup(func() { patch(nil) })
}

// leaveMemoryFree pins a sleeping filler pod to node whose memory request
// leaves exactly free bytes of the node's allocatable memory unrequested.
// The filler goes with the test's namespace.
func (c *cluster) leaveMemoryFree(t *testing.T, node string, free int64) {
	t.Helper()
	n, err := c.cs.CoreV1().Nodes().Get(c.ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	onNode, err := c.cs.CoreV1().Pods("").List(c.ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	requested := int64(0)
	for _, p := range onNode.Items {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		requested += capacity.RequestOf(&p).Memory
	}
	fill := n.Status.Allocatable.Memory().Value() - requested - free
	if fill <= 0 {
		t.Skipf("node %s has less than %d bytes of memory unrequested", node, free)
	}
	filler := c.members("filler-"+node, 1, "10m", "-seconds", "600")[0]
	filler.Spec.NodeName = node
	filler.Spec.Containers[0].Resources.Requests[v1.ResourceMemory] = *resource.NewQuantity(fill, resource.BinarySI)
	delete(filler.Labels, podgroup.Label)
	if err := testutil.CreatePods(c.ctx, c.cs, filler); err != nil {
		t.Fatal(err)
	}
	if phases, err := c.waitPhases([]string{filler.Name}, time.Minute, v1.PodRunning); err != nil {
		t.Fatalf("filler on %s did not start: %v", node, phases)
	}
}

// twoWorkers returns the cluster's workers; tests sized for two skip on
// another count.
func (c *cluster) twoWorkers(t *testing.T) []v1.Node {
	t.Helper()
	list, err := c.cs.CoreV1().Nodes().List(c.ctx, metav1.ListOptions{LabelSelector: "!node-role.kubernetes.io/control-plane"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Skipf("the test is sized for 2 workers, the cluster has %d", len(list.Items))
	}
	return list.Items
}
