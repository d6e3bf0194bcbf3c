// Package fakenode builds Node objects that carry what a kubelet on a cloud
// VM registers: capacity and allocatable for cpu, memory, pods,
// ephemeral-storage and both hugepages sizes, the well-known labels
// (kubernetes.io/os, arch and hostname, node.kubernetes.io/instance-type,
// topology.kubernetes.io/region and zone), nodeInfo, addresses and the
// kubelet's conditions. The test harnesses and hack/demo create their nodes
// with it, so that pods shaped like real workloads (an init container asking
// for ephemeral-storage, say) meet the nodes they would meet in a cluster.
//
// hack/local/node.yaml is the same node for hack/local-up.sh; keep the two
// alike.
//
// The package depends on API types only, so that small programs can use it.
package fakenode

import (
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"runtime/debug"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// What a node reports unless the caller says otherwise.
const (
	// Pods is the kubelet's default --max-pods.
	Pods             = "110"
	EphemeralStorage = "100Gi"
	// HugePages is what a kubelet reports for each page size when no huge
	// pages are set aside: 0, not nothing.
	HugePages = "0"
	Region    = "region-0"
	Zone      = "zone-0"

	ContainerRuntimeVersion = "containerd://2.1.4"
	KernelVersion           = "6.8.0-85-generic"
	OSImage                 = "Ubuntu 24.04.3 LTS"

	// fallbackKubeletVersion is used when the binary carries no module
	// information (KubeletVersion reads the k8s.io/api version it links).
	fallbackKubeletVersion = "v1.37.2"
)

// Kubelet's huge page resources: the two sizes amd64 kubelets report.
var (
	HugePages1Gi v1.ResourceName = v1.ResourceHugePagesPrefix + "1Gi"
	HugePages2Mi v1.ResourceName = v1.ResourceHugePagesPrefix + "2Mi"
)

// New returns a node named name that looks like a freshly registered kubelet:
// resources override the defaults above (cpu and memory have none: pass
// them), labels override or add to the well-known labels, allocatable equals
// capacity (no reservations, so a test's sizes are exactly what pods get),
// and the node is Ready with no pressure.
func New(name string, resources v1.ResourceList, labels map[string]string) *v1.Node {
	capacity := v1.ResourceList{
		v1.ResourcePods:             resource.MustParse(Pods),
		v1.ResourceEphemeralStorage: resource.MustParse(EphemeralStorage),
		HugePages1Gi:                resource.MustParse(HugePages),
		HugePages2Mi:                resource.MustParse(HugePages),
	}
	for name, q := range resources {
		capacity[name] = q.DeepCopy()
	}
	l := map[string]string{
		v1.LabelOSStable:           "linux",
		v1.LabelArchStable:         "amd64",
		v1.LabelHostname:           name,
		v1.LabelInstanceTypeStable: InstanceType(capacity),
		v1.LabelTopologyRegion:     Region,
		v1.LabelTopologyZone:       Zone,
	}
	for k, v := range labels {
		l[k] = v
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Status: v1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Conditions:  Conditions(),
			Addresses: []v1.NodeAddress{
				{Type: v1.NodeInternalIP, Address: InternalIP(name)},
				{Type: v1.NodeHostName, Address: name},
			},
			NodeInfo: NodeInfo(name),
		},
	}
}

// InstanceType names a node's size the way a cloud's instance types do,
// "fake-8cpu-32gi" for 8 CPUs and 32Gi (hack/local-up.sh names its nodes
// alike), or "fake-standard" when cpu or memory is not given.
func InstanceType(resources v1.ResourceList) string {
	cpu, okCPU := resources[v1.ResourceCPU]
	mem, okMem := resources[v1.ResourceMemory]
	if okCPU && okMem {
		name := strings.ToLower(fmt.Sprintf("fake-%scpu-%s", cpu.String(), mem.String()))
		if len(validation.IsValidLabelValue(name)) == 0 {
			return name
		}
	}
	return "fake-standard"
}

// Conditions are the four a kubelet posts on a healthy node.
func Conditions() []v1.NodeCondition {
	now := metav1.Now()
	c := func(t v1.NodeConditionType, s v1.ConditionStatus, reason, msg string) v1.NodeCondition {
		return v1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return []v1.NodeCondition{
		c(v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		c(v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		c(v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		c(v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
	}
}

// NodeInfo is the system information a kubelet reports, with IDs derived
// from the node name so that they are stable and differ between nodes.
func NodeInfo(name string) v1.NodeSystemInfo {
	return v1.NodeSystemInfo{
		MachineID:               hexID("machine", name),
		SystemUUID:              uuid("system", name),
		BootID:                  uuid("boot", name),
		KernelVersion:           KernelVersion,
		OSImage:                 OSImage,
		ContainerRuntimeVersion: ContainerRuntimeVersion,
		KubeletVersion:          KubeletVersion(),
		OperatingSystem:         "linux",
		Architecture:            "amd64",
	}
}

// InternalIP is a loopback address derived from the node name, outside
// 127.0.0.0/16: every node gets its own address, and nothing that follows
// one (a pod's hostIP, kubectl logs) ever leaves the machine.
func InternalIP(name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	s := h.Sum32()
	return fmt.Sprintf("127.%d.%d.%d", 1+(s>>16)%254, (s>>8)%256, 1+s%254)
}

var kubeletVersion = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fallbackKubeletVersion
	}
	for _, dep := range info.Deps {
		if dep.Path != "k8s.io/api" {
			continue
		}
		v := dep.Version
		if dep.Replace != nil {
			v = dep.Replace.Version
		}
		// k8s.io/api v0.X.Y ships with Kubernetes v1.X.Y.
		if rest, ok := strings.CutPrefix(v, "v0."); ok {
			return "v1." + rest
		}
	}
	return fallbackKubeletVersion
})

// KubeletVersion is the Kubernetes release of the API types this binary
// links (v1.37.2 for k8s.io/api v0.37.2), which is also the release of the
// control plane the tests run against.
func KubeletVersion() string { return kubeletVersion() }

func hexID(kind, name string) string {
	sum := sha256.Sum256([]byte(kind + "/" + name))
	return fmt.Sprintf("%x", sum[:16])
}

func uuid(kind, name string) string {
	h := hexID(kind, name)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
