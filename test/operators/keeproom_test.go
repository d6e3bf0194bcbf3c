package operators

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/cosched/cosched/test/testutil"
)

// Scenario 6: a PyTorchJob of high priority that fits only where a running
// low-priority PyTorchJob is (restartPolicy OnFailure, so training-operator
// recreates its evicted pods at once). cosched evicts the low job whole and
// the high job binds whole in the room it freed, while the low job's
// recreated pods wait, whole, instead of taking that room back.
func TestPreemptorKeepsItsRoom(t *testing.T) {
	s := newSuite(t)
	if err := testutil.CreatePriorityClasses(s.ctx, s.cs); err != nil {
		t.Fatal(err)
	}
	s.addNodes(3)
	s.watch.Track("lowp", 2)
	s.watch.Track("highp", 3)

	s.create(pytorchJobGVR, withPriority(s.pytorchJob("lowp", 1, 0, 0), testutil.LowPriority, "OnFailure"))
	s.waitBound("lowp", 2, 2)

	s.create(pytorchJobGVR, withPriority(s.pytorchJob("highp", 2, 0, 0), testutil.HighPriority, "OnFailure"))
	start := time.Now()
	pods := s.waitBoundWithin("highp", 3, 3, 30*time.Second)
	t.Logf("highp bound whole %s after it was created: %s", time.Since(start).Round(100*time.Millisecond), describe(pods))
	// The victims' controller brought them back; they wait, holding nothing.
	s.waitMembers("lowp", 2)
	s.holdsNothing("lowp", 5*time.Second)
	if got := s.waitBound("highp", 3, 3); !sameMap(identities(got), identities(pods)) {
		t.Errorf("highp's members moved: %s, were %s", describe(got), describe(pods))
	}
	s.watch.Check()
	t.Logf("%s; lowp waits: %s", s.watch.Stats(), s.warningEvent("lowp"))
}

// withPriority sets every replica's priority class and restart policy.
func withPriority(job *unstructured.Unstructured, class, restartPolicy string) *unstructured.Unstructured {
	specs, _, _ := unstructured.NestedMap(job.Object, "spec", "pytorchReplicaSpecs")
	for name := range specs {
		spec := specs[name].(map[string]interface{})
		spec["restartPolicy"] = restartPolicy
		tmpl := spec["template"].(map[string]interface{})["spec"].(map[string]interface{})
		tmpl["priorityClassName"] = class
	}
	_ = unstructured.SetNestedMap(job.Object, specs, "spec", "pytorchReplicaSpecs")
	return job
}

// Scenario 7: RayClusters of mixed member sizes that fit their nodes
// exactly bind whole on the first attempt: their PodGroup is never rejected.
func TestMixedExactFit(t *testing.T) {
	for _, tc := range []struct {
		name            string
		nodes           int
		nodeCPU         string
		small, big      int64
		headCPU, bigCPU string
	}{
		// 1 + 9 x 1 + 3 x 2 = 16 CPU on 4 nodes of 4.
		{name: "13 pods on 4 nodes of 4", nodes: 4, nodeCPU: "4", small: 9, big: 3, headCPU: "1", bigCPU: "2"},
		// 1 + 3 x 1 + 2 x 2 = 8 CPU on 4 nodes of 2.
		{name: "6 pods on 4 nodes of 2", nodes: 4, nodeCPU: "2", small: 3, big: 2, headCPU: "1", bigCPU: "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSuite(t)
			s.addNodesWithCPU(tc.nodes, tc.nodeCPU)
			members := int(1 + tc.small + tc.big)
			s.watch.Track("ray", members)
			start := time.Now()
			s.create(rayClusterGVR, s.mixedRayCluster("ray", tc.headCPU, tc.small, tc.big, tc.bigCPU))
			pods := s.waitBound("ray", members, members)
			t.Logf("RayCluster bound whole %s after it was created: %s", time.Since(start).Round(100*time.Millisecond), describe(pods))
			if rejected := s.podGroupEvents("ray", "GangRejected"); len(rejected) > 0 {
				t.Errorf("the PodGroup was rejected before it bound: %q", rejected)
			}
			s.watch.Check()
		})
	}
}

// mixedRayCluster is a gang-scheduled RayCluster whose head asks headCPU,
// with small workers of 1 CPU and big workers of bigCPU.
func (s *suite) mixedRayCluster(name, headCPU string, small, big int64, bigCPU string) *unstructured.Unstructured {
	rc := s.rayCluster(name, small)
	sized := func(cpu string) map[string]interface{} {
		tmpl := s.template("ray-worker", "rayproject/ray:2.46.0")
		res := map[string]interface{}{"cpu": cpu, "memory": "256Mi"}
		c := tmpl["spec"].(map[string]interface{})["containers"].([]interface{})[0].(map[string]interface{})
		c["resources"] = map[string]interface{}{"requests": res, "limits": res}
		return tmpl
	}
	head := sized(headCPU)
	head["spec"].(map[string]interface{})["containers"].([]interface{})[0].(map[string]interface{})["name"] = "ray-head"
	_ = unstructured.SetNestedField(rc.Object, head, "spec", "headGroupSpec", "template")
	group := func(groupName string, replicas int64, cpu string) map[string]interface{} {
		return map[string]interface{}{
			"groupName": groupName, "replicas": replicas, "minReplicas": replicas, "maxReplicas": replicas,
			"rayStartParams": map[string]interface{}{}, "template": sized(cpu),
		}
	}
	_ = unstructured.SetNestedSlice(rc.Object, []interface{}{group("small", small, "1"), group("big", big, bigCPU)}, "spec", "workerGroupSpecs")
	return rc
}

// Scenario 8: a PyTorchJob too big for its nodes waits, backing off longer
// each time it is turned away; when a node is added it binds within
// seconds, not when its backoff ends.
func TestRoomWakesWaitingJob(t *testing.T) {
	s := newSuite(t)
	const members = 3
	s.addNodes(members - 1)
	s.watch.Track("train", members)
	s.create(pytorchJobGVR, s.pytorchJob("train", members-1, 0, 0))
	s.waitMembers("train", members)
	t.Logf("train waits: %s", s.warningEvent("train"))
	// Past the first backoff (5 s): the next is 10 s, then 20 s.
	s.holdsNothing("train", 12*time.Second)
	s.addNodes(1)
	added := time.Now()
	pods := s.waitBoundWithin("train", members, members, 5*time.Second)
	t.Logf("train bound whole %s after the node was Ready: %s", time.Since(added).Round(100*time.Millisecond), describe(pods))
	s.watch.Check()
}

// addNodesWithCPU adds n fake nodes of the given CPU for this test and
// waits until KWOK reports them Ready.
func (s *suite) addNodesWithCPU(n int, cpu string) []string {
	s.t.Helper()
	nodes := make([]*v1.Node, 0, n)
	for i := 0; i < n; i++ {
		// testutil.Node has the ephemeral storage MPIJob launchers ask for.
		nodes = append(nodes, testutil.Node(fmt.Sprintf("%s-%d", s.id, s.nodes+i), cpu, "16Gi", map[string]string{testLabel: s.id}))
	}
	s.nodes += n
	return testutil.CreateKWOKNodes(s.ctx, s.t, s.cs, nodes, time.Minute)
}

// waitBoundWithin is waitBound with a deadline of its own: how soon the
// group binds is what the scenario checks.
func (s *suite) waitBoundWithin(group string, members, want int, within time.Duration) []v1.Pod {
	s.t.Helper()
	var pods []v1.Pod
	err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, within, true, func(ctx context.Context) (bool, error) {
		got, err := s.groupPods(ctx, group)
		if err != nil {
			return false, nil
		}
		pods = got
		return len(pods) == members && boundCount(pods) == want, nil
	})
	if err != nil {
		s.t.Fatalf("group %s: %d of %d members bound within %s, want %d of %d (%s)",
			group, boundCount(pods), len(pods), within, want, members, s.watch.Snapshot(group))
	}
	return pods
}

// podGroupEvents returns the "Reason: note" of the events on the PodGroup
// whose reason is reason.
func (s *suite) podGroupEvents(group, reason string) []string {
	s.t.Helper()
	list, err := s.cs.EventsV1().Events(s.ns).List(s.ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "PodGroup" && e.Regarding.Name == group && strings.EqualFold(e.Reason, reason) {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return out
}
