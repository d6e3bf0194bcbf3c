// Package capacity answers, from node resources alone, whether a set of pods
// can be packed onto a set of nodes, and if not, what blocks it.
//
// It is the gang plugin's cheap feasibility check: before any member of a
// group reserves anything, the scheduler asks whether enough members fit the
// free room node by node. Summing free resources across the cluster is not
// enough: two 0.75-CPU holes cannot hold one 1-CPU pod. The package works on
// plain values so it is easy to test and benchmark, and makes no API calls.
package capacity

import (
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	fwk "k8s.io/kube-scheduler/framework"
)

// Vector is an amount of node resources, in the units the scheduler's
// NodeInfo uses (milli-CPU, bytes, counts).
type Vector struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// Scalars are extended resources and hugepages.
	Scalars map[v1.ResourceName]int64
}

// Node is the free room on one node.
type Node struct {
	Name string
	Free Vector
	// Pods is how many more pods the node accepts.
	Pods int64
}

// RequestOf returns what pod asks of a node (init containers, overhead and
// pod-level resources included, as the scheduler computes it).
func RequestOf(pod *v1.Pod) Vector {
	return FromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
}

// FromList converts a ResourceList; the pod count is not a Vector dimension.
func FromList(rl v1.ResourceList) Vector {
	var v Vector
	for name, q := range rl {
		switch name {
		case v1.ResourceCPU:
			v.MilliCPU = q.MilliValue()
		case v1.ResourceMemory:
			v.Memory = q.Value()
		case v1.ResourceEphemeralStorage:
			v.EphemeralStorage = q.Value()
		case v1.ResourcePods:
		default:
			if v.Scalars == nil {
				v.Scalars = map[v1.ResourceName]int64{}
			}
			v.Scalars[name] = q.Value()
		}
	}
	return v
}

// NodeOf returns the free room on a scheduler NodeInfo.
func NodeOf(ni fwk.NodeInfo) Node {
	alloc, used := ni.GetAllocatable(), ni.GetRequested()
	n := Node{
		Free: Vector{
			MilliCPU:         alloc.GetMilliCPU() - used.GetMilliCPU(),
			Memory:           alloc.GetMemory() - used.GetMemory(),
			EphemeralStorage: alloc.GetEphemeralStorage() - used.GetEphemeralStorage(),
		},
		Pods: int64(alloc.GetAllowedPodNumber() - len(ni.GetPods())),
	}
	if node := ni.Node(); node != nil {
		n.Name = node.Name
	}
	for name, total := range alloc.GetScalarResources() {
		if n.Free.Scalars == nil {
			n.Free.Scalars = map[v1.ResourceName]int64{}
		}
		n.Free.Scalars[name] = total - used.GetScalarResources()[name]
	}
	return n
}

// Add returns v+o.
func (v Vector) Add(o Vector) Vector {
	out := Vector{MilliCPU: v.MilliCPU + o.MilliCPU, Memory: v.Memory + o.Memory, EphemeralStorage: v.EphemeralStorage + o.EphemeralStorage}
	for _, m := range []map[v1.ResourceName]int64{v.Scalars, o.Scalars} {
		for name, q := range m {
			if out.Scalars == nil {
				out.Scalars = map[v1.ResourceName]int64{}
			}
			out.Scalars[name] += q
		}
	}
	return out
}

// Sub returns v-o.
func (v Vector) Sub(o Vector) Vector {
	neg := Vector{MilliCPU: -o.MilliCPU, Memory: -o.Memory, EphemeralStorage: -o.EphemeralStorage}
	for name, q := range o.Scalars {
		if neg.Scalars == nil {
			neg.Scalars = map[v1.ResourceName]int64{}
		}
		neg.Scalars[name] = -q
	}
	return v.Add(neg)
}

// Fits reports whether req fits in free.
func (v Vector) Fits(free Vector) bool {
	return v.Missing(free) == ""
}

// Missing names the first resource of v that free cannot cover, or "".
func (v Vector) Missing(free Vector) v1.ResourceName {
	switch {
	case v.MilliCPU > free.MilliCPU && v.MilliCPU > 0:
		return v1.ResourceCPU
	case v.Memory > free.Memory && v.Memory > 0:
		return v1.ResourceMemory
	case v.EphemeralStorage > free.EphemeralStorage && v.EphemeralStorage > 0:
		return v1.ResourceEphemeralStorage
	}
	for _, name := range sortedNames(v.Scalars) {
		if q := v.Scalars[name]; q > 0 && q > free.Scalars[name] {
			return name
		}
	}
	return ""
}

// Get returns the amount of one resource.
func (v Vector) Get(name v1.ResourceName) int64 {
	switch name {
	case v1.ResourceCPU:
		return v.MilliCPU
	case v1.ResourceMemory:
		return v.Memory
	case v1.ResourceEphemeralStorage:
		return v.EphemeralStorage
	}
	return v.Scalars[name]
}

// Equal reports whether two vectors ask for the same amounts.
func (v Vector) Equal(o Vector) bool {
	if v.MilliCPU != o.MilliCPU || v.Memory != o.Memory || v.EphemeralStorage != o.EphemeralStorage {
		return false
	}
	for name, q := range v.Scalars {
		if o.Scalars[name] != q {
			return false
		}
	}
	for name, q := range o.Scalars {
		if v.Scalars[name] != q {
			return false
		}
	}
	return true
}

// String prints the non-zero amounts, e.g. "cpu 2, memory 1Gi".
func (v Vector) String() string {
	var parts []string
	for _, name := range append([]v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage}, sortedNames(v.Scalars)...) {
		if q := v.Get(name); q != 0 {
			parts = append(parts, fmt.Sprintf("%s %s", name, Format(name, q)))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// Format prints one amount the way a person writes it in a manifest.
func Format(name v1.ResourceName, q int64) string {
	switch name {
	case v1.ResourceCPU:
		return resource.NewMilliQuantity(q, resource.DecimalSI).String()
	case v1.ResourceMemory, v1.ResourceEphemeralStorage:
		return resource.NewQuantity(q, resource.BinarySI).String()
	}
	return resource.NewQuantity(q, resource.DecimalSI).String()
}

func sortedNames(m map[v1.ResourceName]int64) []v1.ResourceName {
	if len(m) == 0 {
		return nil
	}
	names := make([]v1.ResourceName, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
