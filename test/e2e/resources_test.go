package e2e

// Pods asking for the resources a kubelet reports (cpu, memory, pods,
// ephemeral-storage, hugepages), with init containers, and shaped like the
// launcher of a Kubeflow training-operator MPIJob: cosched must place them
// on nodes that report those resources, as gang members and as plain pods,
// and say why when no node has room. The nodes are the ones users get: the
// test harness's (testutil.Node under KWOK) and hack/local-up.sh's.

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
	"github.com/cosched/cosched/test/testutil/fakenode"
)

const (
	// localUpSelector selects the fake nodes hack/local-up.sh creates.
	localUpSelector = "app.kubernetes.io/managed-by=cosched-local-up"
)

// resources builds a ResourceList from name, quantity pairs.
func resources(pairs ...string) v1.ResourceList {
	rl := v1.ResourceList{}
	for i := 0; i+1 < len(pairs); i += 2 {
		rl[v1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return rl
}

// asking makes every container of the pod ask for req, as requests and
// limits (huge pages must have both, and equal).
func asking(p *v1.Pod, req v1.ResourceList) *v1.Pod {
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].Resources = v1.ResourceRequirements{Requests: req.DeepCopy(), Limits: req.DeepCopy()}
	}
	return p
}

// withInit gives the pod an init container that asks for req.
func withInit(p *v1.Pod, req v1.ResourceList) *v1.Pod {
	p.Spec.InitContainers = []v1.Container{{
		Name:      "init",
		Image:     p.Spec.Containers[0].Image,
		Resources: v1.ResourceRequirements{Requests: req.DeepCopy(), Limits: req.DeepCopy()},
	}}
	return p
}

// eventSays waits for an event with reason on the named object whose note
// contains every one of want.
func (s *suite) eventSays(kind, name, reason string, want ...string) {
	s.t.Helper()
	var seen []string
	err := wait.PollUntilContextTimeout(s.ctx, 250*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		evs, err := testutil.EventsFor(ctx, s.cs, s.ns, kind, name)
		if err != nil {
			return false, nil
		}
		seen = evs
		for _, e := range evs {
			if !strings.HasPrefix(e, reason+": ") {
				continue
			}
			all := true
			for _, w := range want {
				all = all && strings.Contains(e, w)
			}
			if all {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("no %s event on %s %s/%s saying %q within %s; its events:\n  %s", reason, kind, s.ns, name, want, bindTimeout, strings.Join(seen, "\n  "))
	}
}

// TestResourcesStandard fills two nodes with a gang that asks for all of one
// resource, then asks for a little more of it with a gang and a plain pod:
// neither fits, cosched says which resource is short, and both bind once
// the filling gang is gone. Nodes with no huge pages (0, as a kubelet
// reports them) take no pod that asks for any.
func TestResourcesStandard(t *testing.T) {
	tests := []struct {
		name string
		// node overrides the size of the resource on both nodes.
		node v1.ResourceList
		// fill is what each of fillMembers members asks: together they
		// take all of the resource. No members: the nodes have none.
		fill        v1.ResourceList
		fillMembers int
		// more is what the gang "more" (2 members) and the plain pod
		// "more-solo" ask once the nodes are full.
		more v1.ResourceList
		// gangWhy is in the gang's GangRejected event, plainWhy in the
		// plain pod's FailedScheduling event.
		gangWhy  []string
		plainWhy string
	}{
		{
			name: "cpu", node: resources("cpu", "2"),
			fill: resources("cpu", "2"), fillMembers: 2, more: resources("cpu", "500m"),
			gangWhy: []string{"0/2 members fit", "member needs cpu 500m, best node has 0"}, plainWhy: "Insufficient cpu",
		},
		{
			name: "memory", node: resources("memory", "2Gi"),
			fill: resources("memory", "2Gi"), fillMembers: 2, more: resources("memory", "256Mi"),
			gangWhy: []string{"0/2 members fit", "member needs memory 256Mi, best node has 0"}, plainWhy: "Insufficient memory",
		},
		{
			name: "ephemeral-storage", node: resources("ephemeral-storage", "10Gi"),
			fill: resources("ephemeral-storage", "10Gi"), fillMembers: 2, more: resources("ephemeral-storage", "1Gi"),
			gangWhy: []string{"0/2 members fit", "member needs ephemeral-storage 1Gi, best node has 0"}, plainWhy: "Insufficient ephemeral-storage",
		},
		{
			name: "pods", node: resources("pods", "2"),
			fill: resources("cpu", "100m"), fillMembers: 4, more: resources("cpu", "100m"),
			gangWhy: []string{"0/2 members fit", "nodes with room are at their pod limit"}, plainWhy: "Too many pods",
		},
		{
			name: "hugepages-2Mi", more: resources("hugepages-2Mi", "4Mi", "memory", "64Mi"),
			gangWhy: []string{"0/2 members fit", "member needs hugepages-2Mi", "best node has 0"}, plainWhy: "Insufficient hugepages-2Mi",
		},
		{
			name: "hugepages-1Gi", more: resources("hugepages-1Gi", "1Gi", "memory", "64Mi"),
			gangWhy: []string{"0/2 members fit", "member needs hugepages-1Gi", "best node has 0"}, plainWhy: "Insufficient hugepages-1Gi",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSuite(t)
			s.waitServiceAccount()
			spec := nodeSpec{cpu: "4", memory: "8Gi", resources: tt.node}
			s.nodes([]nodeSpec{spec, spec})
			if tt.fillMembers > 0 {
				s.group(testutil.PodGroup(s.ns, "fill", int32(tt.fillMembers)))
				var fill []*v1.Pod
				for i := 0; i < tt.fillMembers; i++ {
					fill = append(fill, asking(s.pod(fmt.Sprintf("fill-%d", i), "fill", "", ""), tt.fill))
				}
				s.allBound(s.create(fill...))
			}
			s.group(testutil.PodGroup(s.ns, "more", 2))
			more := s.create(asking(s.pod("more-0", "more", "", ""), tt.more), asking(s.pod("more-1", "more", "", ""), tt.more))
			solo := s.create(asking(s.pod("more-solo", "", "", ""), tt.more))
			s.eventSays("PodGroup", "more", "GangRejected", tt.gangWhy...)
			s.eventSays("Pod", "more-solo", "FailedScheduling", tt.plainWhy)
			s.noneBound(append(more, solo...), 2*time.Second)
			if tt.fillMembers == 0 {
				return
			}
			// Room freed: the gang and the pod that waited for it bind.
			err := s.cs.CoreV1().Pods(s.ns).DeleteCollection(s.ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)},
				metav1.ListOptions{LabelSelector: podgroup.Label + "=fill"})
			if err != nil {
				t.Fatal(err)
			}
			s.allBound(append(more, solo...))
		})
	}
}

// TestResourcesInitContainer: a pod asks of a node the larger of its init
// containers' and its containers' requests. An init container asking for
// more than any node has keeps the pod (and its gang) off every node, with a
// reason; one that asks more than the container but fits binds, and holds
// its full request on the node.
func TestResourcesInitContainer(t *testing.T) {
	tests := []struct {
		name       string
		init, main v1.ResourceList
		// Either it fits, or gangWhy and plainWhy are what cosched says.
		fits     bool
		gangWhy  []string
		plainWhy string
	}{
		{
			name: "init asks more ephemeral-storage than any node has",
			init: resources("cpu", "100m", "ephemeral-storage", "50Gi"), main: resources("cpu", "500m", "ephemeral-storage", "1Gi"),
			gangWhy: []string{"0/2 members fit", "member needs ephemeral-storage 50Gi, best node has 20Gi"}, plainWhy: "Insufficient ephemeral-storage",
		},
		{
			name: "init asks more cpu than any node has",
			init: resources("cpu", "6"), main: resources("cpu", "1"),
			gangWhy: []string{"0/2 members fit", "member needs cpu 6, best node has 4"}, plainWhy: "Insufficient cpu",
		},
		{
			name: "init asks more than the container and fits",
			init: resources("cpu", "3", "ephemeral-storage", "15Gi"), main: resources("cpu", "500m", "ephemeral-storage", "1Gi"),
			fits: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSuite(t)
			s.waitServiceAccount()
			spec := nodeSpec{cpu: "4", memory: "8Gi", resources: resources("ephemeral-storage", "20Gi")}
			s.nodes([]nodeSpec{spec, spec})
			shaped := func(name, group string) *v1.Pod {
				return withInit(asking(s.pod(name, group, "", ""), tt.main), tt.init)
			}
			s.group(testutil.PodGroup(s.ns, "job", 2))
			members := s.create(shaped("job-0", "job"), shaped("job-1", "job"))
			if !tt.fits {
				solo := s.create(shaped("solo", ""))
				s.eventSays("PodGroup", "job", "GangRejected", tt.gangWhy...)
				s.eventSays("Pod", "solo", "FailedScheduling", tt.plainWhy)
				s.noneBound(append(members, solo...), 2*time.Second)
				return
			}
			// Each member holds 3 CPUs (its init container's), so they
			// cannot share a 4-CPU node, and 1 CPU is left on each.
			placed := s.allBound(members)
			if placed["job-0"] == placed["job-1"] {
				t.Errorf("both members landed on %s: their init containers' 3 CPUs were not counted", placed["job-0"])
			}
			// 2 CPUs would fit next to the containers' 500m; they must not.
			s.create(s.pod("two-cpus", "", "2", ""))
			s.eventSays("Pod", "two-cpus", "FailedScheduling", "Insufficient cpu")
			s.allBound(s.create(s.pod("one-cpu", "", "1", "")))
			s.noneBound([]string{"two-cpus"}, time.Second)
		})
	}
}

// TestResourcesMPIJobLauncher creates the pods and PodGroup that Kubeflow
// training-operator v1.8.1 creates for an MPIJob (its tensorflow-mnist
// example, gang-scheduled with --gang-scheduler-name=cosched): a launcher
// whose init container kubectl-delivery asks for 5Gi of ephemeral-storage,
// and two workers. Only the images are replaced by pause. On the cluster's
// own nodes (hack/local-up.sh's with the default knobs) it binds whole.
func TestResourcesMPIJobLauncher(t *testing.T) {
	s := newSuite(t)
	s.waitServiceAccount()
	const job = "tensorflow-mnist"
	const pause = "registry.k8s.io/pause:3.10"
	// What the operator creates besides the pods: the launcher's
	// ServiceAccount (the API server refuses a pod naming a missing one)
	// and the ConfigMap its volumes mount.
	if _, err := s.cs.CoreV1().ServiceAccounts(s.ns).Create(s.ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: job + "-launcher"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: job + "-config"}, Data: map[string]string{
		"kubexec.sh":        "#!/bin/sh\nset -x\nPOD_NAME=$1\nshift\n/opt/kube/kubectl exec ${POD_NAME} -- /bin/sh -c \"$*\"\n",
		"hostfile":          job + "-worker-0 slots=1\n" + job + "-worker-1 slots=1\n",
		"discover_hosts.sh": "#!/bin/sh\n",
	}}
	if _, err := s.cs.CoreV1().ConfigMaps(s.ns).Create(s.ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// minMember counts every replica; minResources sums the containers'
	// requests (limits when none), init containers left out.
	pg := testutil.WithMinResources(testutil.PodGroup(s.ns, job, 3), "5", "10Gi")
	s.group(pg)

	labels := func(replicaType string) map[string]string {
		return map[string]string{
			"training.kubeflow.org/operator-name": "mpijob-controller",
			"training.kubeflow.org/job-name":      job,
			"training.kubeflow.org/replica-type":  replicaType,
			podgroup.Label:                        job,
		}
	}
	configVolume := func(items ...string) v1.Volume {
		modes := map[string]int32{"kubexec.sh": 0o555, "hostfile": 0o444, "discover_hosts.sh": 0o555}
		var keys []v1.KeyToPath
		for _, k := range items {
			keys = append(keys, v1.KeyToPath{Key: k, Path: k, Mode: ptr.To(modes[k])})
		}
		return v1.Volume{Name: "mpi-job-config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: job + "-config"}, Items: keys}}}
	}
	mounts := []v1.VolumeMount{{Name: "mpi-job-kubectl", MountPath: "/opt/kube"}, {Name: "mpi-job-config", MountPath: "/etc/mpi"}}
	delivery := resources("cpu", "100m", "memory", "512Mi", "ephemeral-storage", "5Gi")

	launcher := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: job + "-launcher", Labels: labels("launcher")},
		Spec: v1.PodSpec{
			SchedulerName:      testutil.SchedulerName,
			ServiceAccountName: job + "-launcher",
			RestartPolicy:      v1.RestartPolicyNever,
			InitContainers: []v1.Container{{
				Name:            "kubectl-delivery",
				Image:           pause, // kubeflow/kubectl-delivery:latest
				ImagePullPolicy: v1.PullIfNotPresent,
				Env:             []v1.EnvVar{{Name: "TARGET_DIR", Value: "/opt/kube"}, {Name: "NAMESPACE", Value: s.ns}},
				VolumeMounts:    mounts,
				Resources:       v1.ResourceRequirements{Requests: delivery, Limits: delivery.DeepCopy()},
			}},
			Containers: []v1.Container{{
				Name:  "mpi",
				Image: pause, // horovod/horovod:0.28.1 running mpirun
				Env: []v1.EnvVar{
					{Name: "OMPI_MCA_plm_rsh_agent", Value: "/etc/mpi/kubexec.sh"},
					{Name: "OMPI_MCA_orte_default_hostfile", Value: "/etc/mpi/hostfile"},
					{Name: "NVIDIA_VISIBLE_DEVICES"},
					{Name: "NVIDIA_DRIVER_CAPABILITIES"},
					{Name: "I_MPI_HYDRA_BOOTSTRAP", Value: "rsh"},
					{Name: "I_MPI_HYDRA_BOOTSTRAP_EXEC", Value: "/etc/mpi/kubexec.sh"},
				},
				VolumeMounts: mounts,
				// Limits only, as in the example: the API server copies
				// them to requests.
				Resources: v1.ResourceRequirements{Limits: resources("cpu", "1", "memory", "2Gi")},
			}},
			Volumes: []v1.Volume{
				{Name: "mpi-job-kubectl", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
				configVolume("kubexec.sh", "hostfile", "discover_hosts.sh"),
			},
		},
	}
	launcher.Labels["training.kubeflow.org/job-role"] = "master"
	pods := []*v1.Pod{launcher}
	for i := 0; i < 2; i++ {
		w := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: fmt.Sprintf("%s-worker-%d", job, i), Labels: labels("worker")},
			Spec: v1.PodSpec{
				SchedulerName: testutil.SchedulerName,
				RestartPolicy: v1.RestartPolicyNever,
				Containers: []v1.Container{{
					Name:         "mpi",
					Image:        pause, // horovod/horovod:0.28.1 running sleep 365d
					VolumeMounts: []v1.VolumeMount{{Name: "mpi-job-config", MountPath: "/etc/mpi"}},
					Resources:    v1.ResourceRequirements{Limits: resources("cpu", "2", "memory", "4Gi")},
				}},
				Volumes: []v1.Volume{configVolume("kubexec.sh")},
			},
		}
		w.Labels["training.kubeflow.org/replica-index"] = fmt.Sprint(i)
		pods = append(pods, w)
	}
	names := s.create(pods...)

	// The shape does what the issue is about: the launcher asks a node for
	// the init container's 5Gi of ephemeral-storage.
	created, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, launcher.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	effective := resourcehelper.PodRequests(created, resourcehelper.PodResourcesOptions{})
	for name, want := range resources("cpu", "1", "memory", "2Gi", "ephemeral-storage", "5Gi") {
		if got := effective[name]; got.Cmp(want) != 0 {
			t.Errorf("the launcher asks for %s %s, want %s (effective requests %v)", name, got.String(), want.String(), effective)
		}
	}
	t.Logf("bound whole: %s", testutil.Describe(s.allBound(names)))
}

// TestResourcesNodesLookLikeKubelets checks that the fake nodes report what
// a kubelet reports, and that KWOK, which plays their kubelet, keeps it: the
// nodes of hack/local-up.sh (when the cluster has them) and the test
// harness's.
func TestResourcesNodesLookLikeKubelets(t *testing.T) {
	s := newSuite(t)
	server, err := s.cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	ownNames := s.nodes(sameNodes(1, "4", "8Gi"))
	local, err := s.cs.CoreV1().Nodes().List(s.ctx, metav1.ListOptions{LabelSelector: localUpSelector})
	if err != nil {
		t.Fatal(err)
	}
	own, err := s.cs.CoreV1().Nodes().Get(s.ctx, ownNames[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// local-up.sh stamps its nodes with the control plane's release; the
	// harness with the release of the API types it links (the same one on
	// the local control plane, maybe not on kind).
	sources := []struct {
		name    string
		nodes   []v1.Node
		release string
	}{
		{"hack/local-up.sh", local.Items, server.GitVersion},
		{"testutil.Node", []v1.Node{*own}, fakenode.KubeletVersion()},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			if len(src.nodes) == 0 {
				t.Skipf("the cluster has no nodes labelled %s (not started by hack/local-up.sh)", localUpSelector)
			}
			for i := range src.nodes {
				for _, problem := range kubeletProblems(&src.nodes[i], src.release) {
					t.Errorf("node %s: %s", src.nodes[i].Name, problem)
				}
			}
		})
	}
}

// kubeletProblems lists how a node differs from what a kubelet of the
// given release registers.
func kubeletProblems(n *v1.Node, release string) []string {
	var out []string
	for _, list := range []struct {
		name string
		rl   v1.ResourceList
	}{{"capacity", n.Status.Capacity}, {"allocatable", n.Status.Allocatable}} {
		for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourcePods, v1.ResourceEphemeralStorage} {
			if q, ok := list.rl[name]; !ok || q.Sign() <= 0 {
				out = append(out, fmt.Sprintf("%s has no %s", list.name, name))
			}
		}
		for _, name := range []v1.ResourceName{fakenode.HugePages1Gi, fakenode.HugePages2Mi} {
			if _, ok := list.rl[name]; !ok {
				out = append(out, fmt.Sprintf("%s does not report %s (a kubelet reports 0)", list.name, name))
			}
		}
	}
	for _, key := range []string{v1.LabelOSStable, v1.LabelArchStable, v1.LabelHostname, v1.LabelInstanceTypeStable, v1.LabelTopologyRegion, v1.LabelTopologyZone} {
		if n.Labels[key] == "" {
			out = append(out, "no label "+key)
		}
	}
	if n.Labels[v1.LabelHostname] != n.Name {
		out = append(out, fmt.Sprintf("label %s=%q, want the node name", v1.LabelHostname, n.Labels[v1.LabelHostname]))
	}
	info := n.Status.NodeInfo
	if info.KubeletVersion != release {
		out = append(out, fmt.Sprintf("kubeletVersion %q, want the control plane's %s", info.KubeletVersion, release))
	}
	kwokDefault := regexp.MustCompile(`^kwok-|^$`)
	for field, v := range map[string]string{"containerRuntimeVersion": info.ContainerRuntimeVersion, "kernelVersion": info.KernelVersion,
		"osImage": info.OSImage, "machineID": info.MachineID, "systemUUID": info.SystemUUID, "bootID": info.BootID} {
		if kwokDefault.MatchString(v) {
			out = append(out, fmt.Sprintf("nodeInfo.%s is %q", field, v))
		}
	}
	if info.OperatingSystem != "linux" || info.Architecture != "amd64" {
		out = append(out, fmt.Sprintf("nodeInfo os/arch %s/%s", info.OperatingSystem, info.Architecture))
	}
	addrs := map[v1.NodeAddressType]string{}
	for _, a := range n.Status.Addresses {
		addrs[a.Type] = a.Address
	}
	if ip := net.ParseIP(addrs[v1.NodeInternalIP]); ip == nil || !ip.IsLoopback() {
		out = append(out, fmt.Sprintf("InternalIP %q is not a loopback address", addrs[v1.NodeInternalIP]))
	}
	if addrs[v1.NodeHostName] != n.Name {
		out = append(out, fmt.Sprintf("Hostname address %q, want the node name", addrs[v1.NodeHostName]))
	}
	conds := map[v1.NodeConditionType]v1.ConditionStatus{}
	for _, c := range n.Status.Conditions {
		conds[c.Type] = c.Status
	}
	for typ, want := range map[v1.NodeConditionType]v1.ConditionStatus{v1.NodeReady: v1.ConditionTrue,
		v1.NodeMemoryPressure: v1.ConditionFalse, v1.NodeDiskPressure: v1.ConditionFalse, v1.NodePIDPressure: v1.ConditionFalse} {
		if conds[typ] != want {
			out = append(out, fmt.Sprintf("condition %s is %q, want %q", typ, conds[typ], want))
		}
	}
	return out
}
