package kind

// This file's name sorts last: its test stops a worker and starts it again,
// and go test runs a package's files in name order.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/test/testutil"
)

// outOfService is the taint an administrator puts on a node that is gone
// for good (non-graceful node shutdown): its pods are deleted without the
// kubelet that would otherwise confirm their end.
var outOfService = v1.Taint{Key: v1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: v1.TaintEffectNoExecute}

// TestWorkerStoppedWhileGangsRunAndWait stops the container of a worker
// that holds a member of a running gang and a member of a gang waiting at
// Permit for its third member:
//   - when the node lifecycle controller taints the node unreachable, cosched
//     releases the waiting gang (an event says which node), and once
//     complete the gang binds whole on the worker that still runs: nothing
//     of it goes to the lost node;
//   - the running gang's member there is evicted and, once the administrator
//     marks the node out of service, deleted; its replacement (created as a
//     controller would) joins the running gang on the worker that runs.
//
// The worker is started again at the end and its routes restored.
func TestWorkerStoppedWhileGangsRunAndWait(t *testing.T) {
	c := newCluster(t)
	o := c.operate(t)
	workers := c.twoWorkers(t)
	watch := testutil.WatchGangs(c.ctx, t, c.cs, c.ns, 15*time.Second)

	// The worker to lose is the one the leader does not run on: a leader
	// that died with the node would hand the members to a standby that
	// still sees the node healthy.
	remaining := c.leaderNode(t)
	lost := workers[0].Name
	if lost == remaining {
		lost = workers[1].Name
	}

	// The waiting gang, which prefers the worker to lose.
	const waits = "waits"
	watch.Track(waits, 3)
	c.createGroup(t, waits, 3, 600)
	waiting := c.members(waits, 3, "50m", "-seconds", "600")
	waitNames := testutil.Names(waiting)
	for _, p := range waiting {
		p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{
			Weight:     100,
			Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{lost}}}},
		}}}}
	}
	hold(waiting[2])
	if err := testutil.CreatePods(c.ctx, c.cs, waiting...); err != nil {
		t.Fatal(err)
	}
	if nominated := c.waitNominated(t, waitNames[:2], time.Minute); nominated[waitNames[0]] != lost && nominated[waitNames[1]] != lost {
		t.Fatalf("no member of %s waits on %s, the worker to lose: %v", waits, lost, nominated)
	}

	// The running gang: one member on each worker, evicted 5 s after its
	// node is unreachable (instead of the API server's default 300 s).
	const runs = "runs"
	c.createGroup(t, runs, 2, 0)
	running := c.members(runs, 2, "50m", "-seconds", "600")
	for i, node := range []string{lost, remaining} {
		running[i].Spec.Tolerations = []v1.Toleration{
			{Key: v1.TaintNodeUnreachable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](5)},
			{Key: v1.TaintNodeNotReady, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](5)},
		}
		running[i].Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
			NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{node}}}}},
		}}}
	}
	if err := testutil.CreatePods(c.ctx, c.cs, running...); err != nil {
		t.Fatal(err)
	}
	if _, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, testutil.Names(running), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if phases, err := c.waitPhases(testutil.Names(running), 2*time.Minute, v1.PodRunning); err != nil {
		t.Fatalf("the running gang did not start: %v", phases)
	}

	t.Logf("stopping worker %s (members of %s wait there, %s of %s runs there; the leader runs on %s)", lost, waits, running[0].Name, runs, remaining)
	c.stopWorker(t, o, lost)
	started := time.Now()

	// 1. The waiting gang is released when the node is lost.
	ev := c.waitEvent(t, waits, "was tainted node.kubernetes.io/unreachable:NoExecute", 3*time.Minute)
	t.Logf("%s after %s: %s", waits, time.Since(started).Round(time.Second), ev)
	// Released, its members wait again, on the worker that runs.
	c.waitNominatedOn(t, waitNames[:2], remaining, 2*time.Minute)
	c.release(t, waitNames[2])
	nodes, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, waitNames, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for pod, node := range nodes {
		if node != remaining {
			t.Errorf("%s of the released gang was bound to %s, want %s (the worker that runs)", pod, node, remaining)
		}
	}
	if phases, err := c.waitPhases(waitNames, 2*time.Minute, v1.PodRunning); err != nil {
		t.Errorf("the released gang did not start on %s: %v", remaining, phases)
	}

	// 2. The running gang's member on the lost node is evicted; the
	// administrator's out-of-service taint lets the pod garbage collector
	// delete it; its replacement joins the gang on the remaining worker.
	c.taintNode(t, lost, &outOfService)
	if err := wait.PollUntilContextTimeout(c.ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, running[0].Name, metav1.GetOptions{})
		return err != nil, nil
	}); err != nil {
		t.Fatalf("%s on the lost node was never deleted: %v", running[0].Name, err)
	}
	replacement := c.members(runs, 1, "50m", "-seconds", "600")[0]
	replacement.Name = running[0].Name + "-replacement"
	if err := testutil.CreatePods(c.ctx, c.cs, replacement); err != nil {
		t.Fatal(err)
	}
	if nodes, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, []string{replacement.Name, running[1].Name}, 2*time.Minute); err != nil {
		t.Fatal(err)
	} else if nodes[replacement.Name] != remaining {
		t.Errorf("the replacement was bound to %s, want %s", nodes[replacement.Name], remaining)
	}
	watch.Check()
}

// stopWorker stops node's container; at the end of the test the container is
// started again, the out-of-service taint removed, the node's routes put back
// (hack/kind/network.sh) and the node waited for until Ready.
func (c *cluster) stopWorker(t *testing.T, o operations, node string) {
	t.Helper()
	if out, err := docker(c.ctx, "stop", node); err != nil {
		t.Fatalf("docker stop %s: %v: %s", node, err, out)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if out, err := docker(ctx, "start", node); err != nil {
			t.Errorf("docker start %s: %v: %s", node, err, out)
			return
		}
		c.untaintNode(t, node, &outOfService)
		if err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
			n, err := c.cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			return err == nil && testutil.NodeReady(n), nil
		}); err != nil {
			t.Errorf("worker %s is not Ready again after its restart", node)
			return
		}
		if out, err := runShell(ctx, o.network); err != nil {
			t.Errorf("restoring the pod network (%s): %v\n%s", o.network, err, out)
		}
	})
}

func (c *cluster) taintNode(t *testing.T, node string, taint *v1.Taint) {
	t.Helper()
	c.patchTaints(t, node, func(taints []v1.Taint) []v1.Taint { return append(taints, *taint) })
}

func (c *cluster) untaintNode(t *testing.T, node string, taint *v1.Taint) {
	t.Helper()
	c.patchTaints(t, node, func(taints []v1.Taint) []v1.Taint {
		var out []v1.Taint
		for _, x := range taints {
			if !x.MatchTaint(taint) {
				out = append(out, x)
			}
		}
		return out
	})
}

// patchTaints rewrites node's taints with a JSON merge patch guarded by the
// resourceVersion it read (the node lifecycle controller writes them too).
func (c *cluster) patchTaints(t *testing.T, node string, change func([]v1.Taint) []v1.Taint) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := c.cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		data, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": n.ResourceVersion},
			"spec":     map[string]any{"taints": change(n.Spec.Taints)},
		})
		_, err = c.cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, data, metav1.PatchOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Errorf("changing the taints of %s: %v", node, err)
	}
}

func runShell(ctx context.Context, cmd string) (string, error) {
	out, err := execCommand(ctx, "bash", "-c", cmd)
	return strings.TrimSpace(out), err
}
