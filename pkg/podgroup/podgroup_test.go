package podgroup

import (
	"math"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

func group(annotations map[string]string) *schedv1alpha1.PodGroup {
	return &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pg", Annotations: annotations}}
}

func memberWithAffinity(terms ...v1.PodAffinityTerm) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m", Labels: map[string]string{Label: "pg"}},
		Spec:       v1.PodSpec{Affinity: &v1.Affinity{PodAffinity: &v1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}}},
	}
}

func term(selector map[string]string, key string, namespaces ...string) v1.PodAffinityTerm {
	return v1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: selector}, TopologyKey: key, Namespaces: namespaces}
}

func TestTopologyKey(t *testing.T) {
	own := map[string]string{Label: "pg"}
	tests := []struct {
		name   string
		pg     *schedv1alpha1.PodGroup
		member *v1.Pod
		want   string
	}{
		{name: "annotation names the key", pg: group(map[string]string{TopologyKeyAnnotation: "topology.kubernetes.io/zone"}), want: "topology.kubernetes.io/zone"},
		{name: "empty annotation means one node", pg: group(map[string]string{TopologyKeyAnnotation: ""}), want: v1.LabelHostname},
		{name: "annotation wins over affinity", pg: group(map[string]string{TopologyKeyAnnotation: "rack"}), member: memberWithAffinity(term(own, v1.LabelHostname)), want: "rack"},
		{name: "affinity to the own group", pg: group(nil), member: memberWithAffinity(term(own, v1.LabelHostname)), want: v1.LabelHostname},
		{name: "affinity listing the own namespace", pg: group(nil), member: memberWithAffinity(term(own, "rack", "ns")), want: "rack"},
		{name: "affinity to another namespace", pg: group(nil), member: memberWithAffinity(term(own, "rack", "other")), want: ""},
		{name: "affinity to another group", pg: group(nil), member: memberWithAffinity(term(map[string]string{Label: "other"}, "rack")), want: ""},
		{name: "affinity selecting everything is not a group", pg: group(nil), member: memberWithAffinity(term(nil, "rack")), want: ""},
		{name: "no affinity", pg: group(nil), member: &v1.Pod{}, want: ""},
		{name: "no member", pg: group(nil), want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := TopologyKey(tc.pg, tc.member); got != tc.want {
				t.Errorf("TopologyKey() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestScheduleTimeout(t *testing.T) {
	def, limit := time.Minute, 15*time.Minute
	for _, tc := range []struct {
		seconds *int32
		want    time.Duration
	}{
		{nil, def},
		{ptr.To[int32](0), def},
		{ptr.To[int32](-5), def},
		{ptr.To[int32](30), 30 * time.Second},
		{ptr.To[int32](86400), limit},
		{ptr.To[int32](math.MaxInt32), limit},
		{ptr.To[int32](math.MinInt32), def},
	} {
		pg := group(nil)
		pg.Spec.ScheduleTimeoutSeconds = tc.seconds
		if got := ScheduleTimeout(pg, def, limit); got != tc.want {
			t.Errorf("ScheduleTimeout(%v) = %v, want %v", tc.seconds, got, tc.want)
		}
	}
}

func TestMinMember(t *testing.T) {
	for _, tc := range []struct {
		minMember int32
		want      int
	}{
		// Absent on the wire (a client computed 0): a quorum of 1.
		{0, 1},
		{1, 1},
		{3, 3},
		// No upper bound: sums of replica counts are not capped by clients.
		{math.MaxInt32, math.MaxInt32},
	} {
		pg := group(nil)
		pg.Spec.MinMember = tc.minMember
		if got := MinMember(pg); got != tc.want {
			t.Errorf("MinMember(%d) = %d, want %d", tc.minMember, got, tc.want)
		}
	}
}

// FuzzTopologyKey feeds arbitrary annotation values and affinity keys: the
// answer must never panic and is either "" or a key the input named.
func FuzzTopologyKey(f *testing.F) {
	f.Add("topology.kubernetes.io/zone", "kubernetes.io/hostname", "pg", true)
	f.Add("", "", "", false)
	f.Add("\x00bad key", "rack", "other", false)
	f.Fuzz(func(t *testing.T, annotation, affinityKey, selected string, annotate bool) {
		pg := group(nil)
		if annotate {
			pg.Annotations = map[string]string{TopologyKeyAnnotation: annotation}
		}
		member := memberWithAffinity(term(map[string]string{Label: selected}, affinityKey))
		got := TopologyKey(pg, member)
		switch {
		case got == "":
		case annotate && (got == annotation || (annotation == "" && got == v1.LabelHostname)):
		case !annotate && got == affinityKey:
		default:
			t.Fatalf("TopologyKey() = %q from annotation %q (set %v), affinity key %q", got, annotation, annotate, affinityKey)
		}
	})
}
