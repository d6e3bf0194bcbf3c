package explain

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Objects as the API server and cosched leave them, at fixed times.

var t0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func mt(s float64) metav1.Time { return metav1.NewTime(at(s)) }

func newGroup(ns, name string, minMember int32, created float64) *schedv1alpha1.PodGroup {
	return &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("pg-" + name), CreationTimestamp: mt(created)},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember},
	}
}

func withPhase(pg *schedv1alpha1.PodGroup, phase schedv1alpha1.PodGroupPhase, started float64) *schedv1alpha1.PodGroup {
	pg.Status.Phase = phase
	if started >= 0 {
		pg.Status.ScheduleStartTime = mt(started)
	}
	return pg
}

func member(pg *schedv1alpha1.PodGroup, name string, created float64) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: pg.Namespace, Name: name, UID: types.UID("pod-" + name),
			CreationTimestamp: mt(created), Labels: map[string]string{podgroup.Label: pg.Name}},
		Spec: v1.PodSpec{SchedulerName: "cosched", Containers: []v1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10",
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}}},
		Status: v1.PodStatus{Phase: v1.PodPending},
	}
}

// bound puts p on node at second s, running.
func bound(p *v1.Pod, node string, s float64) *v1.Pod {
	p.Spec.NodeName = node
	p.Status.Phase = v1.PodRunning
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: mt(s)}}
	return p
}

// unschedulable records a failed attempt at second s in the condition.
func unschedulable(p *v1.Pod, s float64, msg string) *v1.Pod {
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: v1.PodReasonUnschedulable,
		Message: msg, LastTransitionTime: mt(s)}}
	return p
}

func nominated(p *v1.Pod, node string) *v1.Pod {
	p.Status.NominatedNodeName = node
	return p
}

func sameNode(p *v1.Pod, key string) *v1.Pod {
	p.Spec.Affinity = &v1.Affinity{PodAffinity: &v1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{podgroup.Label: p.Labels[podgroup.Label]}},
		TopologyKey:   key,
	}}}}
	return p
}

func node(name string, labels map[string]string) *v1.Node {
	l := map[string]string{v1.LabelHostname: name}
	for k, v := range labels {
		l[k] = v
	}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func nodeMap(nodes ...*v1.Node) map[string]*v1.Node {
	m := map[string]*v1.Node{}
	for _, n := range nodes {
		m[n.Name] = n
	}
	return m
}

var eventSeq int

// event is an events.k8s.io event as the scheduler's recorder writes it:
// first seen at s, and n times up to last when n > 1.
func event(regarding any, reason, note string, s float64, n int32, last float64) eventsv1.Event {
	eventSeq++
	e := eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e%d", eventSeq), CreationTimestamp: mt(s)},
		EventTime:  metav1.NewMicroTime(at(s)),
		Reason:     reason,
		Note:       note,
		Type:       v1.EventTypeNormal,
	}
	switch o := regarding.(type) {
	case *schedv1alpha1.PodGroup:
		e.Namespace = o.Namespace
		e.Regarding = v1.ObjectReference{Kind: "PodGroup", APIVersion: "scheduling.x-k8s.io/v1alpha1", Namespace: o.Namespace, Name: o.Name, UID: o.UID}
	case *v1.Pod:
		e.Namespace = o.Namespace
		e.Regarding = v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: o.Namespace, Name: o.Name, UID: o.UID}
	}
	if n > 1 {
		e.Series = &eventsv1.EventSeries{Count: n, LastObservedTime: metav1.NewMicroTime(at(last))}
	}
	return e
}

func related(e eventsv1.Event, pg *schedv1alpha1.PodGroup) eventsv1.Event {
	e.Related = &v1.ObjectReference{Kind: "PodGroup", APIVersion: "scheduling.x-k8s.io/v1alpha1", Namespace: pg.Namespace, Name: pg.Name, UID: pg.UID}
	return e
}

// A case is one group in one situation.
type fixture struct {
	name string
	in   Input
}

// fixtures returns the situations the tests render, now being t0+300s.
func fixtures() []fixture {
	var out []fixture

	// An atomic pair (required podAffinity on the hostname), bound together
	// on the first try.
	{
		pg := withPhase(newGroup("shop", "app-with-logs", 2, 0), schedv1alpha1.PodGroupRunning, 1)
		pg.Annotations = map[string]string{"cosched.dev/scheduled-members": "2"}
		pg.Spec.ScheduleTimeoutSeconds = ptr.To[int32](30)
		app := bound(sameNode(member(pg, "app", 0.5), v1.LabelHostname), "node-b", 1.2)
		logs := bound(sameNode(member(pg, "log-collector", 0.6), v1.LabelHostname), "node-b", 1.2)
		out = append(out, fixture{"atomic-bound", Input{
			Group: pg, Pods: []*v1.Pod{app, logs},
			Events: []eventsv1.Event{
				event(app, "Scheduled", "Successfully assigned shop/app to node-b", 1.21, 1, 0),
				event(logs, "Scheduled", "Successfully assigned shop/log-collector to node-b", 1.22, 1, 0),
				event(pg, "Scheduling", "2/2 members scheduled, 0 running, quorum is 2", 1.3, 1, 0),
				event(pg, "Running", "2/2 members running, 0 succeeded, quorum is 2", 2.5, 1, 0),
			},
			Nodes: nodeMap(node("node-a", nil), node("node-b", nil)),
		}})
	}

	// Four workers that do not fit: rejected as a whole, again and again,
	// and the members back off.
	{
		pg := withPhase(newGroup("training", "train-e", 4, 10), schedv1alpha1.PodGroupScheduling, 10.5)
		var pods []*v1.Pod
		for i := 0; i < 4; i++ {
			pods = append(pods, unschedulable(member(pg, fmt.Sprintf("train-e-worker-%d", i), 10.2),
				12, "0/6 nodes are available: PodGroup training/train-e cannot fit as a whole: 2/4 members fit (0 placed, 2 more fit of 4 needed); member needs cpu 2500m, best node has 1. PodGroup training/train-e was turned away before filtering; preemption cannot help: evicting lower-priority pods and gangs cannot make room for 4 member(s)."))
		}
		out = append(out, fixture{"no-fit", Input{
			Group: pg, Pods: pods,
			Events: []eventsv1.Event{
				event(pg, "Scheduling", "4/4 members scheduled, 0 running, quorum is 4", 10.6, 1, 0),
				event(pg, "GangRejected", "2/4 members fit (0 placed, 2 more fit of 4 needed); member needs cpu 2500m, best node has 1", 12, 7, 250),
				event(pods[0], "FailedScheduling", "0/6 nodes are available: PodGroup training/train-e cannot fit as a whole: 2/4 members fit (0 placed, 2 more fit of 4 needed); member needs cpu 2500m, best node has 1. PodGroup training/train-e was turned away before filtering; preemption cannot help: evicting lower-priority pods and gangs cannot make room for 4 member(s).", 12, 7, 250),
				event(pods[1], "FailedScheduling", "0/6 nodes are available: PodGroup training/train-e is backing off for 4.2s after it was rejected: 2/4 members fit (0 placed, 2 more fit of 4 needed); member needs cpu 2500m, best node has 1.", 12.1, 3, 260),
			},
			Nodes: map[string]*v1.Node{},
		}})
	}

	// Three of four pods exist: nothing to try yet.
	{
		pg := withPhase(newGroup("training", "short", 4, 280), schedv1alpha1.PodGroupPending, -1)
		var pods []*v1.Pod
		for i := 0; i < 3; i++ {
			pods = append(pods, member(pg, fmt.Sprintf("short-%d", i), 281))
		}
		out = append(out, fixture{"waiting-for-pods", Input{Group: pg, Pods: pods}})
	}

	// Two members hold their nodes at Permit; the third is held by a
	// scheduling gate.
	{
		pg := withPhase(withTimeout(newGroup("training", "job", 3, 200), 300), schedv1alpha1.PodGroupScheduling, 200)
		pods := []*v1.Pod{
			nominated(member(pg, "job-0", 200), "node-1"),
			nominated(member(pg, "job-1", 200), "node-2"),
			member(pg, "job-2", 200),
		}
		pods[2].Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "example.com/hold"}}
		out = append(out, fixture{"placed-waiting", Input{Group: pg, Pods: pods, Nodes: map[string]*v1.Node{}}})
	}

	// A ring on racks that was preempted as a unit by a higher-priority
	// gang, and now waits for room again; one member was recreated.
	{
		const rack = "topology.cosched.dev/rack"
		pg := withPhase(newGroup("research", "ring", 2, 0), schedv1alpha1.PodGroupScheduling, 1)
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: rack}
		// ring-0 was recreated under its name after the preemption.
		old0, old1 := bound(member(pg, "ring-0", 0), "rack1-node-0", 2), bound(member(pg, "ring-1", 0), "rack1-node-1", 2)
		r0 := member(pg, "ring-0", 118.4)
		r0.UID = "pod-ring-0-new"
		r1 := unschedulable(member(pg, "ring-1", 120), 121, "0/4 nodes are available: PodGroup research/ring cannot fit as a whole: no topology.cosched.dev/rack: no domain has room for 2 members (cpu 6); the roomiest, rack-0, has cpu 4 free.")
		out = append(out, fixture{"preempted", Input{
			Group: pg, Pods: []*v1.Pod{r0, r1},
			Events: []eventsv1.Event{
				event(old0, "Scheduled", "Successfully assigned research/ring-0 to rack1-node-0", 2, 1, 0),
				event(old1, "Scheduled", "Successfully assigned research/ring-1 to rack1-node-1", 2, 1, 0),
				event(pg, "Running", "2/2 members running, 0 succeeded, quorum is 2", 3, 1, 0),
				event(pg, "GangPreempted", "all 2 placed member(s) preempted as a unit by PodGroup research/urgent: to place 2 member(s) of PodGroup research/urgent (priority 1000) in topology.cosched.dev/rack=rack-1", 118, 1, 0),
				event(old0, "Preempted", "Preempted with all 2 placed member(s) of PodGroup research/ring by PodGroup research/urgent: to place 2 member(s) of PodGroup research/urgent (priority 1000) in topology.cosched.dev/rack=rack-1", 118, 1, 0),
				event(pg, "Unknown", "1/2 members remain after members were deleted; quorum is 2", 118.5, 1, 0),
				event(pg, "GangRejected", "no topology.cosched.dev/rack: no domain has room for 2 members (cpu 6); the roomiest, rack-0, has cpu 4 free", 121, 4, 290),
			},
			Nodes: map[string]*v1.Node{},
		}})
	}

	// The group that preempted: it made room on rack-1 and runs there.
	{
		const rack = "topology.cosched.dev/rack"
		pg := withPhase(newGroup("research", "urgent", 2, 115), schedv1alpha1.PodGroupRunning, 115)
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: rack}
		u0 := bound(member(pg, "urgent-0", 115), "rack1-node-0", 119.5)
		u1 := bound(member(pg, "urgent-1", 115), "rack1-node-1", 119.5)
		victim := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "research", Name: "ring-1-old", UID: "pod-ring-1-old"}}
		out = append(out, fixture{"preempting", Input{
			Group: pg, Pods: []*v1.Pod{u0, u1},
			Events: []eventsv1.Event{
				event(pg, "Preempting", "preempting gang research/ring (2 pods, priority 0) to place 2 member(s) of PodGroup research/urgent (priority 1000) in topology.cosched.dev/rack=rack-1", 117.9, 1, 0),
				related(event(victim, "Preempted", "Preempted with all 2 placed member(s) of PodGroup research/ring by PodGroup research/urgent: to place 2 member(s) of PodGroup research/urgent (priority 1000) in topology.cosched.dev/rack=rack-1", 118, 1, 0), pg),
				event(u0, "Scheduled", "Successfully assigned research/urgent-0 to rack1-node-0", 119.5, 1, 0),
				event(u1, "Scheduled", "Successfully assigned research/urgent-1 to rack1-node-1", 119.6, 1, 0),
			},
			Nodes: nodeMap(node("rack1-node-0", map[string]string{rack: "rack-1"}), node("rack1-node-1", map[string]string{rack: "rack-1"})),
		}})
	}

	// Another scheduler's group (scheduler-plugins' Coscheduling): no
	// cosched status, the events expired, only the pods' conditions speak.
	{
		pg := newGroup("default", "spark-pi", 3, 60)
		pg.Spec.MinResources = v1.ResourceList{v1.ResourceCPU: resource.MustParse("3"), v1.ResourceMemory: resource.MustParse("6Gi")}
		var pods []*v1.Pod
		for i, name := range []string{"spark-pi-driver", "spark-pi-exec-1", "spark-pi-exec-2"} {
			p := unschedulable(member(pg, name, 61+float64(i)), 70, `0/3 nodes are available: pre-filter plugin "Coscheduling" rejects the pod. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.`)
			p.Spec.SchedulerName = "scheduler-plugins-scheduler"
			pods = append(pods, p)
		}
		out = append(out, fixture{"other-scheduler", Input{Group: pg, Pods: pods}})
	}
	return out
}

func withTimeout(pg *schedv1alpha1.PodGroup, s int32) *schedv1alpha1.PodGroup {
	pg.Spec.ScheduleTimeoutSeconds = ptr.To(s)
	return pg
}
