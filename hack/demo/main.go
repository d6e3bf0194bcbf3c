// Command demo replays cosched's showcase on a running cluster (make demo
// brings up a local one): the App + LogCollector pair under both placement
// strategies, then training gangs that compete for too little room. It
// prints where every member landed, how long each group took and why the
// waiting ones wait, and leaves everything in place for kubectl.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil/fakenode"
)

const (
	sceneLabel = "demo.cosched.dev/scene"
	// kwokAnnotation hands a node to the KWOK controller, which plays its
	// kubelet.
	kwokAnnotation = "kwok.x-k8s.io/node"
)

type demo struct {
	cs  kubernetes.Interface
	pg  versioned.Interface
	ns  string
	out *tabwriter.Writer
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster to use")
	namespace := flag.String("namespace", "cosched-demo", "namespace for the demo's objects (recreated)")
	timeout := flag.Duration("group-timeout", 20*time.Second, "how long to watch one group before calling it stuck")
	flag.Parse()
	if *kubeconfig == "" {
		fail(fmt.Errorf("no cluster: set KUBECONFIG or --kubeconfig (make demo starts a local one)"))
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	d := &demo{
		cs:  kubernetes.NewForConfigOrDie(cfg),
		pg:  versioned.NewForConfigOrDie(cfg),
		ns:  *namespace,
		out: tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0),
	}
	ctx := context.Background()
	if err := d.reset(ctx); err != nil {
		fail(err)
	}
	if err := d.appAndLogCollector(ctx, *timeout); err != nil {
		fail(err)
	}
	if err := d.competingGangs(ctx, *timeout); err != nil {
		fail(err)
	}
	fmt.Printf("\nEverything is still there to explore:\n")
	fmt.Printf("  kubectl get podgroups,pods -n %s -o wide\n", d.ns)
	fmt.Printf("  kubectl describe podgroup -n %s train-e     # events say why a gang waits\n", d.ns)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

// reset recreates the demo namespace and the demo's nodes.
func (d *demo) reset(ctx context.Context) error {
	err := d.cs.CoreV1().Namespaces().Delete(ctx, d.ns, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := d.cs.CoreV1().Namespaces().Get(ctx, d.ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		return fmt.Errorf("waiting for the old %s namespace to go: %w", d.ns, err)
	}
	if _, err := d.cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: d.ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	nodes := []*v1.Node{
		node("node-a", "4", "1280Mi", "app", map[string]string{"disk": "ssd"}),
		node("node-b", "4", "2Gi", "app", nil),
	}
	for i := 0; i < 4; i++ {
		nodes = append(nodes, node(fmt.Sprintf("train-%d", i), "8", "32Gi", "train", nil))
	}
	for _, n := range nodes {
		_ = d.cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
	}
	for _, n := range nodes {
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := d.cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return false, nil // the old one is still going
			}
			return err == nil, err
		}); err != nil {
			return fmt.Errorf("creating node %s: %w", n.Name, err)
		}
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, n := range nodes {
			got, err := d.cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil || !ready(got) {
				return false, nil
			}
		}
		return true, nil
	})
}

func node(name, cpu, memory, scene string, extra map[string]string) *v1.Node {
	labels := map[string]string{v1.LabelHostname: name, sceneLabel: scene, "type": "kwok"}
	for k, v := range extra {
		labels[k] = v
	}
	// A node as a kubelet registers it (ephemeral-storage, hugepages,
	// well-known labels, nodeInfo, addresses), without conditions: KWOK adds
	// them when it takes the node over.
	n := fakenode.New(name, v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse(cpu),
		v1.ResourceMemory: resource.MustParse(memory),
	}, labels)
	n.Annotations = map[string]string{kwokAnnotation: "fake"}
	n.Spec.Taints = []v1.Taint{{Key: kwokAnnotation, Value: "fake", Effect: v1.TaintEffectNoSchedule}}
	n.Status.Conditions = nil
	return n
}

func ready(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func pod(ns, name, group, scheduler, scene, cpu, memory string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{podgroup.Label: group}},
		Spec: v1.PodSpec{
			SchedulerName: scheduler,
			NodeSelector:  map[string]string{sceneLabel: scene},
			Tolerations:   []v1.Toleration{{Key: kwokAnnotation, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}},
			Containers: []v1.Container{{
				Name:  "main",
				Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
					v1.ResourceCPU:    resource.MustParse(cpu),
					v1.ResourceMemory: resource.MustParse(memory),
				}},
			}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
}

// sameNodeAs asks for co-location the way users do today: required pod
// affinity to the pod's own group on the hostname.
func sameNodeAs(p *v1.Pod, group string) *v1.Pod {
	p.Spec.Affinity = &v1.Affinity{PodAffinity: &v1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{podgroup.Label: group}},
		TopologyKey:   v1.LabelHostname,
	}}}}
	return p
}

func (d *demo) appAndLogCollector(ctx context.Context, timeout time.Duration) error {
	fmt.Println("== Scene 1: App (1Gi) + LogCollector (0.5Gi) must share a node ==")
	fmt.Println("   node-a has 1.25Gi free and a fast disk App prefers; node-b has 2Gi free.")
	fmt.Println()
	fmt.Fprintln(d.out, "strategy\tapp\tlog-collector\ttime to place\twhole-group rejections\toutcome")
	for _, s := range []struct{ scheduler, label string }{
		{"cosched-member-by-member", "member by member"},
		{"cosched", "pod-atomic"},
	} {
		group := "app-with-logs-" + map[string]string{"cosched": "atomic", "cosched-member-by-member": "mbm"}[s.scheduler]
		app := sameNodeAs(pod(d.ns, group+"-app", group, s.scheduler, "app", "100m", "1Gi"), group)
		app.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{
			Weight:     100,
			Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "disk", Operator: v1.NodeSelectorOpIn, Values: []string{"ssd"}}}},
		}}}
		logs := sameNodeAs(pod(d.ns, group+"-log-collector", group, s.scheduler, "app", "100m", "512Mi"), group)
		// The members wait for their PodGroup, so both enter the queue
		// together and App goes first, as in the mission's story.
		for _, p := range []*v1.Pod{app, logs} {
			if _, err := d.cs.CoreV1().Pods(d.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		time.Sleep(time.Second)
		if _, err := d.pg.SchedulingV1alpha1().PodGroups(d.ns).Create(ctx, pg(d.ns, group, 2), metav1.CreateOptions{}); err != nil {
			return err
		}
		nodes, took := d.waitBound(ctx, []string{app.Name, logs.Name}, timeout)
		rejections := d.countEvents(ctx, group, "GangRejected")
		outcome := "placed together"
		if nodes[app.Name] == "" {
			outcome = fmt.Sprintf("not placed within %s", timeout)
		}
		fmt.Fprintf(d.out, "%s\t%s\t%s\t%s\t%d\t%s\n", s.label, show(nodes[app.Name]), show(nodes[logs.Name]), showTook(took, nodes[app.Name]), rejections, outcome)
		// Free the nodes for the next strategy.
		_ = d.pg.SchedulingV1alpha1().PodGroups(d.ns).Delete(ctx, group, metav1.DeleteOptions{})
		for _, name := range []string{app.Name, logs.Name} {
			_ = d.cs.CoreV1().Pods(d.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}
		d.waitGone(ctx, []string{app.Name, logs.Name})
	}
	return d.out.Flush()
}

func (d *demo) competingGangs(ctx context.Context, timeout time.Duration) error {
	fmt.Println()
	fmt.Println("== Scene 2: five training gangs of 4 workers x 2.5 CPU; four 8-CPU nodes hold three ==")
	fmt.Println()
	names := []string{"train-a", "train-b", "train-c", "train-d", "train-e"}
	members := map[string][]string{}
	for _, g := range names {
		if _, err := d.pg.SchedulingV1alpha1().PodGroups(d.ns).Create(ctx, pg(d.ns, g, 4), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	start := time.Now()
	// Interleave the members, as controllers creating several jobs at once
	// would: one-by-one scheduling would now hold part of every gang.
	for i := 0; i < 4; i++ {
		for _, g := range names {
			p := pod(d.ns, fmt.Sprintf("%s-worker-%d", g, i), g, "cosched", "train", "2500m", "4Gi")
			if _, err := d.cs.CoreV1().Pods(d.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				return err
			}
			members[g] = append(members[g], p.Name)
		}
	}
	placed := map[string]time.Duration{}
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, g := range names {
			if _, ok := placed[g]; ok {
				continue
			}
			if nodes := d.nodesOf(ctx, members[g]); countBound(nodes) == len(members[g]) {
				placed[g] = time.Since(start)
			}
		}
		return len(placed) >= 3, nil
	})
	time.Sleep(2 * time.Second) // let the status writer catch up
	d.gangTable(ctx, names, members, placed)

	fmt.Println()
	fmt.Println("train-a finishes and its pods go: a waiting gang takes the room, whole.")
	for _, p := range members["train-a"] {
		_ = d.cs.CoreV1().Pods(d.ns).Delete(ctx, p, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}
	freed := time.Now()
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, g := range names[1:] {
			if _, ok := placed[g]; ok {
				continue
			}
			if nodes := d.nodesOf(ctx, members[g]); countBound(nodes) == len(members[g]) {
				placed[g] = time.Since(freed)
				return true, nil
			}
		}
		return false, nil
	})
	time.Sleep(2 * time.Second)
	delete(placed, "train-a")
	d.gangTable(ctx, names[1:], members, placed)
	return nil
}

func (d *demo) gangTable(ctx context.Context, names []string, members map[string][]string, placed map[string]time.Duration) {
	fmt.Fprintln(d.out, "gang\tphase\tbound\tnodes\ttime to place\twhy it waits")
	for _, g := range names {
		nodes := d.nodesOf(ctx, members[g])
		phase := "-"
		if got, err := d.pg.SchedulingV1alpha1().PodGroups(d.ns).Get(ctx, g, metav1.GetOptions{}); err == nil {
			phase = string(got.Status.Phase)
		}
		var used []string
		seen := map[string]bool{}
		for _, n := range nodes {
			if n != "" && !seen[n] {
				seen[n] = true
				used = append(used, n)
			}
		}
		sort.Strings(used)
		took, why := "-", ""
		if t, ok := placed[g]; ok {
			took = t.Round(10 * time.Millisecond).String()
		} else {
			why = d.lastEvent(ctx, g, "GangRejected")
		}
		fmt.Fprintf(d.out, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", g, phase, countBound(nodes), len(members[g]), strings.Join(used, ","), took, why)
	}
	_ = d.out.Flush()
}

func pg(ns, name string, minMember int32) *schedv1alpha1.PodGroup {
	return &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember, ScheduleTimeoutSeconds: ptr.To[int32](30)},
	}
}

func (d *demo) nodesOf(ctx context.Context, names []string) map[string]string {
	out := map[string]string{}
	for _, name := range names {
		if p, err := d.cs.CoreV1().Pods(d.ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			out[name] = p.Spec.NodeName
		}
	}
	return out
}

func countBound(nodes map[string]string) int {
	n := 0
	for _, node := range nodes {
		if node != "" {
			n++
		}
	}
	return n
}

// waitBound waits until every pod is bound, or the timeout.
func (d *demo) waitBound(ctx context.Context, names []string, timeout time.Duration) (map[string]string, time.Duration) {
	start := time.Now()
	var nodes map[string]string
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		nodes = d.nodesOf(ctx, names)
		return countBound(nodes) == len(names), nil
	})
	return nodes, time.Since(start)
}

func (d *demo) waitGone(ctx context.Context, names []string) {
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			if _, err := d.cs.CoreV1().Pods(d.ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		return true, nil
	})
}

func (d *demo) countEvents(ctx context.Context, group, reason string) int {
	n := 0
	for _, e := range d.events(ctx, group) {
		if e.Reason == reason {
			n += max(1, int(seriesCount(e)))
		}
	}
	return n
}

func (d *demo) lastEvent(ctx context.Context, group, reason string) string {
	var last string
	var at time.Time
	for _, e := range d.events(ctx, group) {
		t := e.EventTime.Time
		if e.Series != nil {
			t = e.Series.LastObservedTime.Time
		}
		if e.Reason == reason && !t.Before(at) {
			last, at = e.Note, t
		}
	}
	return last
}

func (d *demo) events(ctx context.Context, group string) []eventsv1.Event {
	list, err := d.cs.EventsV1().Events(d.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "PodGroup" && e.Regarding.Name == group {
			out = append(out, e)
		}
	}
	return out
}

func seriesCount(e eventsv1.Event) int32 {
	if e.Series == nil {
		return 1
	}
	return e.Series.Count
}

func show(node string) string {
	if node == "" {
		return "<not placed>"
	}
	return node
}

func showTook(d time.Duration, node string) string {
	if node == "" {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}
