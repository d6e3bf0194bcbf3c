package fakenode

import (
	"net"
	"regexp"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNew(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name       string
		resources  v1.ResourceList
		labels     map[string]string
		wantAlloc  map[v1.ResourceName]string
		wantLabels map[string]string
	}{
		{
			name:      "defaults around the given cpu and memory",
			resources: v1.ResourceList{v1.ResourceCPU: q("8"), v1.ResourceMemory: q("32Gi")},
			wantAlloc: map[v1.ResourceName]string{
				v1.ResourceCPU: "8", v1.ResourceMemory: "32Gi", v1.ResourcePods: "110",
				v1.ResourceEphemeralStorage: "100Gi", HugePages1Gi: "0", HugePages2Mi: "0",
			},
			wantLabels: map[string]string{
				v1.LabelOSStable: "linux", v1.LabelArchStable: "amd64", v1.LabelHostname: "n",
				v1.LabelInstanceTypeStable: "fake-8cpu-32gi", v1.LabelTopologyRegion: Region, v1.LabelTopologyZone: Zone,
			},
		},
		{
			name: "resources and labels override the defaults",
			resources: v1.ResourceList{v1.ResourceCPU: q("500m"), v1.ResourceMemory: q("1280Mi"), v1.ResourcePods: q("2"),
				v1.ResourceEphemeralStorage: q("10Gi"), HugePages2Mi: q("4Mi")},
			labels: map[string]string{v1.LabelTopologyZone: "zone-7", "disk": "ssd"},
			wantAlloc: map[v1.ResourceName]string{
				v1.ResourceCPU: "500m", v1.ResourceMemory: "1280Mi", v1.ResourcePods: "2",
				v1.ResourceEphemeralStorage: "10Gi", HugePages1Gi: "0", HugePages2Mi: "4Mi",
			},
			wantLabels: map[string]string{
				v1.LabelTopologyZone: "zone-7", "disk": "ssd", v1.LabelTopologyRegion: Region,
				v1.LabelInstanceTypeStable: "fake-500mcpu-1280mi", v1.LabelHostname: "n",
			},
		},
		{
			name:       "no cpu or memory: a generic instance type",
			resources:  nil,
			wantAlloc:  map[v1.ResourceName]string{v1.ResourcePods: "110", v1.ResourceEphemeralStorage: "100Gi", HugePages1Gi: "0", HugePages2Mi: "0"},
			wantLabels: map[string]string{v1.LabelInstanceTypeStable: "fake-standard"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := New("n", tt.resources, tt.labels)
			if len(n.Status.Allocatable) != len(tt.wantAlloc) {
				t.Errorf("allocatable %v, want exactly %v", n.Status.Allocatable, tt.wantAlloc)
			}
			for name, want := range tt.wantAlloc {
				for what, list := range map[string]v1.ResourceList{"capacity": n.Status.Capacity, "allocatable": n.Status.Allocatable} {
					got, ok := list[name]
					if !ok || got.Cmp(resource.MustParse(want)) != 0 {
						t.Errorf("%s[%s] = %v (present %v), want %s", what, name, got.String(), ok, want)
					}
				}
			}
			for k, want := range tt.wantLabels {
				if got := n.Labels[k]; got != want {
					t.Errorf("label %s = %q, want %q", k, got, want)
				}
			}
			for k, v := range n.Labels {
				if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
					t.Errorf("label %s=%q is invalid: %v", k, v, errs)
				}
			}
			// Capacity and allocatable must not share a map: a test that
			// changes one must not change the other.
			n.Status.Capacity[v1.ResourceCPU] = resource.MustParse("99")
			if got := n.Status.Allocatable[v1.ResourceCPU]; got.Cmp(resource.MustParse("99")) == 0 {
				t.Error("capacity and allocatable share one map")
			}
		})
	}
}

func TestNodeLooksRegistered(t *testing.T) {
	a, b := New("node-a", nil, nil), New("node-b", nil, nil)
	t.Logf("kubeletVersion %s, InternalIPs %s and %s", a.Status.NodeInfo.KubeletVersion, a.Status.Addresses[0].Address, b.Status.Addresses[0].Address)
	for _, n := range []*v1.Node{a, b} {
		info := n.Status.NodeInfo
		if !regexp.MustCompile(`^v1\.\d+\.\d+$`).MatchString(info.KubeletVersion) {
			t.Errorf("%s: kubeletVersion %q is not a Kubernetes release", n.Name, info.KubeletVersion)
		}
		for field, v := range map[string]string{"containerRuntimeVersion": info.ContainerRuntimeVersion, "kernelVersion": info.KernelVersion,
			"osImage": info.OSImage, "machineID": info.MachineID, "systemUUID": info.SystemUUID, "bootID": info.BootID,
			"operatingSystem": info.OperatingSystem, "architecture": info.Architecture} {
			if v == "" {
				t.Errorf("%s: nodeInfo.%s is empty", n.Name, field)
			}
		}
		addrs := map[v1.NodeAddressType]string{}
		for _, addr := range n.Status.Addresses {
			addrs[addr.Type] = addr.Address
		}
		if ip := net.ParseIP(addrs[v1.NodeInternalIP]); ip == nil || !ip.IsLoopback() {
			t.Errorf("%s: InternalIP %q is not a loopback address", n.Name, addrs[v1.NodeInternalIP])
		}
		if addrs[v1.NodeHostName] != n.Name {
			t.Errorf("%s: Hostname address %q", n.Name, addrs[v1.NodeHostName])
		}
		conds := map[v1.NodeConditionType]v1.ConditionStatus{}
		for _, c := range n.Status.Conditions {
			conds[c.Type] = c.Status
		}
		want := map[v1.NodeConditionType]v1.ConditionStatus{v1.NodeReady: v1.ConditionTrue, v1.NodeMemoryPressure: v1.ConditionFalse,
			v1.NodeDiskPressure: v1.ConditionFalse, v1.NodePIDPressure: v1.ConditionFalse}
		for typ, status := range want {
			if conds[typ] != status {
				t.Errorf("%s: condition %s = %q, want %q", n.Name, typ, conds[typ], status)
			}
		}
	}
	if a.Status.Addresses[0].Address == b.Status.Addresses[0].Address {
		t.Errorf("two nodes share the InternalIP %s", a.Status.Addresses[0].Address)
	}
	if a.Status.NodeInfo.MachineID == b.Status.NodeInfo.MachineID || a.Status.NodeInfo.SystemUUID == b.Status.NodeInfo.SystemUUID {
		t.Error("two nodes share machine IDs")
	}
}
