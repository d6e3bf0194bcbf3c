// Package e2e tests cosched the way users run it: a separate scheduler
// process against a real control plane, reached only through KUBECONFIG.
// make test-e2e brings up the local control plane (hack/local-up.sh) and runs
// this suite (make test-compat also against older releases); the kind
// cluster of real kubelets has its own suite, test/kind. Without KUBECONFIG
// the suite skips with a message.
//
// The suite needs a controller that plays the kubelet for fake nodes: KWOK
// (hack/local-up.sh runs it). Every test creates its own fake nodes with a
// label of its own, so tests do not see each other's room.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/pkg/podgroupstatus"
	"github.com/cosched/cosched/test/testutil"
)

const (
	kwokAnnotation = testutil.KWOKNodeAnnotation
	// testLabel marks a test's nodes; its pods select them.
	testLabel   = "e2e.cosched.dev/test"
	bindTimeout = 60 * time.Second
)

type suite struct {
	t   *testing.T
	ctx context.Context
	cfg *rest.Config
	cs  kubernetes.Interface
	pg  versioned.Interface
	ns  string
	// id labels this test's nodes and pods.
	id string
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	cfg := testutil.ClusterFromKubeconfig(t, "KUBECONFIG is not set: no cluster to test against (make test-e2e starts a local one)")
	s := &suite{t: t, ctx: context.Background(), cfg: cfg}
	s.cs = kubernetes.NewForConfigOrDie(cfg)
	s.pg = versioned.NewForConfigOrDie(cfg)
	s.id = testutil.TestID(t)
	s.ns = testutil.CreateNamespace(s.ctx, t, s.cs, "e2e-"+s.id)
	t.Cleanup(s.cleanup)
	// Pods created before kube-controller-manager made the namespace's
	// default ServiceAccount are refused.
	s.waitServiceAccount()
	return s
}

func (s *suite) cleanup() {
	ctx := context.Background()
	if s.t.Failed() {
		s.t.Logf("events in %s:\n%s", s.ns, testutil.NamespaceEvents(ctx, s.cs, s.ns))
	}
	_ = s.cs.CoreV1().Namespaces().Delete(ctx, s.ns, metav1.DeleteOptions{})
	_ = s.cs.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: testLabel + "=" + s.id})
}

// nodeSpec describes one fake node.
type nodeSpec struct {
	cpu, memory string
	labels      map[string]string
	// resources override the node's other capacity and allocatable
	// (testutil.Node's pods, ephemeral-storage, hugepages).
	resources v1.ResourceList
}

// sameNodes returns n identical node specs.
func sameNodes(n int, cpu, memory string) []nodeSpec {
	out := make([]nodeSpec, n)
	for i := range out {
		out[i] = nodeSpec{cpu: cpu, memory: memory}
	}
	return out
}

// nodes creates fake nodes for this test and waits until KWOK reports them
// Ready.
func (s *suite) nodes(specs []nodeSpec) []string {
	s.t.Helper()
	nodes := make([]*v1.Node, 0, len(specs))
	for i, spec := range specs {
		l := map[string]string{testLabel: s.id}
		for k, v := range spec.labels {
			l[k] = v
		}
		node := testutil.Node(fmt.Sprintf("%s-%d", s.id, i), spec.cpu, spec.memory, l)
		for name, q := range spec.resources {
			node.Status.Capacity[name], node.Status.Allocatable[name] = q, q
		}
		nodes = append(nodes, node)
	}
	return testutil.CreateKWOKNodes(s.ctx, s.t, s.cs, nodes, bindTimeout)
}

// pod is a member or plain pod for cosched, kept on this test's nodes.
func (s *suite) pod(name, group, cpu, memory string) *v1.Pod {
	p := testutil.Pod(s.ns, name, group, cpu, memory)
	p.Spec.NodeSelector = map[string]string{testLabel: s.id}
	p.Spec.Tolerations = []v1.Toleration{{Key: kwokAnnotation, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	return p
}

func (s *suite) members(group string, n int, cpu, memory string) []*v1.Pod {
	var out []*v1.Pod
	for i := 0; i < n; i++ {
		out = append(out, s.pod(fmt.Sprintf("%s-%d", group, i), group, cpu, memory))
	}
	return out
}

func (s *suite) group(pg *schedv1alpha1.PodGroup) {
	s.t.Helper()
	pg.Namespace = s.ns
	if _, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Create(s.ctx, pg, metav1.CreateOptions{}); err != nil {
		s.t.Fatalf("creating PodGroup %s: %v", pg.Name, err)
	}
}

func (s *suite) create(pods ...*v1.Pod) []string {
	s.t.Helper()
	if err := testutil.CreatePods(s.ctx, s.cs, pods...); err != nil {
		s.t.Fatal(err)
	}
	return testutil.Names(pods)
}

func (s *suite) allBound(names []string) map[string]string {
	s.t.Helper()
	nodes, err := testutil.WaitAllBound(s.ctx, s.cs, s.ns, names, bindTimeout)
	if err != nil {
		s.t.Fatal(err)
	}
	return nodes
}

func (s *suite) noneBound(names []string, during time.Duration) {
	s.t.Helper()
	if err := testutil.ExpectNoneBound(s.ctx, s.cs, s.ns, names, during); err != nil {
		s.t.Fatal(err)
	}
}

func (s *suite) running(names []string) {
	s.t.Helper()
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			p, err := s.cs.CoreV1().Pods(s.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil || p.Status.Phase != v1.PodRunning {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		s.t.Fatalf("pods %v never ran: %v", names, err)
	}
}

func (s *suite) phase(group string, want schedv1alpha1.PodGroupPhase) *schedv1alpha1.PodGroup {
	s.t.Helper()
	return s.podGroupWhere(group, "phase "+string(want), func(pg *schedv1alpha1.PodGroup) bool {
		// A group nobody wrote a phase for yet is Pending.
		return pg.Status.Phase == want || want == schedv1alpha1.PodGroupPending && pg.Status.Phase == ""
	})
}

// podGroupWhere waits until the PodGroup meets cond.
func (s *suite) podGroupWhere(group, what string, cond func(*schedv1alpha1.PodGroup) bool) *schedv1alpha1.PodGroup {
	s.t.Helper()
	var got *schedv1alpha1.PodGroup
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		pg, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Get(ctx, group, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = pg
		return cond(pg), nil
	})
	if err != nil {
		s.t.Fatalf("PodGroup %s never reached %s (annotations %v, status %+v)", group, what, got.Annotations, got.Status)
	}
	return got
}

func TestJobGangRuns(t *testing.T) {
	s := newSuite(t)
	s.nodes(sameNodes(2, "4", "8Gi"))
	s.group(testutil.PodGroup(s.ns, "job", 3))
	tmpl := s.pod("unused", "job", "1", "1Gi")
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "job"},
		Spec: batchv1.JobSpec{
			Parallelism:  ptr.To[int32](3),
			Completions:  ptr.To[int32](3),
			BackoffLimit: ptr.To[int32](0),
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels},
				Spec:       tmpl.Spec,
			},
		},
	}
	job.Spec.Template.Spec.RestartPolicy = v1.RestartPolicyNever
	if _, err := s.cs.BatchV1().Jobs(s.ns).Create(s.ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var names []string
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		list, err := s.cs.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: podgroup.Label + "=job"})
		if err != nil {
			return false, nil
		}
		names = names[:0]
		for _, p := range list.Items {
			names = append(names, p.Name)
		}
		return len(names) == 3, nil
	})
	if err != nil {
		t.Fatalf("the Job controller created %d of 3 pods: %v", len(names), err)
	}
	s.allBound(names)
	// KWOK runs the pods and completes them, as a kubelet would for a Job
	// that ends: the group goes on to Finished.
	s.phase("job", schedv1alpha1.PodGroupFinished)
}

func TestGangOneShortNeverBinds(t *testing.T) {
	s := newSuite(t)
	s.nodes(sameNodes(2, "4", "8Gi"))
	s.group(testutil.PodGroup(s.ns, "short", 4))
	members := s.members("short", 4, "500m", "512Mi")
	names := s.create(members[:3]...)
	s.noneBound(names, 10*time.Second)
	s.phase("short", schedv1alpha1.PodGroupPending)
	// The positive control: the same nodes bind the group once it is whole,
	// so the check above saw a scheduler that chose not to bind.
	s.allBound(append(names, s.create(members[3])...))
}

func TestGangsCompeteWithoutDeadlock(t *testing.T) {
	s := newSuite(t)
	s.nodes(sameNodes(2, "4", "8Gi"))
	var all [][]string
	for _, g := range []string{"a", "b", "c"} {
		s.group(testutil.PodGroup(s.ns, g, 4))
	}
	pods := map[string][]*v1.Pod{}
	for _, g := range []string{"a", "b", "c"} {
		pods[g] = s.members(g, 4, "1500m", "1Gi")
	}
	// Interleaved, so that one-by-one scheduling would hold a part of each.
	for i := 0; i < 4; i++ {
		for _, g := range []string{"a", "b", "c"} {
			s.create(pods[g][i])
		}
	}
	for _, g := range []string{"a", "b", "c"} {
		all = append(all, testutil.Names(pods[g]))
	}
	// Two nodes of 4 CPU hold one gang of 4 x 1.5 CPU: exactly one
	// completes, the others hold nothing.
	deadline := time.Now().Add(bindTimeout)
	for {
		complete, partial := 0, 0
		for _, names := range all {
			nodes, err := testutil.BoundNodes(s.ctx, s.cs, s.ns, names)
			if err != nil {
				t.Fatal(err)
			}
			switch n := testutil.CountBound(nodes); {
			case n == len(names):
				complete++
			case n > 0:
				partial++
			}
		}
		if complete == 1 && partial == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want exactly one complete gang and no partial ones; got %d complete, %d partial", complete, partial)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestAtomicPlacementOnRacks(t *testing.T) {
	s := newSuite(t)
	const rack = "topology.cosched.dev/rack"
	// rack-0 has small nodes, rack-1 big ones; the gang fits only rack-1.
	var specs []nodeSpec
	for i, cpu := range []string{"2", "2", "8", "8"} {
		specs = append(specs, nodeSpec{cpu: cpu, memory: "16Gi", labels: map[string]string{rack: fmt.Sprintf("rack-%d", i/2)}})
	}
	nodes := s.nodes(specs)
	pg := testutil.PodGroup(s.ns, "ring", 4)
	pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: rack}
	s.group(pg)
	names := s.create(s.members("ring", 4, "3", "1Gi")...)
	for name, node := range s.allBound(names) {
		if node != nodes[2] && node != nodes[3] {
			t.Errorf("%s landed on %s, outside rack-1", name, node)
		}
	}
}

// TestRestartWhileGangWaits kills cosched while members wait at Permit
// (reserved in its memory, not bound). Afterwards the gang must be bound
// whole or not at all, and once its last member arrives, whole.
func TestRestartWhileGangWaits(t *testing.T) {
	restart := os.Getenv("COSCHED_RESTART_CMD")
	if restart == "" {
		t.Skip("COSCHED_RESTART_CMD is not set: no way to restart cosched in this cluster")
	}
	s := newSuite(t)
	s.nodes(sameNodes(2, "4", "8Gi"))
	s.group(testutil.WithTimeout(testutil.PodGroup(s.ns, "job", 3), 300))
	pods := s.members("job", 3, "1", "1Gi")
	// The third member is held by a scheduling gate: the first two reserve
	// and wait at Permit for it.
	pods[2].Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "e2e.cosched.dev/hold"}}
	names := s.create(pods...)
	s.noneBound(names, 3*time.Second)
	if out, err := exec.Command("bash", "-c", restart).CombinedOutput(); err != nil {
		t.Fatalf("restarting cosched (%s): %v\n%s", restart, err, out)
	}
	s.noneBound(names, 5*time.Second)
	// Release the third member: the restarted scheduler places all three.
	p, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, pods[2].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.SchedulingGates = nil
	if _, err := s.cs.CoreV1().Pods(s.ns).Update(s.ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.allBound(names)
}

// TestStatusAsUsersSeeIt reads a PodGroup the way users do, with kubectl.
func TestStatusAsUsersSeeIt(t *testing.T) {
	s := newSuite(t)
	s.nodes(sameNodes(1, "4", "8Gi"))
	s.group(testutil.PodGroup(s.ns, "train", 2))
	names := s.create(s.members("train", 2, "1", "1Gi")...)
	s.allBound(names)
	s.running(names)
	s.phase("train", schedv1alpha1.PodGroupRunning)
	// The status and the scheduled-members annotation are two writes.
	s.podGroupWhere("train", "2 scheduled members", func(pg *schedv1alpha1.PodGroup) bool {
		return pg.Annotations[podgroupstatus.ScheduledMembersAnnotation] == "2"
	})
	out := kubectl(t, "get", "podgroups", "-n", s.ns)
	for _, want := range []string{"PHASE", "MINMEMBER", "RUNNING", "train", "Running"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get podgroups lacks %q:\n%s", want, out)
		}
	}
	describe := kubectl(t, "describe", "podgroup", "-n", s.ns, "train")
	for _, want := range []string{"Min Member:", "Schedule Start Time:", "cosched.dev/scheduled-members: 2"} {
		if !strings.Contains(describe, want) {
			t.Errorf("kubectl describe podgroup lacks %q:\n%s", want, describe)
		}
	}

	// A gang that cannot fit says why, on the PodGroup.
	s.group(testutil.PodGroup(s.ns, "huge", 2))
	s.create(s.members("huge", 2, "3", "1Gi")...)
	err := wait.PollUntilContextTimeout(s.ctx, time.Second, bindTimeout, true, func(ctx context.Context) (bool, error) {
		return strings.Contains(kubectl(t, "describe", "podgroup", "-n", s.ns, "huge"), "GangRejected"), nil
	})
	if err != nil {
		t.Errorf("no GangRejected event in kubectl describe podgroup huge:\n%s", kubectl(t, "describe", "podgroup", "-n", s.ns, "huge"))
	}
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("KUBECTL")
	if bin == "" {
		bin = "kubectl"
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
