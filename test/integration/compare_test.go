package integration

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/metrics/legacyregistry"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// The strategy comparison (make compare): the same workloads under pod-atomic
// placement and under member-by-member placement with affinity to the group,
// against a real API server. COSCHED_COMPARE_SCALE multiplies the workloads
// (1 in make test, more in make compare); COSCHED_COMPARE_OUT, when set,
// receives the table as markdown.

type groupSpec struct {
	pg   *schedv1alpha1.PodGroup
	pods []*v1.Pod
}

type workload struct {
	name   string
	nodes  []*v1.Node
	groups func(ns string) []groupSpec
	// feasible: every group can be placed at once, so a strategy that leaves
	// one stuck has failed, not the cluster.
	feasible bool
	window   time.Duration
}

type outcome struct {
	workload, strategy string
	groups, placed     int
	partial            int
	medianPlace        time.Duration
	maxPlace           time.Duration
	rejections         float64
	heldCPU, heldMem   float64
}

func TestCompareStrategies(t *testing.T) {
	scale := 1
	if v := os.Getenv("COSCHED_COMPARE_SCALE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("COSCHED_COMPARE_SCALE=%q: want a positive integer", v)
		}
		scale = n
	}
	c := startCluster(t)
	var results []outcome
	for _, w := range compareWorkloads(scale) {
		for _, s := range []config.PlacementStrategy{config.PlacementAtomic, config.PlacementMemberByMember} {
			t.Run(w.name+"/"+string(s), func(t *testing.T) {
				o := runWorkload(t, c, w, s)
				results = append(results, o)
				if o.partial > 0 {
					t.Errorf("%d group(s) ended partially bound", o.partial)
				}
				if s == config.PlacementAtomic && w.feasible && o.placed != o.groups {
					t.Errorf("atomic placement left %d of %d groups stuck where every group fits", o.groups-o.placed, o.groups)
				}
			})
		}
	}
	table := compareTable(results, scale)
	t.Logf("\n%s", table)
	if out := os.Getenv("COSCHED_COMPARE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// compareWorkloads are the four shapes.
func compareWorkloads(scale int) []workload {
	affinity := func(group, topologyKey string) *v1.Affinity {
		return &v1.Affinity{PodAffinity: &v1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{podgroup.Label: group}},
			TopologyKey:   topologyKey,
		}}}}
	}
	member := func(ns, name, group, cpu, mem, topologyKey string) *v1.Pod {
		p := testutil.Pod(ns, name, group, cpu, mem)
		p.Spec.Affinity = affinity(group, topologyKey)
		return p
	}
	preferSSD := func(p *v1.Pod) *v1.Pod {
		p.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{
			Weight:     100,
			Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "disk", Operator: v1.NodeSelectorOpIn, Values: []string{"ssd"}}}},
		}}}
		return p
	}
	pairs := func(n int) func(ns string) []groupSpec {
		return func(ns string) []groupSpec {
			var out []groupSpec
			for i := 0; i < n; i++ {
				g := fmt.Sprintf("pair-%d", i)
				out = append(out, groupSpec{pg: testutil.PodGroup(ns, g, 2), pods: []*v1.Pod{
					preferSSD(member(ns, g+"-app", g, "100m", "1Gi", v1.LabelHostname)),
					member(ns, g+"-logs", g, "100m", "512Mi", v1.LabelHostname),
				}})
			}
			return out
		}
	}
	pairNodes := func(n int) []*v1.Node {
		var out []*v1.Node
		for i := 0; i < n; i++ {
			out = append(out,
				testutil.Node(fmt.Sprintf("a-%d", i), "4", "1280Mi", map[string]string{"disk": "ssd"}),
				testutil.Node(fmt.Sprintf("b-%d", i), "4", "2Gi", nil))
		}
		return out
	}
	// Racks and zones come in pairs, a small and a big one, with one
	// group that fits either and, created after it, one that fits only the
	// big one: placing the first where it fits tightest is what leaves room
	// for the second.
	var rackNodes, zoneNodes []*v1.Node
	for p := 0; p < scale; p++ {
		for i, cpu := range []string{"4", "4", "8", "8"} {
			rack := fmt.Sprintf("rack-%d", 2*p+i/2)
			rackNodes = append(rackNodes, testutil.Node(fmt.Sprintf("r%d-n%d", 2*p+i/2, i%2), cpu, "16Gi", map[string]string{rackLabel: rack}))
		}
		for i, mem := range []string{"8Gi", "8Gi", "16Gi", "16Gi"} {
			zone := fmt.Sprintf("zone-%d", 2*p+i/2)
			zoneNodes = append(zoneNodes, testutil.Node(fmt.Sprintf("z%d-n%d", 2*p+i/2, i%2), "4", mem, map[string]string{v1.LabelTopologyZone: zone}))
		}
	}
	gang := func(ns, name string, n int, cpu, mem, topologyKey string) groupSpec {
		var pods []*v1.Pod
		for i := 0; i < n; i++ {
			pods = append(pods, member(ns, fmt.Sprintf("%s-%d", name, i), name, cpu, mem, topologyKey))
		}
		return groupSpec{pg: testutil.PodGroup(ns, name, int32(n)), pods: pods}
	}
	rayGroup := func(ns, name, headMem string) groupSpec {
		g := gang(ns, name+"-worker", 3, "1", "1Gi", v1.LabelTopologyZone)
		head := member(ns, name+"-head", name, "2", headMem, v1.LabelTopologyZone)
		for _, p := range g.pods {
			p.Labels[podgroup.Label] = name
			p.Spec.Affinity = affinity(name, v1.LabelTopologyZone)
		}
		return groupSpec{pg: testutil.PodGroup(ns, name, 4), pods: append([]*v1.Pod{head}, g.pods...)}
	}
	return []workload{
		{name: "app+logcollector", nodes: appNodes(), groups: pairs(1), feasible: true, window: 15 * time.Second},
		{name: fmt.Sprintf("%d tight pairs", 4*scale), nodes: pairNodes(4 * scale), groups: pairs(4 * scale), feasible: true, window: 20 * time.Second},
		{name: fmt.Sprintf("%d gangs, one rack each", 2*scale), nodes: rackNodes, feasible: true, window: 20 * time.Second,
			groups: func(ns string) []groupSpec {
				var out []groupSpec
				for p := 0; p < scale; p++ {
					out = append(out,
						gang(ns, fmt.Sprintf("small-%d", p), 4, "1500m", "1Gi", rackLabel),
						gang(ns, fmt.Sprintf("big-%d", p), 4, "3500m", "1Gi", rackLabel))
				}
				return out
			}},
		{name: fmt.Sprintf("%d heterogeneous groups, one zone each", 2*scale), nodes: zoneNodes, feasible: true, window: 20 * time.Second,
			groups: func(ns string) []groupSpec {
				var out []groupSpec
				for p := 0; p < scale; p++ {
					out = append(out, rayGroup(ns, fmt.Sprintf("flex-%d", p), "2Gi"), rayGroup(ns, fmt.Sprintf("bigmem-%d", p), "12Gi"))
				}
				return out
			}},
	}
}

// runWorkload creates every member first and then the PodGroups, so all
// groups enter the queue together, and watches until every group is bound
// or the window ends.
func runWorkload(t *testing.T, c *cluster, w workload, s config.PlacementStrategy) outcome {
	sc := c.newScenario(t, w.nodes, strategy(s))
	groups := w.groups(sc.ns)
	before := gangCounters(t)
	for _, g := range groups {
		sc.createPods(g.pods...)
	}
	start := time.Now()
	for _, g := range groups {
		sc.createGroup(g.pg)
	}
	placedAt := map[string]time.Duration{}
	deadline := start.Add(w.window)
	var last map[string]map[string]string
	for time.Now().Before(deadline) && len(placedAt) < len(groups) {
		last = map[string]map[string]string{}
		for _, g := range groups {
			if _, done := placedAt[g.pg.Name]; done {
				continue
			}
			nodes, err := testutil.BoundNodes(sc.ctx, sc.cs, sc.ns, testutil.Names(g.pods))
			if err != nil {
				t.Fatal(err)
			}
			last[g.pg.Name] = nodes
			if testutil.CountBound(nodes) == len(g.pods) {
				placedAt[g.pg.Name] = time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Members allowed together may still be binding; give them a moment
	// before calling a group partial.
	time.Sleep(2 * time.Second)
	o := outcome{workload: w.name, strategy: string(s), groups: len(groups), placed: len(placedAt)}
	for _, g := range groups {
		if _, done := placedAt[g.pg.Name]; done {
			continue
		}
		nodes, err := testutil.BoundNodes(sc.ctx, sc.cs, sc.ns, testutil.Names(g.pods))
		if err != nil {
			t.Fatal(err)
		}
		if n := testutil.CountBound(nodes); n == len(g.pods) {
			o.placed++
			placedAt[g.pg.Name] = w.window
		} else if n > 0 {
			o.partial++
			t.Logf("group %s partially bound: %s", g.pg.Name, testutil.Describe(nodes))
		}
	}
	var times []time.Duration
	for _, d := range placedAt {
		times = append(times, d)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	if len(times) > 0 {
		o.medianPlace, o.maxPlace = times[len(times)/2], times[len(times)-1]
	}
	after := gangCounters(t)
	o.rejections = after["rejections"] - before["rejections"]
	o.heldCPU = after["cpu"] - before["cpu"]
	o.heldMem = after["memory"] - before["memory"]
	return o
}

// gangCounters reads the plugin's counters from the in-process registry:
// whole-group rejections and the resources that rejected members held while
// they waited.
func gangCounters(t *testing.T) map[string]float64 {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	names := map[string]string{
		"cosched_gang_rejections_total":                               "rejections",
		"cosched_gang_released_reservation_cpu_seconds_total":         "cpu",
		"cosched_gang_released_reservation_memory_byte_seconds_total": "memory",
	}
	for _, mf := range families {
		key, ok := names[mf.GetName()]
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[key] += m.GetCounter().GetValue()
		}
	}
	return out
}

func compareTable(results []outcome, scale int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Placement strategies compared (scale %d, one run, one machine; times from PodGroup creation to the last member bound)\n\n", scale)
	b.WriteString("| workload | strategy | groups placed | groups stuck | partially bound | median time to place | max time to place | whole-group rejections | held by rejected members (CPU·s / GiB·s) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, o := range results {
		fmt.Fprintf(&b, "| %s | %s | %d/%d | %d | %d | %s | %s | %.0f | %.2f / %.2f |\n",
			o.workload, o.strategy, o.placed, o.groups, o.groups-o.placed-o.partial, o.partial,
			o.medianPlace.Round(10*time.Millisecond), o.maxPlace.Round(10*time.Millisecond),
			o.rejections, o.heldCPU, o.heldMem/float64(1<<30))
	}
	return b.String()
}
