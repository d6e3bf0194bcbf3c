// Package podgroup holds what every part of cosched needs to know about
// scheduler-plugins PodGroups (scheduling.x-k8s.io/v1alpha1): how a pod names
// its group, how groups are keyed, and what a PodGroup's fields mean.
package podgroup

import (
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

const (
	// Label is the pod label that names the pod's PodGroup in the pod's own
	// namespace. Job controllers (Kubeflow, MPI Operator, Spark Operator,
	// KubeRay) already set it.
	Label = schedv1alpha1.PodGroupLabel

	// IndexName is the pod-informer index that maps a group key to the
	// group's pods.
	IndexName = "cosched.dev/pod-group"

	// TopologyKeyAnnotation on a PodGroup names the node label whose value
	// the whole group must share (kubernetes.io/hostname: one node;
	// topology.kubernetes.io/zone: one zone). The group is then placed
	// atomically into one such domain.
	TopologyKeyAnnotation = "cosched.dev/topology-key"

	// EventResource is how the scheduler's event machinery names PodGroup
	// events (<plural>.<version>.<group>); it watches them with a dynamic
	// informer.
	EventResource = "podgroups.v1alpha1.scheduling.x-k8s.io"
)

// Key returns the key of the group called name in namespace.
func Key(namespace, name string) string {
	return namespace + "/" + name
}

// NameOf returns the name of pod's group, or "" if pod is in none.
func NameOf(pod *v1.Pod) string {
	return pod.Labels[Label]
}

// KeyOf returns the key of pod's group, or "" if pod is in none.
func KeyOf(pod *v1.Pod) string {
	name := NameOf(pod)
	if name == "" {
		return ""
	}
	return Key(pod.Namespace, name)
}

// MinMember is the group's quorum. The CRD, like scheduler-plugins' own,
// refuses a negative or explicit 0 but lets the field be absent, which is
// what a client that computes 0 sends (Go's omitempty drops it): that group
// has a quorum of 1, each member is placed on its own, as scheduler-plugins
// does.
func MinMember(pg *schedv1alpha1.PodGroup) int {
	return max(int(pg.Spec.MinMember), 1)
}

// ScheduleTimeout is how long placed members wait for the rest of the group:
// the PodGroup's scheduleTimeoutSeconds when set and positive, else def (the
// plugin's permitWaitingTimeSeconds). 0 is what MPI Operator writes for "the
// scheduler's default" and Kubeflow Trainer documents the same; a negative
// value (passed through unvalidated by the Kubeflow operators) gets the
// default too. It never exceeds limit, the framework's own cap on Permit
// waits, however large the PodGroup's value.
func ScheduleTimeout(pg *schedv1alpha1.PodGroup, def, limit time.Duration) time.Duration {
	d := def
	if s := pg.Spec.ScheduleTimeoutSeconds; s != nil && *s > 0 {
		d = time.Duration(*s) * time.Second
	}
	return min(d, limit)
}

// TopologyKey returns the label key whose value the group's members must
// share, or "" when they need not share any. The PodGroup's annotation
// wins; otherwise a required pod affinity of member to its own group (the
// way users ask for co-location today) names it.
func TopologyKey(pg *schedv1alpha1.PodGroup, member *v1.Pod) string {
	if key, ok := pg.Annotations[TopologyKeyAnnotation]; ok {
		if key == "" {
			return v1.LabelHostname
		}
		return key
	}
	if member == nil || member.Spec.Affinity == nil || member.Spec.Affinity.PodAffinity == nil {
		return ""
	}
	own := labels.Set{Label: pg.Name}
	for _, term := range member.Spec.Affinity.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
		if term.TopologyKey == "" || term.NamespaceSelector != nil {
			continue
		}
		if len(term.Namespaces) > 0 && !slices.Contains(term.Namespaces, member.Namespace) {
			continue
		}
		selector, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
		if err != nil || selector.Empty() {
			continue
		}
		if selector.Matches(own) {
			return term.TopologyKey
		}
	}
	return ""
}

// IndexByGroup is a cache.IndexFunc that keys pods by their group.
func IndexByGroup(obj any) ([]string, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return nil, nil
	}
	if key := KeyOf(pod); key != "" {
		return []string{key}, nil
	}
	return nil, nil
}

// AddIndex installs IndexByGroup on an informer unless an index of that name
// is already there (several scheduler profiles share one pod informer).
func AddIndex(informer cache.SharedIndexInformer) error {
	if _, ok := informer.GetIndexer().GetIndexers()[IndexName]; ok {
		return nil
	}
	return informer.AddIndexers(cache.Indexers{IndexName: IndexByGroup})
}

// Members returns the pods of the group key from an indexer carrying
// IndexByGroup.
func Members(indexer cache.Indexer, key string) []*v1.Pod {
	objs, err := indexer.ByIndex(IndexName, key)
	if err != nil {
		return nil
	}
	pods := make([]*v1.Pod, 0, len(objs))
	for _, obj := range objs {
		if pod, ok := obj.(*v1.Pod); ok {
			pods = append(pods, pod)
		}
	}
	return pods
}
