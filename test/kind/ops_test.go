package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// What the fault tests act on as an operator of the cluster would: the helm
// release of the chart, the scheduler's Deployment and Lease, and the node
// containers. hack/kind-e2e.sh sets the variables.
const (
	schedulerNamespace = "cosched-system"
	schedulerName      = "cosched" // Deployment, Lease and helm release
)

type operations struct {
	helm, chart, kubeconfig string
	// network re-creates the pod network's routes after a node restart.
	network string
}

// operate returns how to reach the release and the nodes; tests that change
// them skip when hack/kind-e2e.sh did not say.
func (c *cluster) operate(t *testing.T) operations {
	t.Helper()
	o := operations{helm: os.Getenv("KIND_HELM"), chart: os.Getenv("KIND_CHART"), kubeconfig: os.Getenv("KIND_KUBECONFIG"), network: os.Getenv("KIND_NETWORK_CMD")}
	if o.helm == "" || o.chart == "" || o.network == "" {
		t.Skip("KIND_HELM, KIND_CHART and KIND_NETWORK_CMD are not set: the test cannot change the release or the nodes (make test-kind sets them)")
	}
	return o
}

// helmCmd runs helm on the release and returns its combined output.
func (o operations) helmCmd(ctx context.Context, args ...string) (string, error) {
	return execCommand(ctx, o.helm, append(args, "--kubeconfig", o.kubeconfig)...)
}

// revision returns the release's current revision.
func (o operations) revision(t *testing.T) int {
	t.Helper()
	out, err := o.helmCmd(context.Background(), "status", schedulerName, "-o", "json")
	if err != nil {
		t.Fatalf("helm status: %v\n%s", err, out)
	}
	var status struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil {
		t.Fatalf("helm status output: %v\n%s", err, out)
	}
	return status.Version
}

// rollbackAfter puts the release back to revision rev when the test ends,
// and waits for the scheduler to be whole again.
func (c *cluster) rollbackAfter(t *testing.T, o operations, rev int) {
	t.Cleanup(func() {
		if o.revision(t) == rev {
			return
		}
		if out, err := o.helmCmd(context.Background(), "rollback", schedulerName, fmt.Sprint(rev), "--wait", "--timeout", "3m"); err != nil {
			t.Errorf("helm rollback to %d: %v\n%s", rev, err, out)
		}
		c.waitSchedulerRolledOut(t, 3*time.Minute)
	})
}

// docker runs the docker CLI (kind's nodes are its containers, named as the
// nodes).
func docker(ctx context.Context, args ...string) (string, error) {
	out, err := execCommand(ctx, "docker", args...)
	return strings.TrimSpace(out), err
}

func execCommand(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// leader returns the name of the scheduler pod that holds the Lease
// (kube-scheduler's identity is "<hostname>_<uuid>", the hostname the pod's).
func (c *cluster) leader(t *testing.T) string {
	t.Helper()
	lease, err := c.cs.CoordinationV1().Leases(schedulerNamespace).Get(c.ctx, schedulerName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("no holder of the Lease %s/%s: %v", schedulerNamespace, schedulerName, err)
	}
	name, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")
	return name
}

// leaderNode returns the node of the scheduler pod that holds the Lease.
func (c *cluster) leaderNode(t *testing.T) string {
	t.Helper()
	name := c.leader(t)
	pod, err := c.cs.CoreV1().Pods(schedulerNamespace).Get(c.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the leader's pod %s: %v", name, err)
	}
	return pod.Spec.NodeName
}

// waitNewLeader waits until a pod other than old holds the Lease.
func (c *cluster) waitNewLeader(t *testing.T, old string, timeout time.Duration) string {
	t.Helper()
	var holder string
	err := wait.PollUntilContextTimeout(c.ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		lease, err := c.cs.CoordinationV1().Leases(schedulerNamespace).Get(ctx, schedulerName, metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return false, nil
		}
		holder, _, _ = strings.Cut(*lease.Spec.HolderIdentity, "_")
		return holder != "" && holder != old, nil
	})
	if err != nil {
		t.Fatalf("no other replica took the Lease from %s within %s (holder %q)", old, timeout, holder)
	}
	return holder
}

// schedulerPods returns the scheduler Deployment's pods that are not being
// deleted.
func (c *cluster) schedulerPods(t *testing.T) []v1.Pod {
	t.Helper()
	deploy, err := c.cs.AppsV1().Deployments(schedulerNamespace).Get(c.ctx, schedulerName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.cs.CoreV1().Pods(schedulerNamespace).List(c.ctx, metav1.ListOptions{LabelSelector: labels.Set(deploy.Spec.Selector.MatchLabels).String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// waitSchedulerRolledOut waits until every replica of the Deployment runs
// its current template and is ready.
func (c *cluster) waitSchedulerRolledOut(t *testing.T, timeout time.Duration) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(c.ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		d, err = c.cs.AppsV1().Deployments(schedulerNamespace).Get(ctx, schedulerName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		want := *d.Spec.Replicas
		s := d.Status
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.ReadyReplicas == want && s.Replicas == want, nil
	})
	if err != nil {
		t.Fatalf("the scheduler Deployment did not roll out within %s: %+v", timeout, d.Status)
	}
	return d
}

// waitNominated waits until each pod shows the node it holds while it waits
// at Permit (status.nominatedNodeName; the shipped profile writes it) and
// returns them.
func (c *cluster) waitNominated(t *testing.T, names []string, timeout time.Duration) map[string]string {
	t.Helper()
	return c.waitNominatedOn(t, names, "", timeout)
}

// waitNominatedOn is waitNominated for pods that must wait on node ("" for
// any node).
func (c *cluster) waitNominatedOn(t *testing.T, names []string, node string, timeout time.Duration) map[string]string {
	t.Helper()
	nominated := map[string]string{}
	err := wait.PollUntilContextTimeout(c.ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			pod, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			if pod.Spec.NodeName != "" {
				return false, fmt.Errorf("%s was bound to %s while its gang is short", name, pod.Spec.NodeName)
			}
			nominated[name] = pod.Status.NominatedNodeName
		}
		for _, n := range nominated {
			if n == "" || (node != "" && n != node) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		where := ""
		if node != "" {
			where = " on " + node
		}
		t.Fatalf("the members did not all wait at Permit%s (nominated %v): %v", where, nominated, err)
	}
	return nominated
}

// waitEvent waits for an event on the PodGroup whose "Reason: note" text
// contains want and returns it.
func (c *cluster) waitEvent(t *testing.T, group, want string, timeout time.Duration) string {
	t.Helper()
	var seen []string
	var found string
	err := wait.PollUntilContextTimeout(c.ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.cs.CoreV1().Events(c.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=PodGroup,involvedObject.name=" + group})
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, e := range list.Items {
			text := e.Reason + ": " + e.Message
			seen = append(seen, text)
			if strings.Contains(text, want) {
				found = text
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no event on PodGroup %s containing %q within %s; events: %q", group, want, timeout, seen)
	}
	return found
}

// podsOf returns the pods of group that exist now, by name.
func (c *cluster) podsOf(t *testing.T, group string) map[string]v1.Pod {
	t.Helper()
	list, err := c.cs.CoreV1().Pods(c.ns).List(c.ctx, metav1.ListOptions{LabelSelector: podgroup.Label + "=" + group})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Pod{}
	for _, p := range list.Items {
		out[p.Name] = p
	}
	return out
}

// holdGate keeps a member from being scheduled while it counts toward its
// group's quorum of pods, so that its siblings wait at Permit for it.
const holdGate = "kind.cosched.dev/hold"

func hold(pod *v1.Pod) {
	pod.Spec.SchedulingGates = append(pod.Spec.SchedulingGates, v1.PodSchedulingGate{Name: holdGate})
}

// release removes the hold from a member.
func (c *cluster) release(t *testing.T, name string) {
	t.Helper()
	data := []byte(`{"spec":{"schedulingGates":null}}`)
	if _, err := c.cs.CoreV1().Pods(c.ns).Patch(c.ctx, name, types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
		t.Fatalf("releasing %s: %v", name, err)
	}
}

// createGroup creates the PodGroup name with a quorum of minMember and, when
// timeoutSeconds is not 0, that scheduleTimeoutSeconds.
func (c *cluster) createGroup(t *testing.T, name string, minMember, timeoutSeconds int32) {
	t.Helper()
	pg := testutil.PodGroup(c.ns, name, minMember)
	if timeoutSeconds != 0 {
		pg = testutil.WithTimeout(pg, timeoutSeconds)
	}
	if _, err := c.pg.SchedulingV1alpha1().PodGroups(c.ns).Create(c.ctx, pg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating PodGroup %s: %v", name, err)
	}
}
