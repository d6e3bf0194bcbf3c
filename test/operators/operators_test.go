// Package operators tests cosched with real operators that write
// scheduler-plugins PodGroups: KubeRay (RayCluster) and Kubeflow
// training-operator v1 (PyTorchJob, MPIJob), built from their modules and run
// as plain processes against the local control plane by
// hack/test-operators.sh (make test-operators), which then runs this suite
// through KUBECONFIG. Without KUBECONFIG the suite skips with a message.
//
// The jobs are written the way users write them (unstructured objects of the
// operators' own APIs, nothing of their Go types is imported): the operators
// create the PodGroups and the pods, cosched places them, KWOK plays the
// kubelet on fake nodes each test creates for itself (labelled and tainted,
// so tests never see each other's room). Every test watches its namespace
// with testutil.GangWatch: no group is ever partly bound at rest.
//
// Environment (set by hack/test-operators.sh):
//
//	KUBECONFIG                  admin access to the cluster
//	COSCHED_METRICS_URL         cosched's /metrics (read with the KUBECONFIG client certificate)
//	COSCHED_OPERATOR_START_CMD  command that starts an operator, given its name as the last argument
//	COSCHED_OPERATOR_PID_DIR    <operator>.pid of the running operators
//	COSCHED_OPERATOR_LOG_DIR    <operator>.log, shown when a test fails
package operators

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

const (
	kwokAnnotation = testutil.KWOKNodeAnnotation
	// testLabel marks a test's nodes; the operators' pod templates select them.
	testLabel = "operators.cosched.dev/test"
	// Every fake node has room for exactly one member (memberCPU of nodeCPU).
	nodeCPU   = "4"
	memberCPU = "3"
	memberMem = "1Gi"
	// bindTimeout covers the operator creating the pods and cosched placing
	// them, including a group backoff after a rejection.
	bindTimeout = 90 * time.Second
	// grace: how long a released gang may be seen partly bound while its
	// binds are in flight.
	grace = 15 * time.Second
	// kuberaySchedulerName is the scheduler name KubeRay v1.5.0 stamps on
	// every pod with --batch-scheduler=scheduler-plugins; cosched serves it
	// with its alias profile.
	kuberaySchedulerName = "scheduler-plugins-scheduler"
)

var (
	rayClusterGVR = schema.GroupVersionResource{Group: "ray.io", Version: "v1", Resource: "rayclusters"}
	pytorchJobGVR = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "pytorchjobs"}
	mpiJobGVR     = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "mpijobs"}
)

type suite struct {
	t   *testing.T
	ctx context.Context
	cfg *rest.Config
	cs  kubernetes.Interface
	dyn dynamic.Interface
	pg  versioned.Interface
	ns  string
	// id labels this test's nodes.
	id    string
	nodes int
	watch *testutil.GangWatch
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	cfg := testutil.ClusterFromKubeconfig(t, "KUBECONFIG is not set: no cluster with the operators to test against (make test-operators starts one)")
	s := &suite{t: t, ctx: context.Background(), cfg: cfg}
	s.cs = kubernetes.NewForConfigOrDie(cfg)
	s.dyn = dynamic.NewForConfigOrDie(cfg)
	s.pg = versioned.NewForConfigOrDie(cfg)
	s.id = testutil.TestID(t)
	s.ns = testutil.CreateNamespace(s.ctx, t, s.cs, "op-"+s.id)
	t.Cleanup(s.cleanup)
	s.waitServiceAccount()
	s.watch = testutil.WatchGangs(s.ctx, t, s.cs, s.ns, grace)
	return s
}

func (s *suite) cleanup() {
	ctx := context.Background()
	if s.t.Failed() {
		s.t.Logf("events in %s:\n%s", s.ns, testutil.NamespaceEvents(ctx, s.cs, s.ns))
		s.logOperatorTails()
	}
	// Background deletion: the garbage collector removes what the operators
	// created (pods, PodGroups) with their owners.
	_ = s.cs.CoreV1().Namespaces().Delete(ctx, s.ns, metav1.DeleteOptions{})
	_ = s.cs.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: testLabel + "=" + s.id})
}

func (s *suite) logOperatorTails() {
	dir := os.Getenv("COSCHED_OPERATOR_LOG_DIR")
	if dir == "" {
		return
	}
	for _, name := range []string{"kuberay-operator", "training-operator"} {
		data, err := os.ReadFile(filepath.Join(dir, name+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		s.t.Logf("last lines of %s.log:\n%s", name, strings.Join(lines, "\n"))
	}
}

// waitServiceAccount waits for the namespace's default ServiceAccount: the
// API server refuses the operators' pods until kube-controller-manager has
// created it.
func (s *suite) waitServiceAccount() {
	s.t.Helper()
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := s.cs.CoreV1().ServiceAccounts(s.ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		s.t.Fatalf("the ServiceAccount %s/default never appeared (is kube-controller-manager running?): %v", s.ns, err)
	}
}

// addNodes creates n more fake nodes for this test, each with room for one
// member, and waits until KWOK reports them Ready.
func (s *suite) addNodes(n int) []string {
	s.t.Helper()
	return s.addNodesWithCPU(n, nodeCPU)
}

// --- the objects users write ------------------------------------------------------------

// template is a pod template for one member as users write it in a job:
// requests equal to limits, kept on this test's nodes.
func (s *suite) template(container, image string) map[string]interface{} {
	res := map[string]interface{}{"cpu": memberCPU, "memory": memberMem}
	return map[string]interface{}{
		"spec": map[string]interface{}{
			"nodeSelector": map[string]interface{}{testLabel: s.id},
			"tolerations": []interface{}{map[string]interface{}{
				"key": kwokAnnotation, "operator": "Exists", "effect": "NoSchedule",
			}},
			"terminationGracePeriodSeconds": int64(0),
			"containers": []interface{}{map[string]interface{}{
				"name":      container,
				"image":     image,
				"resources": map[string]interface{}{"requests": res, "limits": res},
			}},
		},
	}
}

// rayCluster is a gang-scheduled RayCluster: one head and workers workers,
// one member per node.
func (s *suite) rayCluster(name string, workers int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "ray.io/v1",
		"kind":       "RayCluster",
		"metadata": map[string]interface{}{
			"name":      name,
			"namespace": s.ns,
			"labels":    map[string]interface{}{"ray.io/gang-scheduling-enabled": "true"},
		},
		"spec": map[string]interface{}{
			"rayVersion": "2.46.0",
			"headGroupSpec": map[string]interface{}{
				"rayStartParams": map[string]interface{}{},
				"template":       s.template("ray-head", "rayproject/ray:2.46.0"),
			},
			"workerGroupSpecs": []interface{}{map[string]interface{}{
				"groupName":      "workers",
				"replicas":       workers,
				"minReplicas":    workers,
				"maxReplicas":    workers,
				"rayStartParams": map[string]interface{}{},
				"template":       s.template("ray-worker", "rayproject/ray:2.46.0"),
			}},
		},
	}}
}

// replicaSpec is one replica type of a training-operator job.
func (s *suite) replicaSpec(replicas int64, container, image string) map[string]interface{} {
	return map[string]interface{}{
		"replicas":      replicas,
		"restartPolicy": "Never",
		"template":      s.template(container, image),
	}
}

// pytorchJob is a PyTorchJob with one master and workers workers; a
// minAvailable > 0 and a timeout > 0 go into runPolicy.schedulingPolicy.
func (s *suite) pytorchJob(name string, workers, minAvailable, timeout int64) *unstructured.Unstructured {
	runPolicy := map[string]interface{}{"cleanPodPolicy": "None"}
	if minAvailable > 0 || timeout > 0 {
		sp := map[string]interface{}{}
		if minAvailable > 0 {
			sp["minAvailable"] = minAvailable
		}
		if timeout > 0 {
			sp["scheduleTimeoutSeconds"] = timeout
		}
		runPolicy["schedulingPolicy"] = sp
	}
	const image = "docker.io/pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "kubeflow.org/v1",
		"kind":       "PyTorchJob",
		"metadata":   map[string]interface{}{"name": name, "namespace": s.ns},
		"spec": map[string]interface{}{
			"runPolicy": runPolicy,
			"pytorchReplicaSpecs": map[string]interface{}{
				"Master": s.replicaSpec(1, "pytorch", image),
				"Worker": s.replicaSpec(workers, "pytorch", image),
			},
		},
	}}
}

// mpiJob is a kubeflow.org/v1 MPIJob with one launcher and workers workers.
func (s *suite) mpiJob(name string, workers int64) *unstructured.Unstructured {
	const image = "docker.io/mpioperator/mpi-pi:openmpi"
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "kubeflow.org/v1",
		"kind":       "MPIJob",
		"metadata":   map[string]interface{}{"name": name, "namespace": s.ns},
		"spec": map[string]interface{}{
			"slotsPerWorker": int64(1),
			"runPolicy":      map[string]interface{}{"cleanPodPolicy": "Running"},
			"mpiReplicaSpecs": map[string]interface{}{
				"Launcher": s.replicaSpec(1, "mpi", image),
				"Worker":   s.replicaSpec(workers, "mpi", image),
			},
		},
	}}
}

func (s *suite) create(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) {
	s.t.Helper()
	if _, err := s.dyn.Resource(gvr).Namespace(s.ns).Create(s.ctx, obj, metav1.CreateOptions{}); err != nil {
		s.t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

func (s *suite) delete(gvr schema.GroupVersionResource, name string) {
	s.t.Helper()
	if err := s.dyn.Resource(gvr).Namespace(s.ns).Delete(s.ctx, name, metav1.DeleteOptions{}); err != nil {
		s.t.Fatalf("deleting %s %s: %v", gvr.Resource, name, err)
	}
}

// --- what the operators and cosched did ------------------------------------------------------

// podGroup waits for the PodGroup an operator creates.
func (s *suite) podGroup(name string) *schedv1alpha1.PodGroup {
	s.t.Helper()
	var pg *schedv1alpha1.PodGroup
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		got, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pg = got
		return true, nil
	})
	if err != nil {
		s.t.Fatalf("the operator never created the PodGroup %s/%s: %v", s.ns, name, err)
	}
	return pg
}

// checkPodGroup compares what the operator wrote with what it is documented
// to write.
func (s *suite) checkPodGroup(pg *schedv1alpha1.PodGroup, minMember int32, timeout *int32, ownerKind string, controller bool) {
	s.t.Helper()
	if pg.Spec.MinMember != minMember {
		s.t.Errorf("PodGroup %s: minMember %d, want %d", pg.Name, pg.Spec.MinMember, minMember)
	}
	switch {
	case timeout == nil && pg.Spec.ScheduleTimeoutSeconds != nil:
		s.t.Errorf("PodGroup %s: scheduleTimeoutSeconds %d, want none", pg.Name, *pg.Spec.ScheduleTimeoutSeconds)
	case timeout != nil && (pg.Spec.ScheduleTimeoutSeconds == nil || *pg.Spec.ScheduleTimeoutSeconds != *timeout):
		s.t.Errorf("PodGroup %s: scheduleTimeoutSeconds %v, want %d", pg.Name, pg.Spec.ScheduleTimeoutSeconds, *timeout)
	}
	if cpu := pg.Spec.MinResources.Cpu(); cpu.IsZero() {
		s.t.Errorf("PodGroup %s: no minResources cpu (%v)", pg.Name, pg.Spec.MinResources)
	}
	var owner *metav1.OwnerReference
	for i := range pg.OwnerReferences {
		if pg.OwnerReferences[i].Kind == ownerKind && pg.OwnerReferences[i].Name == pg.Name {
			owner = &pg.OwnerReferences[i]
		}
	}
	switch {
	case owner == nil:
		s.t.Errorf("PodGroup %s: no owner reference to %s %s (%v)", pg.Name, ownerKind, pg.Name, pg.OwnerReferences)
	case controller != (owner.Controller != nil && *owner.Controller):
		s.t.Errorf("PodGroup %s: owner reference controller=%v, want %v", pg.Name, owner.Controller, controller)
	}
}

// groupPods lists the members of group (pods being deleted left out).
func (s *suite) groupPods(ctx context.Context, group string) ([]v1.Pod, error) {
	list, err := s.cs.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: podgroup.Label + "=" + group})
	if err != nil {
		return nil, err
	}
	var out []v1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// waitMembers waits until the operator has created exactly n members of
// group and returns them.
func (s *suite) waitMembers(group string, n int) []v1.Pod {
	s.t.Helper()
	var pods []v1.Pod
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		got, err := s.groupPods(ctx, group)
		if err != nil {
			return false, nil
		}
		pods = got
		return len(pods) == n, nil
	})
	if err != nil {
		s.t.Fatalf("group %s: the operator created %d members, want %d: %v", group, len(pods), n, err)
	}
	return pods
}

// waitBound waits until exactly want members of group are bound and returns
// the members.
func (s *suite) waitBound(group string, members, want int) []v1.Pod {
	s.t.Helper()
	return s.waitBoundWithin(group, members, want, bindTimeout)
}

// holdsNothing checks for the whole duration that no member of group is
// bound, while the operator keeps the group's pods in place.
func (s *suite) holdsNothing(group string, during time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(during)
	for time.Now().Before(deadline) {
		pods, err := s.groupPods(s.ctx, group)
		if err != nil {
			s.t.Fatalf("listing the members of %s: %v", group, err)
		}
		if n := boundCount(pods); n > 0 {
			s.t.Fatalf("group %s: %d members bound, want none: %s", group, n, describe(pods))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func boundCount(pods []v1.Pod) int {
	n := 0
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			n++
		}
	}
	return n
}

func describe(pods []v1.Pod) string {
	parts := make([]string, len(pods))
	for i, p := range pods {
		node := p.Spec.NodeName
		if node == "" {
			node = "<unbound>"
		}
		parts[i] = p.Name + "=" + node
	}
	return strings.Join(parts, " ")
}

// identities maps each member's name to its UID and node.
func identities(pods []v1.Pod) map[string]string {
	out := make(map[string]string, len(pods))
	for _, p := range pods {
		out[p.Name] = string(p.UID) + "@" + p.Spec.NodeName
	}
	return out
}

// schedulerNames returns the scheduler names on the members.
func schedulerNames(pods []v1.Pod) []string {
	set := map[string]bool{}
	for _, p := range pods {
		set[p.Spec.SchedulerName] = true
	}
	var out []string
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// warningEvent waits for a Warning event on the PodGroup and returns its
// reason and note.
func (s *suite) warningEvent(group string) string {
	s.t.Helper()
	var out string
	err := wait.PollUntilContextTimeout(s.ctx, 500*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		list, err := s.cs.EventsV1().Events(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "PodGroup" && e.Regarding.Name == group && e.Type == v1.EventTypeWarning {
				out = e.Reason + ": " + e.Note
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("no Warning event on the PodGroup %s saying why it waits: %v", group, err)
	}
	return out
}

// completeMembers makes every member's containers exit 0, as the kubelet
// reports a finished training process (KWOK completes only pods owned by a
// Job by itself).
func (s *suite) completeMembers(group string) {
	s.t.Helper()
	pods, err := s.groupPods(s.ctx, group)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, p := range pods {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			pod, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.Now()
			pod.Status.Phase = v1.PodSucceeded
			pod.Status.ContainerStatuses = nil
			for _, c := range pod.Spec.Containers {
				pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, v1.ContainerStatus{
					Name:  c.Name,
					Image: c.Image,
					State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
						ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now,
					}},
				})
			}
			for i := range pod.Status.Conditions {
				if pod.Status.Conditions[i].Type == v1.PodReady || pod.Status.Conditions[i].Type == v1.ContainersReady {
					pod.Status.Conditions[i].Status = v1.ConditionFalse
					pod.Status.Conditions[i].Reason = "PodCompleted"
				}
			}
			_, err = s.cs.CoreV1().Pods(s.ns).UpdateStatus(s.ctx, pod, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			s.t.Fatalf("completing pod %s: %v", p.Name, err)
		}
	}
}

// running waits until KWOK reports every member of group Running.
func (s *suite) running(group string) {
	s.t.Helper()
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		pods, err := s.groupPods(ctx, group)
		if err != nil || len(pods) == 0 {
			return false, nil
		}
		for _, p := range pods {
			if p.Status.Phase != v1.PodRunning {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		s.t.Fatalf("the members of %s never ran: %v", group, err)
	}
}

// jobCondition waits until a training-operator job has condition type True.
func (s *suite) jobCondition(gvr schema.GroupVersionResource, name, condition string) {
	s.t.Helper()
	var last []interface{}
	err := wait.PollUntilContextTimeout(s.ctx, 500*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		obj, err := s.dyn.Resource(gvr).Namespace(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		last = conds
		for _, c := range conds {
			m, _ := c.(map[string]interface{})
			if m["type"] == condition && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("%s %s never got condition %s=True (conditions %v): %v", gvr.Resource, name, condition, last, err)
	}
}

// podGroupGone waits until the PodGroup no longer exists.
func (s *suite) podGroupGone(name string) {
	s.t.Helper()
	err := wait.PollUntilContextTimeout(s.ctx, 500*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		s.t.Fatalf("the PodGroup %s/%s still exists: %v", s.ns, name, err)
	}
}

func (s *suite) podGroupUID(name string) types.UID {
	s.t.Helper()
	pg, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatalf("reading the PodGroup %s: %v", name, err)
	}
	return pg.UID
}

// --- the operator processes -------------------------------------------------------------------

// operatorControl is set when the suite may kill and start the operators.
func operatorControl(t *testing.T) (startCmd, pidDir string) {
	t.Helper()
	startCmd, pidDir = os.Getenv("COSCHED_OPERATOR_START_CMD"), os.Getenv("COSCHED_OPERATOR_PID_DIR")
	if startCmd == "" || pidDir == "" {
		t.Skip("COSCHED_OPERATOR_START_CMD and COSCHED_OPERATOR_PID_DIR are not set: cannot restart the operators (make test-operators sets them)")
	}
	return startCmd, pidDir
}

func operatorPID(pidDir, name string) (int, error) {
	data, err := os.ReadFile(filepath.Join(pidDir, name+".pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		return 0, err
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, fmt.Errorf("process %d of %s is gone: %w", pid, name, err)
	}
	if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != name {
		return 0, fmt.Errorf("process %d runs %s, not %s", pid, exe, name)
	}
	return pid, nil
}

func processGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || !strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
		return false
	}
	// The leader turns zombie before its other threads have exited; the
	// last of them closes the process's sockets.
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}

// restartOperator kills the operator with SIGKILL (no cleanup, like a
// crashed or evicted pod) and starts it again.
func (s *suite) restartOperator(startCmd, pidDir, name string) {
	s.t.Helper()
	pid, err := operatorPID(pidDir, name)
	if err != nil {
		s.t.Fatalf("%s is not running: %v", name, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.t.Fatalf("killing %s (pid %d): %v", name, pid, err)
	}
	err = wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return processGone(pid), nil
	})
	if err != nil {
		s.t.Fatalf("%s (pid %d) still runs after SIGKILL", name, pid)
	}
	cmd := exec.CommandContext(s.ctx, "bash", "-c", startCmd+" "+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("starting %s again (%s %s): %v\n%s", name, startCmd, name, err, out)
	}
	newPID, err := operatorPID(pidDir, name)
	if err != nil || newPID == pid {
		s.t.Fatalf("%s did not come back as a new process (old pid %d, new %d): %v", name, pid, newPID, err)
	}
	s.t.Logf("killed %s (pid %d) with SIGKILL and started it again (pid %d)", name, pid, newPID)
}

// --- cosched's metrics ------------------------------------------------------------------------

// gangGauges are cosched's gauges of what it keeps per group; all are 0 when
// no group is in flight.
var gangGauges = []string{"cosched_gang_tracked_groups", "cosched_gang_reservations", "cosched_gang_releasing_members"}

// coschedGauges reads cosched's /metrics (COSCHED_METRICS_URL) with the
// client certificate of KUBECONFIG and sums the samples of each named
// metric; a metric cosched does not export is missing from the map.
func (s *suite) coschedGauges(ctx context.Context, names ...string) (map[string]float64, error) {
	client, err := testutil.MetricsClient(s.cfg)
	if err != nil {
		return nil, err
	}
	body, err := testutil.FetchBody(ctx, client, os.Getenv("COSCHED_METRICS_URL"))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			// A registered metric counts as present even without samples.
			name, _, _ := strings.Cut(rest, " ")
			for _, want := range names {
				if name == want {
					out[name] += 0
				}
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(series, "{")
		for _, want := range names {
			if name == want {
				v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
				if err == nil {
					out[name] += v
				}
			}
		}
	}
	return out, nil
}
