package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseShape(t *testing.T) {
	for name, want := range map[string]shape{
		"5000Nodes_1000x3":           {nodes: 5000, groups: 1000, size: 3, base: "5000Nodes_1000x3"},
		"Node_5000Nodes_1000x3":      {domain: "Node", nodes: 5000, groups: 1000, size: 3, base: "5000Nodes_1000x3"},
		"RackPacked_500Nodes_100x10": {domain: "RackPacked", nodes: 500, groups: 100, size: 10, base: "500Nodes_100x10"},
	} {
		got, ok := parseShape(name)
		if !ok || got != want {
			t.Errorf("parseShape(%q) = %+v, %v; want %+v", name, got, ok, want)
		}
	}
	if _, ok := parseShape("Steady"); ok {
		t.Errorf("parseShape accepted a name without a shape")
	}
}

func writeItems(t *testing.T, path string, items []dataItem) {
	t.Helper()
	data, err := json.Marshal(dataItems{Version: "v1", DataItems: items})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func throughput(name string, avg float64) dataItem {
	return dataItem{Unit: "pods/s", Labels: map[string]string{"Name": "BenchmarkPerfScheduling/" + name + "/ns", "Metric": "SchedulingThroughput"},
		Data: map[string]float64{"Average": avg, "Perc50": avg}}
}

func heap(name string, max float64) dataItem {
	return dataItem{Unit: "MB", Labels: map[string]string{"Name": "BenchmarkPerfScheduling/" + name + "/ns", "Metric": "heap_memory_usage"},
		Data: map[string]float64{"Max": max, "Average": max / 2}}
}

func own(name string, pods, bound, seconds, groups, completed float64) []dataItem {
	return []dataItem{
		{Labels: map[string]string{"Name": name, "Metric": "cosched:AllBound"}, Data: map[string]float64{"Pods": pods, "Bound": bound, "Duration": seconds}},
		{Labels: map[string]string{"Name": name, "Metric": "cosched:Groups"}, Data: map[string]float64{"Total": groups, "Completed": completed}},
		{Labels: map[string]string{"Name": name, "Metric": "cosched:Counters"}, Data: map[string]float64{"attempts_scheduled": pods}},
	}
}

func TestTargetsFromOneRun(t *testing.T) {
	dir := t.TempDir()
	writeItems(t, filepath.Join(dir, "BenchmarkPerfScheduling_benchmark_cosched_2026-01-01T00:00:00Z.json"), []dataItem{
		throughput("PlainPods/5000Nodes_1000x3", 200),
		throughput("CoschedGang/5000Nodes_1000x3", 190),
		throughput("InTreeGang/5000Nodes_1000x3", 100),
		throughput("CoschedGangNoWaitNomination/5000Nodes_1000x3", 170),
		throughput("ColocationAtomic/Node_5000Nodes_1000x3", 140),
		throughput("PlainPods/5000Nodes_3x1000", 300),
		throughput("CoschedGang/5000Nodes_3x1000", 250),
		heap("PlainPods/5000Nodes_1000x3", 100),
		heap("CoschedGang/5000Nodes_1000x3", 105),
		throughput("PlainPods/5000Nodes_3000x3", 200),
		throughput("CoschedGang/5000Nodes_3000x3", 150),
		heap("PlainPods/5000Nodes_3000x3", 100),
		heap("CoschedGang/5000Nodes_3000x3", 108),
	})
	files := map[string][]dataItem{
		"PlainPods/5000Nodes_3x1000":   own("PlainPods/5000Nodes_3x1000", 3000, 3000, 10, 0, 0),
		"CoschedGang/5000Nodes_3x1000": own("CoschedGang/5000Nodes_3x1000", 3000, 3000, 12, 3, 3),
		"Contention/500Nodes_300x8":    own("Contention/500Nodes_300x8", 3400, 3300, 30, 300, 299),
	}
	for name, items := range files {
		writeItems(t, filepath.Join(dir, "cosched_"+strings.ReplaceAll(name, "/", "_")+".json"), items)
	}
	r, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tg := range r.targets() {
		got[tg.goal] = tg.measured + " " + tg.met
	}
	for goal, want := range map[string]string{
		"5000Nodes_1000x3: cosched gang throughput >= 0.9 x plain pods":                                 "0.95 yes",
		"5000Nodes_1000x3: cosched gang throughput >= 1.2 x in-tree gang":                               "1.90 yes",
		"5000Nodes_1000x3: (diagnostic, nominations off) cosched gang throughput >= 0.9 x plain pods":   "0.85 no",
		"5000Nodes_1000x3: (diagnostic, nominations off) cosched gang throughput >= 1.2 x in-tree gang": "1.70 yes",
		"5000Nodes_1000x3: peak heap <= 1.1 x plain pods":                                               "1.05 yes",
		"5000Nodes_3000x3: cosched/plain throughput within 0.05 of 5000Nodes_1000x3's":                  "0.75 vs 0.95 no",
		"5000Nodes_3000x3: cosched/plain peak heap within 0.05 of 5000Nodes_1000x3's":                   "1.08 vs 1.05 yes",
		"5000Nodes_3x1000: every gang fully bound":                                                      "3/3 groups yes",
		"5000Nodes_3x1000: time until all bound <= 1.0 x plain pods":                                    "1.20 no",
		"5000Nodes_3x1000: peak heap <= 1.1 x plain pods":                                               "n/a not measured",
		"Node_5000Nodes_1000x3: co-location by pod affinity >= 0.8 x plain gangs (5000Nodes_1000x3)":    "0.74 no",
		"500Nodes_300x8: zero deadlocks (every group completes, none left partially bound)":             "299/300 groups, await never finished no",
	} {
		if got[goal] != want {
			t.Errorf("target %q: got %q, want %q", goal, got[goal], want)
		}
	}
	md := renderMarkdown(r)
	for _, want := range []string{"| 5000Nodes_1000x3 | n/a | 0.95 | 0.50 | 1.90 |", "## Contention"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if svg := renderSVG(r); !strings.Contains(svg, "<svg") || !strings.Contains(svg, "0.95") {
		t.Errorf("plot lacks the cosched bar:\n%s", svg)
	}
}

func TestRefusesTwoRuns(t *testing.T) {
	dir := t.TempDir()
	for _, stamp := range []string{"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"} {
		writeItems(t, filepath.Join(dir, "BenchmarkPerfScheduling_benchmark_cosched_"+stamp+".json"), nil)
	}
	if _, err := load(dir); err == nil || !strings.Contains(err.Error(), "one run") {
		t.Fatalf("load of a folder with two runs: err = %v, want a refusal", err)
	}
}

// oneRun writes a run where cosched's gangs reach gang/plain of plain pods'
// throughput.
func oneRun(t *testing.T, gang float64) string {
	t.Helper()
	dir := t.TempDir()
	writeItems(t, filepath.Join(dir, "BenchmarkPerfScheduling_benchmark_cosched_2026-01-01T00:00:00Z.json"), []dataItem{
		throughput("PlainPods/5000Nodes_1000x3", 100),
		throughput("CoschedGang/5000Nodes_1000x3", gang),
	})
	counters := own("CoschedGang/5000Nodes_1000x3", 3000, 3000, 10, 1000, 1000)
	counters[2].Data["writes_POST_pods"] = 3000
	counters[2].Data["writes_POST_pods/binding"] = 3000
	counters[2].Data["writes_PATCH_pods/status"] = 2000
	writeItems(t, filepath.Join(dir, "cosched_CoschedGang_5000Nodes_1000x3.json"), counters)
	return dir
}

func TestMedianOfRuns(t *testing.T) {
	var runs []*run
	var dirs []string
	for _, gang := range []float64{95, 80, 91} {
		dir := oneRun(t, gang)
		r, err := load(dir)
		if err != nil {
			t.Fatal(err)
		}
		runs, dirs = append(runs, r), append(dirs, dir)
	}
	goals, perRun, median := medianTargets(runs)
	const goal = "5000Nodes_1000x3: cosched gang throughput >= 0.9 x plain pods"
	if len(goals) == 0 || goals[0] != goal {
		t.Fatalf("goals = %q, want %q first", goals, goal)
	}
	if got := perRun[1][goal].measured; got != "0.80" {
		t.Errorf("run 2 measured %q, want 0.80", got)
	}
	if got := median[goal]; got.measured != "0.91" || got.met != "yes" {
		t.Errorf("median = %q %q, want 0.91 yes", got.measured, got.met)
	}
	const inTree = "5000Nodes_1000x3: cosched gang throughput >= 1.2 x in-tree gang"
	if got := median[inTree]; got.met != "not measured" {
		t.Errorf("in-tree target without in-tree runs: %q, want not measured", got.met)
	}
	summary := renderSummary(runs, dirs)
	if !strings.Contains(summary, "| "+goal+" | 0.95 | 0.80 | 0.91 | 0.91 | yes |") {
		t.Errorf("summary lacks the per-run row:\n%s", summary)
	}
	md := renderMarkdown(runs[0])
	if !strings.Contains(md, "| CoschedGang/5000Nodes_1000x3 | 1.00 | 0.67 |") {
		t.Errorf("cost table lacks writes per pod:\n%s", md)
	}
}
