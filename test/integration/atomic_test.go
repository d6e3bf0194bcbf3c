package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

const rackLabel = "topology.cosched.dev/rack"

func strategy(s config.PlacementStrategy) func(*config.CoschedGangArgs) {
	return func(a *config.CoschedGangArgs) { a.PlacementStrategy = s }
}

// appAndLogCollector is the mission's example: App (1Gi) writes logs that
// LogCollector (0.5Gi) ships, so both must share a node. Each asks for it
// the way users do today, with required pod affinity to its own group, and
// App prefers node-a (say, for its disk), which has room for App alone.
func appAndLogCollector(ns string) []*v1.Pod {
	app := testutil.Pod(ns, "app", "app-with-logs", "100m", "1Gi")
	logs := testutil.Pod(ns, "log-collector", "app-with-logs", "100m", "512Mi")
	for _, p := range []*v1.Pod{app, logs} {
		p.Spec.Affinity = &v1.Affinity{PodAffinity: &v1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{podgroup.Label: "app-with-logs"}},
				TopologyKey:   v1.LabelHostname,
			}},
		}}
	}
	app.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{
		Weight:     100,
		Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "disk", Operator: v1.NodeSelectorOpIn, Values: []string{"ssd"}}}},
	}}}
	return []*v1.Pod{app, logs}
}

func appNodes() []*v1.Node {
	return []*v1.Node{
		testutil.Node("node-a", "4", "1280Mi", map[string]string{"disk": "ssd"}),
		testutil.Node("node-b", "4", "2Gi", nil),
	}
}

func TestAtomicPlacement(t *testing.T) {
	c := startCluster(t)

	t.Run("App and LogCollector land together on node-b on the first try", func(t *testing.T) {
		s := c.newScenario(t, appNodes(), strategy(config.PlacementAtomic))
		// The same arrival order as the member-by-member case below.
		names := s.createPods(appAndLogCollector(s.ns)...)
		s.expectNoneBound(names, time.Second)
		s.createGroup(testutil.PodGroup(s.ns, "app-with-logs", 2))
		placed := s.expectAllBound(names, bindTimeout)
		for name, node := range placed {
			if node != "node-b" {
				t.Errorf("%s landed on %s, want node-b", name, node)
			}
		}
		if evs, _ := testutil.EventsFor(s.ctx, s.cs, s.ns, "PodGroup", "app-with-logs"); len(evs) > 0 {
			for _, e := range evs {
				if strings.Contains(e, "GangRejected") {
					t.Errorf("the group was rejected before it landed; want the first try to succeed: %q", evs)
				}
			}
		}
	})

	t.Run("member by member, App takes node-a first and LogCollector cannot follow", func(t *testing.T) {
		s := c.newScenario(t, appNodes(), strategy(config.PlacementMemberByMember))
		// App is let into the queue first, as when both wait for their
		// PodGroup and App is the older (a missing PodGroup no longer holds
		// pods back, so scheduling gates set the order here).
		s.createGroup(testutil.PodGroup(s.ns, "app-with-logs", 2))
		pods := appAndLogCollector(s.ns)
		for _, p := range pods {
			gate(p)
		}
		names := s.createPods(pods...)
		ungate(s, "app")
		time.Sleep(200 * time.Millisecond)
		ungate(s, "log-collector")
		// The first attempt puts App on node-a and fails. The gang
		// semantics still hold: nothing binds half, whatever retries cost.
		s.expectEvent("app-with-logs", "member "+s.ns+"/log-collector found no node", bindTimeout)
		s.expectNeverPartial(names, holdFor)
	})

	t.Run("a gang that fits only one rack lands in that rack", func(t *testing.T) {
		var ns []*v1.Node
		for rack, cpu := range []string{"2", "2", "4"} {
			for i := 0; i < 2; i++ {
				ns = append(ns, testutil.Node(fmt.Sprintf("r%d-n%d", rack, i), cpu, "16Gi", map[string]string{rackLabel: fmt.Sprintf("rack-%d", rack)}))
			}
		}
		s := c.newScenario(t, ns, strategy(config.PlacementAtomic))
		pg := testutil.PodGroup(s.ns, "allreduce", 4)
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: rackLabel}
		s.createGroup(pg)
		names := s.createPods(s.members("allreduce", 4, "1500m", "1Gi")...)
		for name, node := range s.expectAllBound(names, bindTimeout) {
			if node != "r2-n0" && node != "r2-n1" {
				t.Errorf("%s landed on %s; only rack-2 holds the whole gang", name, node)
			}
		}
	})

	t.Run("racks: the tightest rack is used, leaving the big one for a big gang", func(t *testing.T) {
		var ns []*v1.Node
		for rack, cpu := range []string{"4", "8"} {
			for i := 0; i < 2; i++ {
				ns = append(ns, testutil.Node(fmt.Sprintf("t%d-n%d", rack, i), cpu, "16Gi", map[string]string{rackLabel: fmt.Sprintf("rack-%d", rack)}))
			}
		}
		s := c.newScenario(t, ns, strategy(config.PlacementAtomic))
		for _, g := range []struct {
			name    string
			members int
			cpu     string
		}{{"small", 4, "1500m"}, {"big", 4, "3500m"}} {
			pg := testutil.PodGroup(s.ns, g.name, int32(g.members))
			pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: rackLabel}
			s.createGroup(pg)
			names := s.createPods(s.members(g.name, g.members, g.cpu, "1Gi")...)
			placed := s.expectAllBound(names, bindTimeout)
			racks := map[string]bool{}
			for _, node := range placed {
				racks[node[:2]] = true
			}
			if len(racks) != 1 {
				t.Errorf("gang %s spans racks: %s", g.name, testutil.Describe(placed))
			}
		}
	})

	t.Run("a heterogeneous group is planned into one zone", func(t *testing.T) {
		var ns []*v1.Node
		for zone, mem := range []string{"4Gi", "16Gi"} {
			for i := 0; i < 2; i++ {
				ns = append(ns, testutil.Node(fmt.Sprintf("z%d-n%d", zone, i), "8", mem, map[string]string{v1.LabelTopologyZone: fmt.Sprintf("zone-%d", zone)}))
			}
		}
		s := c.newScenario(t, ns, strategy(config.PlacementAtomic))
		pg := testutil.PodGroup(s.ns, "ray", 3)
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: v1.LabelTopologyZone}
		s.createGroup(pg)
		names := s.createPods(
			testutil.Pod(s.ns, "ray-head", "ray", "2", "8Gi"),
			testutil.Pod(s.ns, "ray-worker-0", "ray", "1", "2Gi"),
			testutil.Pod(s.ns, "ray-worker-1", "ray", "1", "2Gi"),
		)
		for name, node := range s.expectAllBound(names, bindTimeout) {
			if node[:2] != "z1" {
				t.Errorf("%s landed on %s; only zone-1 has a node for the 8Gi head", name, node)
			}
		}
	})

	t.Run("no domain fits: the group holds nothing and waits for the cluster to change", func(t *testing.T) {
		s := c.newScenario(t, appNodes(), strategy(config.PlacementAtomic))
		pg := testutil.PodGroup(s.ns, "too-big", 2)
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: v1.LabelHostname}
		s.createGroup(pg)
		names := s.createPods(s.members("too-big", 2, "100m", "1536Mi")...)
		s.expectEvent("too-big", "no kubernetes.io/hostname", bindTimeout)
		s.expectNoneBound(names, 2*time.Second)
		// A node with room appears: the group must now land on it, whole.
		s.addNodes(testutil.Node("node-c", "4", "4Gi", nil))
		for name, node := range s.expectAllBound(names, bindTimeout) {
			if node != "node-c" {
				t.Errorf("%s landed on %s, want node-c", name, node)
			}
		}
	})

	// R2 of issue 12: the scheduler tries a pod's nominatedNodeName before
	// it narrows to PreFilter's result, so the plan must hold in Filter. A
	// nomination outside the plan (left from a preemption, or set by
	// another component) once put the member there, apart from its group.
	t.Run("a member nominated outside its plan still lands in the planned rack", func(t *testing.T) {
		var ns []*v1.Node
		for rack, cpu := range []string{"2", "8"} {
			for i := 0; i < 2; i++ {
				ns = append(ns, testutil.Node(fmt.Sprintf("p%d-n%d", rack, i), cpu, "16Gi", map[string]string{rackLabel: fmt.Sprintf("rack-%d", rack)}))
			}
		}
		s := c.newScenario(t, ns, strategy(config.PlacementAtomic))
		pg := testutil.PodGroup(s.ns, "allreduce", 2)
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: rackLabel}
		s.createGroup(pg)
		pods := s.members("allreduce", 2, "1500m", "1Gi")
		for _, p := range pods {
			gate(p)
		}
		names := s.createPods(pods...)
		// rack-0 is the tightest fit, so the plan puts both members there;
		// one member carries a nomination for a node of rack-1.
		nominated, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, names[1], metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nominated.Status.NominatedNodeName = "p1-n0"
		if _, err := s.cs.CoreV1().Pods(s.ns).UpdateStatus(s.ctx, nominated, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			ungate(s, name)
		}
		placed := s.expectAllBound(names, bindTimeout)
		for name, node := range placed {
			if !strings.HasPrefix(node, "p0-") {
				t.Errorf("%s landed on %s; the plan puts the group in rack-0 (%s)", name, node, testutil.Describe(placed))
			}
		}
	})
}
