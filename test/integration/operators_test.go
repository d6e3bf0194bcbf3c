package integration

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedv1alpha1ac "sigs.k8s.io/scheduler-plugins/pkg/generated/applyconfiguration/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/test/testutil"
)

// operatorCase is one PodGroup exactly as a real client writes it, with the
// pods that client (or the workload controller it drives) creates.
type operatorCase struct {
	name string
	// args adjusts the CoschedGang arguments (nil: the test defaults).
	args func(*config.CoschedGangArgs)
	// group is the PodGroup the client sends; its namespace is set at run
	// time. The API server must store it unchanged.
	group *schedv1alpha1.PodGroup
	// apply: the client writes with server-side apply, field manager and
	// all, instead of a create.
	apply bool
	// members are the client's pods, in the order it creates them; a
	// GenerateName is resolved by the API server.
	members []*v1.Pod
	// run creates the members and checks the documented outcome; nil means
	// "create them all, every member binds".
	run func(s *scenario, members []*v1.Pod)
}

// TestOperatorPodGroups holds the exact PodGroup each client that emits
// scheduler-plugins PodGroups writes, and the member pods it creates: the
// API server (with the CRD from manifests/) accepts the object as sent, and
// cosched schedules the group with the documented meaning of each field
// (docs/clients.md). Each case names the client source it was read from.
//
// Owner references point at owners that do not exist (fake UIDs): the API
// server accepts that, and the harness runs no garbage collector (no
// kube-controller-manager), so nothing is deleted behind the test's back.
func TestOperatorPodGroups(t *testing.T) {
	c := startCluster(t)

	for _, tc := range operatorCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := c.newScenario(t, nodes("op", 2, "4", "16Gi"), tc.args)
			sent := tc.group.DeepCopy()
			sent.Namespace = s.ns
			writePodGroupAsClient(s, sent, tc.apply)
			members := make([]*v1.Pod, len(tc.members))
			for i, p := range tc.members {
				members[i] = p.DeepCopy()
			}
			if tc.run == nil {
				s.expectAllBound(createMembers(s, members...), bindTimeout)
				return
			}
			tc.run(s, members)
		})
	}
}

func operatorCases() []operatorCase {
	// One owner UID per (fake) owning object.
	var (
		rayUID, pytorchUID, pytorchPolicyUID, pytorchZeroUID, tfMPIUID   = uuid.NewUUID(), uuid.NewUUID(), uuid.NewUUID(), uuid.NewUUID(), uuid.NewUUID()
		trainJobUID, trainJobNodeUID                                     = uuid.NewUUID(), uuid.NewUUID()
		mpiUID, mpiLauncherJobUID, mpiPolicyUID, mpiPolicyLauncherJobUID = uuid.NewUUID(), uuid.NewUUID(), uuid.NewUUID(), uuid.NewUUID()
		sparkUID, sparkDriverUID, sparkHugeUID                           = uuid.NewUUID(), uuid.NewUUID(), uuid.NewUUID()
	)
	return []operatorCase{
		{
			// KubeRay ray-operator v1.5.0, controllers/ray/batchscheduler/
			// scheduler-plugins/scheduler_plugins.go: createPodGroup (named
			// after the RayCluster; an owner reference without controller
			// or blockOwnerDeletion; minMember = desired workers + 1 head;
			// minResources = utils.CalculateDesiredResources, the requests
			// of head and workers; no timeout). AddMetadataToChildResource
			// labels the pods and stamps the hard-coded schedulerName
			// "scheduler-plugins-scheduler"; the pods themselves come from
			// raycluster_controller.go buildHeadPod/buildWorkerPod
			// (GenerateName from utils.PodName, controller reference,
			// common/pod.go labelPod labels).
			name: "KubeRay v1.5.0 RayCluster with gang scheduling",
			group: &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{
					Name:            "raycluster-gang",
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "ray.io/v1", Kind: "RayCluster", Name: "raycluster-gang", UID: rayUID}},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 3, MinResources: testutil.Resources("3", "6Gi")},
			},
			members: []*v1.Pod{
				rayPod("raycluster-gang", "head", "headgroup", rayUID),
				rayPod("raycluster-gang", "worker", "workers", rayUID),
				rayPod("raycluster-gang", "worker", "workers", rayUID),
			},
		},
		{
			// Kubeflow training-operator v1.8.1, pkg/controller.v1/common/
			// job.go ReconcileJobs (no schedulingPolicy: minMember = all
			// replicas, minResources = CalcPGMinResources in util.go, no
			// timeout) and scheduling.go SyncPodGroup (named after the job,
			// the job's annotations copied, job_controller.go
			// GenOwnerReference: controller and blockOwnerDeletion). Pods:
			// common/pod.go createNewPod (GenGeneralName, GenLabels plus
			// replica type/index and job-role on the master) and
			// control/podgroup_control.go DecoratePodTemplateSpec (the pod
			// group label, --gang-scheduler-name as schedulerName).
			name: "training-operator v1.8.1 PyTorchJob without schedulingPolicy",
			group: &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{
					Name:            "pytorch-mnist",
					Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob"}`},
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("pytorch-mnist", pytorchUID), kubeflowGVK("PyTorchJob"))},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 3, MinResources: testutil.Resources("3", "6Gi")},
			},
			members: []*v1.Pod{
				trainingOperatorPod("pytorch-mnist", "pytorchjob-controller", "PyTorchJob", "master", 0, true, pytorchUID),
				trainingOperatorPod("pytorch-mnist", "pytorchjob-controller", "PyTorchJob", "worker", 0, false, pytorchUID),
				trainingOperatorPod("pytorch-mnist", "pytorchjob-controller", "PyTorchJob", "worker", 1, false, pytorchUID),
			},
		},
		{
			// training-operator v1.8.1, common/job.go ReconcileJobs with
			// runPolicy.schedulingPolicy: minAvailable, minResources and
			// scheduleTimeoutSeconds are passed through unvalidated (the
			// PyTorchJob CRD has no bounds on them). A day and more was
			// refused by cosched's old CRD (maximum 86400); scheduler-plugins
			// accepts it, and cosched caps the wait at 15 minutes.
			name: "training-operator v1.8.1 PyTorchJob with minAvailable below replicas and a timeout over a day",
			group: &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{
					Name:            "pytorch-elastic",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("pytorch-elastic", pytorchPolicyUID), kubeflowGVK("PyTorchJob"))},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 2, MinResources: testutil.Resources("2", "4Gi"), ScheduleTimeoutSeconds: ptr.To[int32](100000)},
			},
			members: []*v1.Pod{
				trainingOperatorPod("pytorch-elastic", "pytorchjob-controller", "PyTorchJob", "master", 0, true, pytorchPolicyUID),
				trainingOperatorPod("pytorch-elastic", "pytorchjob-controller", "PyTorchJob", "worker", 0, false, pytorchPolicyUID),
				gated(trainingOperatorPod("pytorch-elastic", "pytorchjob-controller", "PyTorchJob", "worker", 1, false, pytorchPolicyUID)),
			},
			// minMember 2 of 3: the quorum binds without the third member,
			// which follows when it becomes schedulable.
			run: func(s *scenario, members []*v1.Pod) {
				names := createMembers(s, members...)
				s.expectAllBound(names[:2], bindTimeout)
				ungate(s, names[2])
				s.expectAllBound(names, bindTimeout)
			},
		},
		{
			// training-operator v1.8.1, common/job.go ReconcileJobs with
			// schedulingPolicy.minAvailable: 0. minMember 0 and the empty
			// minResources that CalcPGMinResources returns for it are both
			// omitted on the wire: the spec arrives empty. cosched's old CRD
			// required minMember; scheduler-plugins' does not. Meaning: a
			// quorum of 1, every member is placed on its own.
			name: "training-operator v1.8.1 PyTorchJob with minAvailable 0: an empty spec",
			group: &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{
					Name:            "pytorch-no-gang",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("pytorch-no-gang", pytorchZeroUID), kubeflowGVK("PyTorchJob"))},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinResources: v1.ResourceList{}},
			},
			members: []*v1.Pod{
				trainingOperatorPod("pytorch-no-gang", "pytorchjob-controller", "PyTorchJob", "master", 0, true, pytorchZeroUID),
				trainingOperatorPod("pytorch-no-gang", "pytorchjob-controller", "PyTorchJob", "worker", 0, false, pytorchZeroUID),
			},
			run: func(s *scenario, members []*v1.Pod) {
				first := createMembers(s, members[0])
				s.expectAllBound(first, bindTimeout)
				s.expectAllBound(createMembers(s, members[1]), bindTimeout)
			},
		},
		{
			// training-operator v1.8.1 MPIJob (kubeflow.org/v1): the same
			// common/job.go ReconcileJobs PodGroup (launcher + workers), pods
			// from pkg/controller.v1/mpi/mpijob_controller.go newLauncher
			// (job-role master) and newWorker (names <job>-worker-<i>,
			// mpijob.go defaultReplicaLabels), both decorated by
			// DecoratePodTemplateSpec.
			name: "training-operator v1.8.1 MPIJob: launcher plus workers",
			group: &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{
					Name:            "tf-mpi",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("tf-mpi", tfMPIUID), kubeflowGVK("MPIJob"))},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 3, MinResources: testutil.Resources("2500m", "3Gi")},
			},
			members: []*v1.Pod{
				trainingOperatorMPIPod("tf-mpi", "launcher", "tf-mpi-launcher", "500m", tfMPIUID),
				trainingOperatorMPIPod("tf-mpi", "worker", "tf-mpi-worker-0", "1", tfMPIUID),
				trainingOperatorMPIPod("tf-mpi", "worker", "tf-mpi-worker-1", "1", tfMPIUID),
			},
		},
		{
			// Kubeflow Trainer v2.3.0, pkg/runtime/framework/plugins/
			// coscheduling/coscheduling.go Build: a server-side apply
			// (trainjob_controller.go: field owner "trainer", forced) of an
			// apply configuration that always sets minMember (the pod sets'
			// counts), minResources (their requests) and
			// scheduleTimeoutSeconds, here 0, which Trainer's API documents
			// as "the default value is used"; controller owner reference to
			// the TrainJob. EnforcePodGroupPolicy labels the pods, which
			// JobSet creates through Jobs (<trainjob>-node-0 -> pods
			// <trainjob>-node-0-<index>-<random>); the runtime's pod
			// template names the scheduler.
			name:  "Kubeflow Trainer v2 TrainJob: server-side apply, timeout 0",
			apply: true,
			group: &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{
					Name: "fine-tune",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("fine-tune", trainJobUID),
						trainJobGVK)},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 2, MinResources: testutil.Resources("4", "8Gi"), ScheduleTimeoutSeconds: ptr.To[int32](0)},
			},
			members: []*v1.Pod{
				trainerPod("fine-tune", 0, trainJobNodeUID),
				trainerPod("fine-tune", 1, trainJobNodeUID),
			},
		},
		{
			// MPI Operator v0.8.0, pkg/controller/podgroup.go
			// SchedulerPluginsCtrl.newPodGroup without a schedulingPolicy:
			// scheduleTimeoutSeconds 0 ("the scheduler's default"),
			// minMember = workers + 1 (calculateMinAvailable), minResources
			// from calPGMinResource, TypeMeta set, controller owner reference
			// to the kubeflow.org/v2beta1 MPIJob. Pods: mpi_job_controller.go
			// newWorker (<job>-worker-<i>, defaultLabels, replica index,
			// controller reference) and newLauncherJob/newLauncherPodTemplate
			// (a batch Job <job>-launcher whose pod carries the template's
			// labels), both through decoratePodTemplateSpec.
			//
			// The old CRD refused this object (minimum 1). Its 0 means the
			// plugin default: one member held back, the other two wait at
			// Permit for permitWaitingTimeSeconds (4s here), not 0s, and are
			// then rejected together; when the third arrives, all bind.
			name: "MPI Operator v0.8.0 MPIJob by default: timeout 0 is the plugin default",
			args: func(a *config.CoschedGangArgs) { a.PermitWaitingTimeSeconds = ptr.To[int64](4) },
			group: &schedv1alpha1.PodGroup{
				TypeMeta: metav1.TypeMeta{APIVersion: schedv1alpha1.SchemeGroupVersion.String(), Kind: "PodGroup"},
				ObjectMeta: metav1.ObjectMeta{
					Name:            "pi",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("pi", mpiUID), mpiJobGVK)},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 3, ScheduleTimeoutSeconds: ptr.To[int32](0), MinResources: testutil.Resources("2500m", "3Gi")},
			},
			members: []*v1.Pod{
				mpiLauncherPod("pi", "500m", mpiLauncherJobUID),
				mpiWorkerPod("pi", 0, mpiUID),
				gated(mpiWorkerPod("pi", 1, mpiUID)),
			},
			run: func(s *scenario, members []*v1.Pod) {
				start := time.Now()
				names := createMembers(s, members...)
				s.expectNoneBound(names, 2*time.Second)
				if evs, err := testutil.EventsFor(s.ctx, s.cs, s.ns, "PodGroup", "pi"); err != nil {
					s.t.Fatal(err)
				} else if i := slicesIndexContaining(evs, "GangRejected"); i >= 0 {
					s.t.Fatalf("group rejected within %s of creation, before the 4s default wait: %q", time.Since(start).Round(time.Millisecond), evs[i])
				}
				s.expectEvent("pi", "timed out after 4s waiting for quorum", bindTimeout)
				if waited := time.Since(start); waited < 4*time.Second {
					s.t.Errorf("rejected %s after creation; a timeout of 0 must mean the 4s default", waited)
				}
				s.expectNoneBound(names, time.Second)
				ungate(s, names[2])
				s.expectAllBound(names, bindTimeout)
			},
		},
		{
			// MPI Operator v0.8.0, podgroup.go newPodGroup with
			// runPolicy.schedulingPolicy {minAvailable: 2,
			// scheduleTimeoutSeconds: 120}: both passed through;
			// calPGMinResource then counts the launcher and minMember-1
			// workers only.
			name: "MPI Operator v0.8.0 MPIJob with schedulingPolicy",
			group: &schedv1alpha1.PodGroup{
				TypeMeta: metav1.TypeMeta{APIVersion: schedv1alpha1.SchemeGroupVersion.String(), Kind: "PodGroup"},
				ObjectMeta: metav1.ObjectMeta{
					Name:            "pi-policy",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("pi-policy", mpiPolicyUID), mpiJobGVK)},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 2, ScheduleTimeoutSeconds: ptr.To[int32](120), MinResources: testutil.Resources("1500m", "2Gi")},
			},
			members: []*v1.Pod{
				mpiLauncherPod("pi-policy", "500m", mpiPolicyLauncherJobUID),
				mpiWorkerPod("pi-policy", 0, mpiPolicyUID),
				mpiWorkerPod("pi-policy", 1, mpiPolicyUID),
			},
		},
		{
			// Spark Operator v2.5.2, internal/scheduler/kubescheduler/
			// scheduler.go Schedule (batchScheduler named in
			// --kube-scheduler-names): PodGroup <app>-pg, minMember 1,
			// minResources = driver + initial executors from
			// pkg/util/sparkapplication.go GetDriverRequestResource /
			// GetExecutorRequestResource, controller owner reference to the
			// SparkApplication. Those parse Spark's memory strings as
			// Kubernetes quantities, so "512m" each sums to 1536m (bytes),
			// stored as sent. The pod group label reaches the pods through
			// the application's labels; internal/webhook/
			// sparkpod_defaulter.go addSchedulerName sets batchScheduler as
			// schedulerName. The driver comes first, then Spark creates the
			// executors (owned by the driver pod).
			name: "Spark Operator v2.5.2 SparkApplication: driver, then executors",
			group: &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{
					Name:            "spark-pi-pg",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("spark-pi", sparkUID), sparkGVK)},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 1, MinResources: testutil.Resources("3", "1536m")},
			},
			members: []*v1.Pod{
				sparkDriverPod("spark-pi", sparkUID),
				sparkExecutorPod("spark-pi", 1, sparkDriverUID),
				sparkExecutorPod("spark-pi", 2, sparkDriverUID),
			},
			run: func(s *scenario, members []*v1.Pod) {
				s.expectAllBound(createMembers(s, members[0]), bindTimeout)
				s.expectAllBound(createMembers(s, members[1:]...), bindTimeout)
			},
		},
		{
			// Spark Operator v2.5.2, the same Schedule, for an application
			// whose executors (2 x 32 cores) can never fit: minResources
			// keeps its driver from starting and holding room it cannot use.
			name: "Spark Operator v2.5.2 SparkApplication too big for the cluster",
			group: &schedv1alpha1.PodGroup{
				ObjectMeta: metav1.ObjectMeta{
					Name:            "spark-huge-pg",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(fakeOwner("spark-huge", sparkHugeUID), sparkGVK)},
				},
				Spec: schedv1alpha1.PodGroupSpec{MinMember: 1, MinResources: testutil.Resources("65", "1536m")},
			},
			members: []*v1.Pod{sparkDriverPod("spark-huge", sparkHugeUID)},
			run: func(s *scenario, members []*v1.Pod) {
				names := createMembers(s, members...)
				s.expectEvent("spark-huge-pg", "minResources needs cpu 65", bindTimeout)
				s.expectNoneBound(names, holdFor)
			},
		},
	}
}

// writePodGroupAsClient sends pg the way the client does (a create, or a
// forced server-side apply by field manager "trainer" that sets every spec
// field explicitly, zero values included) and checks that the API server
// stored exactly what was sent.
func writePodGroupAsClient(s *scenario, pg *schedv1alpha1.PodGroup, apply bool) {
	s.t.Helper()
	var (
		got *schedv1alpha1.PodGroup
		err error
	)
	if apply {
		spec := schedv1alpha1ac.PodGroupSpec().
			WithMinMember(pg.Spec.MinMember).
			WithMinResources(pg.Spec.MinResources).
			WithScheduleTimeoutSeconds(ptr.Deref(pg.Spec.ScheduleTimeoutSeconds, 0))
		ac := schedv1alpha1ac.PodGroup(pg.Name, pg.Namespace).WithSpec(spec)
		for _, o := range pg.OwnerReferences {
			ac.WithOwnerReferences(metav1ac.OwnerReference().WithAPIVersion(o.APIVersion).WithKind(o.Kind).WithName(o.Name).
				WithUID(o.UID).WithController(ptr.Deref(o.Controller, false)).WithBlockOwnerDeletion(ptr.Deref(o.BlockOwnerDeletion, false)))
		}
		got, err = s.pg.SchedulingV1alpha1().PodGroups(pg.Namespace).Apply(s.ctx, ac, metav1.ApplyOptions{FieldManager: "trainer", Force: true})
	} else {
		got, err = s.pg.SchedulingV1alpha1().PodGroups(pg.Namespace).Create(s.ctx, pg, metav1.CreateOptions{})
	}
	if err != nil {
		s.t.Fatalf("the API server refused the PodGroup %s as the client writes it: %v", pg.Name, err)
	}
	got, err = s.pg.SchedulingV1alpha1().PodGroups(pg.Namespace).Get(s.ctx, got.Name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	want := pg.Spec
	if len(want.MinResources) == 0 {
		want.MinResources = nil // an empty map is omitted on the wire
	}
	if !apiequality.Semantic.DeepEqual(got.Spec, want) {
		s.t.Errorf("stored spec differs from the one sent:\n got %+v\nwant %+v", got.Spec, want)
	}
	if !apiequality.Semantic.DeepEqual(got.OwnerReferences, pg.OwnerReferences) {
		s.t.Errorf("stored ownerReferences differ:\n got %+v\nwant %+v", got.OwnerReferences, pg.OwnerReferences)
	}
	if !maps.Equal(got.Labels, pg.Labels) || !maps.Equal(got.Annotations, pg.Annotations) {
		s.t.Errorf("stored labels/annotations differ: got %v / %v, want %v / %v", got.Labels, got.Annotations, pg.Labels, pg.Annotations)
	}
}

// createMembers creates the pods in the scenario's namespace and returns
// their names (GenerateName resolved).
func createMembers(s *scenario, pods ...*v1.Pod) []string {
	s.t.Helper()
	names := make([]string, 0, len(pods))
	for _, p := range pods {
		p.Namespace = s.ns
		got, err := s.cs.CoreV1().Pods(s.ns).Create(s.ctx, p, metav1.CreateOptions{})
		if err != nil {
			s.t.Fatalf("creating pod %s%s: %v", p.Name, p.GenerateName, err)
		}
		names = append(names, got.Name)
	}
	return names
}

func gated(p *v1.Pod) *v1.Pod {
	gate(p)
	return p
}

func slicesIndexContaining(items []string, sub string) int {
	for i, item := range items {
		if strings.Contains(item, sub) {
			return i
		}
	}
	return -1
}

// The owners' kinds, as each client names them in owner references.
var (
	mpiJobGVK   = schema.GroupVersionKind{Group: "kubeflow.org", Version: "v2beta1", Kind: "MPIJob"}
	sparkGVK    = schema.GroupVersionKind{Group: "sparkoperator.k8s.io", Version: "v1beta2", Kind: "SparkApplication"}
	trainJobGVK = schema.GroupVersionKind{Group: "trainer.kubeflow.org", Version: "v1alpha1", Kind: "TrainJob"}
	jobGVK      = schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
)

// kubeflowGVK is a training-operator v1 job kind (kubeflow.org/v1).
func kubeflowGVK(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "kubeflow.org", Version: "v1", Kind: kind}
}

// fakeOwner stands for an owning object the test does not create.
func fakeOwner(name string, uid types.UID) metav1.Object {
	return &metav1.ObjectMeta{Name: name, UID: uid}
}

// clientPod is a pause pod requesting cpu and 2Gi, in the group, for
// schedulerName, with the client's labels and owner.
func clientPod(name, generateName, group, schedulerName, cpu, memory string, labels map[string]string, owner metav1.OwnerReference) *v1.Pod {
	p := testutil.Pod("", name, group, cpu, memory)
	p.GenerateName = generateName
	p.Spec.SchedulerName = schedulerName
	maps.Copy(p.Labels, labels)
	p.OwnerReferences = []metav1.OwnerReference{owner}
	return p
}

// rayPod is a KubeRay v1.5.0 head or worker pod of cluster (group: the
// worker group's name, or "headgroup").
func rayPod(cluster, nodeType, group string, uid types.UID) *v1.Pod {
	prefix := cluster + "-" + nodeType + "-"
	if nodeType == "worker" {
		prefix = cluster + "-" + group + "-worker-"
	}
	return clientPod("", prefix, cluster, "scheduler-plugins-scheduler", "1", "2Gi", map[string]string{
		"ray.io/is-ray-node":           "yes",
		"ray.io/cluster":               cluster,
		"ray.io/node-type":             nodeType,
		"ray.io/group":                 group,
		"ray.io/identifier":            cluster + "-" + nodeType,
		"app.kubernetes.io/name":       "kuberay",
		"app.kubernetes.io/created-by": "kuberay-operator",
	}, *metav1.NewControllerRef(fakeOwner(cluster, uid), schema.GroupVersionKind{Group: "ray.io", Version: "v1", Kind: "RayCluster"}))
}

// trainingOperatorPod is a training-operator v1.8.1 replica pod
// (<job>-<type>-<index>) made by createNewPod.
func trainingOperatorPod(job, controller, kind, replicaType string, index int, master bool, uid types.UID) *v1.Pod {
	labels := map[string]string{
		"training.kubeflow.org/operator-name": controller,
		"training.kubeflow.org/job-name":      job,
		"training.kubeflow.org/replica-type":  replicaType,
		"training.kubeflow.org/replica-index": strconv.Itoa(index),
	}
	if master {
		labels["training.kubeflow.org/job-role"] = "master"
	}
	return clientPod(fmt.Sprintf("%s-%s-%d", job, replicaType, index), "", job, testutil.SchedulerName, "1", "2Gi", labels,
		*metav1.NewControllerRef(fakeOwner(job, uid), kubeflowGVK(kind)))
}

// trainingOperatorMPIPod is a training-operator v1.8.1 MPIJob launcher or
// worker pod (newLauncher / newWorker).
func trainingOperatorMPIPod(job, replicaType, name, cpu string, uid types.UID) *v1.Pod {
	labels := map[string]string{
		"training.kubeflow.org/operator-name": "mpijob-controller",
		"training.kubeflow.org/job-name":      job,
		"training.kubeflow.org/replica-type":  replicaType,
	}
	if replicaType == "launcher" {
		labels["training.kubeflow.org/job-role"] = "master"
	}
	return clientPod(name, "", job, testutil.SchedulerName, cpu, "1Gi", labels, *metav1.NewControllerRef(fakeOwner(job, uid), kubeflowGVK("MPIJob")))
}

// trainerPod is a Trainer v2 node pod: JobSet's Job <trainjob>-node-0 runs
// it as an indexed pod.
func trainerPod(trainJob string, index int, jobUID types.UID) *v1.Pod {
	job := trainJob + "-node-0"
	return clientPod("", fmt.Sprintf("%s-%d-", job, index), trainJob, testutil.SchedulerName, "2", "4Gi", map[string]string{
		"jobset.sigs.k8s.io/jobset-name":           trainJob,
		"jobset.sigs.k8s.io/replicatedjob-name":    "node",
		"jobset.sigs.k8s.io/job-index":             "0",
		"batch.kubernetes.io/job-name":             job,
		"batch.kubernetes.io/job-completion-index": strconv.Itoa(index),
	}, *metav1.NewControllerRef(fakeOwner(job, jobUID), jobGVK))
}

// mpiWorkerPod is an MPI Operator v0.8.0 worker (newWorker).
func mpiWorkerPod(job string, index int, uid types.UID) *v1.Pod {
	return clientPod(fmt.Sprintf("%s-worker-%d", job, index), "", job, testutil.SchedulerName, "1", "1Gi", map[string]string{
		"training.kubeflow.org/operator-name": "mpi-operator",
		"training.kubeflow.org/job-name":      job,
		"training.kubeflow.org/job-role":      "worker",
		"training.kubeflow.org/replica-index": strconv.Itoa(index),
	}, *metav1.NewControllerRef(fakeOwner(job, uid), mpiJobGVK))
}

// mpiLauncherPod is the pod of an MPI Operator v0.8.0 launcher Job
// (newLauncherJob), owned by that Job.
func mpiLauncherPod(job, cpu string, jobUID types.UID) *v1.Pod {
	launcher := job + "-launcher"
	return clientPod("", launcher+"-", job, testutil.SchedulerName, cpu, "1Gi", map[string]string{
		"training.kubeflow.org/operator-name": "mpi-operator",
		"training.kubeflow.org/job-name":      job,
		"training.kubeflow.org/job-role":      "launcher",
		"batch.kubernetes.io/job-name":        launcher,
	}, *metav1.NewControllerRef(fakeOwner(launcher, jobUID), jobGVK))
}

// sparkDriverPod is a Spark Operator v2.5.2 driver: 1 core, Spark's 512m
// plus its 384Mi overhead, owned by the SparkApplication.
func sparkDriverPod(app string, uid types.UID) *v1.Pod {
	return clientPod(app+"-driver", "", app+"-pg", testutil.SchedulerName, "1", "896Mi", map[string]string{
		"spark-role":                    "driver",
		"spark-app-selector":            "spark-0123456789abcdef",
		"spark-app-name":                app,
		"sparkoperator.k8s.io/app-name": app,
		"sparkoperator.k8s.io/launched-by-spark-operator": "true",
		"sparkoperator.k8s.io/submission-id":              "5f6c2b1e-8f43-4c1d-9a7e-2d1f0b3c4a5e",
	}, *metav1.NewControllerRef(fakeOwner(app, uid), sparkGVK))
}

// sparkExecutorPod is an executor that Spark's driver (not the operator)
// creates, with a controller reference to the driver pod.
func sparkExecutorPod(app string, id int, driverUID types.UID) *v1.Pod {
	return clientPod(fmt.Sprintf("%s-0123456789abcdef-exec-%d", app, id), "", app+"-pg", testutil.SchedulerName, "1", "896Mi", map[string]string{
		"spark-role":                    "executor",
		"spark-exec-id":                 strconv.Itoa(id),
		"spark-app-selector":            "spark-0123456789abcdef",
		"spark-app-name":                app,
		"sparkoperator.k8s.io/app-name": app,
		"sparkoperator.k8s.io/launched-by-spark-operator": "true",
	}, metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: app + "-driver", UID: driverUID, Controller: ptr.To(true)})
}
