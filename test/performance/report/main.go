// Command report turns one run of cosched's scheduler_perf benchmark
// (test/performance) into a markdown report and a plot.
//
//	go run ./test/performance/report -in _output/bench
//
// It reads what the run wrote to its -data-items-dir: the harness's
// BenchmarkPerfScheduling_benchmark_cosched_*.json, the benchmark's own
// cosched_*.json and machine.txt (written by hack/bench.sh), and writes
// results.md and throughput.svg next to them. Every ratio it prints divides
// two numbers of that one run; a folder holding more than one run is
// refused, so that no figure mixes runs.
//
// Given several runs of one commit (-in a,b,c), it writes summary.md: each
// target's ratio in every run and their median, on which it is judged.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

func main() {
	in := flag.String("in", "", "the run's -data-items-dir; several runs of one commit as a comma-separated list")
	out := flag.String("out", "", "where results.md and throughput.svg (one run) or summary.md (several) go (default: the first -in)")
	targetsOnly := flag.Bool("targets", false, "print only the target table (results.md still holds everything)")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "report: -in is required")
		os.Exit(2)
	}
	dirs := strings.Split(*in, ",")
	if *out == "" {
		*out = dirs[0]
	}
	if err := report(dirs, *out, *targetsOnly); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
}

func report(dirs []string, out string, targetsOnly bool) error {
	runs := make([]*run, len(dirs))
	for i, dir := range dirs {
		r, err := load(dir)
		if err != nil {
			return err
		}
		runs[i] = r
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if len(runs) > 1 {
		summary := renderSummary(runs, dirs)
		fmt.Print(summary)
		return os.WriteFile(filepath.Join(out, "summary.md"), []byte(summary), 0o644)
	}
	text := renderMarkdown(runs[0])
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(text), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "throughput.svg"), []byte(renderSVG(runs[0])), 0o644); err != nil {
		return err
	}
	if targetsOnly {
		var m md
		runs[0].targetTable(&m)
		text = m.b.String()
	}
	fmt.Print(text)
	return nil
}

// Test case names in performance-config.yaml.
const (
	tcPlain          = "PlainPods"
	tcPlainCosched   = "PlainPodsCosched"
	tcGang           = "CoschedGang"
	tcInTree         = "InTreeGang"
	tcAtomic         = "ColocationAtomic"
	tcAnnotated      = "ColocationAnnotated"
	tcMemberByMember = "ColocationMemberByMember"
	tcContention     = "Contention"
	tcNoWaitNNN      = "CoschedGangNoWaitNomination"
	tcPlainBatching  = "PlainPodsBatching"
	tcGangBatching   = "CoschedGangBatching"
)

type dataItem struct {
	Data   map[string]float64 `json:"data"`
	Unit   string             `json:"unit"`
	Labels map[string]string  `json:"labels"`
}

type dataItems struct {
	Version   string     `json:"version"`
	DataItems []dataItem `json:"dataItems"`
}

// workload is everything measured for one test case's workload.
type workload struct {
	testCase, name string
	// harness: the harness reported it (it did not fail before its end).
	harness bool
	// tracked: the benchmark's own tracker wrote its results.
	tracked     bool
	throughput  map[string]float64
	duration    float64
	allBound    map[string]float64
	allComplete *float64
	groups      map[string]float64
	counters    map[string]float64
	// histograms by "<metric>|<label values>", in milliseconds.
	histograms map[string]map[string]float64
	// heap is the harness's heap_memory_usage of the process (API server,
	// scheduler and harness together), in MB.
	heap map[string]float64
}

func (w *workload) key() string { return w.testCase + "/" + w.name }

type run struct {
	machine   [][2]string
	workloads map[string]*workload
	// order keeps workloads in the order of the config (test case, then
	// workload), as far as the files show it.
	order []string
}

func (r *run) get(testCase, name string) *workload {
	return r.workloads[testCase+"/"+name]
}

func (r *run) workload(key string) *workload {
	if w, ok := r.workloads[key]; ok {
		return w
	}
	tc, name, _ := strings.Cut(key, "/")
	w := &workload{testCase: tc, name: name, histograms: map[string]map[string]float64{}}
	r.workloads[key] = w
	r.order = append(r.order, key)
	return w
}

func load(dir string) (*run, error) {
	r := &run{workloads: map[string]*workload{}}
	harnessFiles, err := filepath.Glob(filepath.Join(dir, "BenchmarkPerfScheduling*_benchmark_cosched_*.json"))
	if err != nil {
		return nil, err
	}
	switch len(harnessFiles) {
	case 0:
		return nil, fmt.Errorf("no BenchmarkPerfScheduling_benchmark_cosched_*.json in %s: did the benchmark run?", dir)
	case 1:
	default:
		return nil, fmt.Errorf("%s holds %d runs (%s); ratios must come from one run: give each run its own folder", dir, len(harnessFiles), strings.Join(harnessFiles, ", "))
	}
	var h dataItems
	if err := readJSON(harnessFiles[0], &h); err != nil {
		return nil, err
	}
	for _, item := range h.DataItems {
		key := harnessKey(item.Labels["Name"])
		if key == "" {
			continue
		}
		w := r.workload(key)
		w.harness = true
		metric := item.Labels["Metric"]
		switch {
		case len(item.Data) == 0:
		case metric == "SchedulingThroughput":
			w.throughput = item.Data
		case metric == "SchedulingDuration":
			w.duration = item.Data["Duration"]
		case metric == "heap_memory_usage":
			w.heap = item.Data
		case item.Unit == "ms":
			w.histograms[histogramKey(metric, item.Labels)] = item.Data
		}
	}
	ownFiles, err := filepath.Glob(filepath.Join(dir, "cosched_*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range ownFiles {
		var own dataItems
		if err := readJSON(f, &own); err != nil {
			return nil, err
		}
		for _, item := range own.DataItems {
			w := r.workload(item.Labels["Name"])
			w.tracked = true
			switch item.Labels["Metric"] {
			case "cosched:AllBound":
				w.allBound = item.Data
			case "cosched:AllComplete":
				d := item.Data["Duration"]
				w.allComplete = &d
			case "cosched:Groups":
				w.groups = item.Data
			case "cosched:Counters":
				w.counters = item.Data
			}
		}
	}
	r.machine = readMachine(filepath.Join(dir, "machine.txt"))
	return r, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// harnessKey turns the harness's Name label,
// BenchmarkPerfScheduling/<test case>/<workload>/<namespace>, into
// <test case>/<workload>.
func harnessKey(name string) string {
	parts := strings.Split(name, "/")
	if len(parts) < 4 {
		return ""
	}
	return parts[1] + "/" + parts[2]
}

func histogramKey(metric string, labels map[string]string) string {
	var vals []string
	for _, l := range []string{"result", "extension_point", "plugin"} {
		if v, ok := labels[l]; ok && v != "not applicable" {
			vals = append(vals, v)
		}
	}
	return metric + "|" + strings.Join(vals, ",")
}

// readMachine reads "key: value" lines; a missing file is no error.
func readMachine(path string) [][2]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" {
			continue
		}
		out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

// shape is a workload name split into its parts:
// [<Node|Rack|RackPacked>_]<nodes>Nodes_<groups>x<size>.
type shape struct {
	domain              string
	nodes, groups, size int
	// base is the name without the domain prefix: the plain-gang workload
	// of the same nodes and pods.
	base string
}

var shapeRE = regexp.MustCompile(`^(?:([A-Za-z]+)_)?(\d+)Nodes_(\d+)x(\d+)$`)

func parseShape(name string) (shape, bool) {
	m := shapeRE.FindStringSubmatch(name)
	if m == nil {
		return shape{}, false
	}
	var s shape
	s.domain = m[1]
	fmt.Sscan(m[2], &s.nodes)
	fmt.Sscan(m[3], &s.groups)
	fmt.Sscan(m[4], &s.size)
	s.base = strings.TrimPrefix(name, s.domain+"_")
	return s, true
}

// avg is the workload's average throughput, or 0 when it was not measured
// (too short a workload, or a failed one).
func (w *workload) avg() float64 {
	if w == nil || w.throughput == nil {
		return 0
	}
	return w.throughput["Average"]
}

func (w *workload) boundSeconds() float64 {
	if w == nil || w.allBound == nil || w.allBound["Pods"] == 0 || w.allBound["Bound"] < w.allBound["Pods"] {
		return 0
	}
	return w.allBound["Duration"]
}

func (w *workload) completed() (done, total float64, ok bool) {
	if w == nil || w.groups == nil {
		return 0, 0, false
	}
	return w.groups["Completed"], w.groups["Total"], true
}

func ratio(num, den float64) (float64, bool) {
	if num <= 0 || den <= 0 {
		return 0, false
	}
	return num / den, true
}

func fmtRatio(num, den float64) string {
	r, ok := ratio(num, den)
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", r)
}

// target is one of the goals, checked on this run.
type target struct {
	goal, measured string
	// met is "yes", "no" or "not measured".
	met string
	// value is the measured ratio (or fraction of groups completed), and
	// pass says whether a value meets the goal: several runs are judged on
	// their median.
	value float64
	pass  func(float64) bool
}

func verdict(ok, measured bool) string {
	switch {
	case !measured:
		return "not measured"
	case ok:
		return "yes"
	default:
		return "no"
	}
}

func (r *run) names(testCase string) []string {
	var out []string
	for _, k := range r.order {
		if w := r.workloads[k]; w.testCase == testCase {
			out = append(out, w.name)
		}
	}
	return out
}

func atLeast(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }
func atMost(max float64) func(float64) bool  { return func(v float64) bool { return v <= max } }

// ratioTarget checks num/den against pass.
func ratioTarget(goal string, num, den float64, pass func(float64) bool) target {
	v, m := ratio(num, den)
	return target{goal: goal, measured: fmtRatio(num, den), met: verdict(m && pass(v), m), value: v, pass: pass}
}

// heapMax is the peak heap in use of the workload's process, 0 if unknown.
func (w *workload) heapMax() float64 {
	if w == nil || w.heap == nil {
		return 0
	}
	return w.heap["Max"]
}

func (r *run) targets() []target {
	var ts []target
	for _, name := range r.names(tcGang) {
		s, ok := parseShape(name)
		if !ok || s.domain != "" {
			continue
		}
		gang, plain := r.get(tcGang, name), r.get(tcPlain, name)
		switch {
		case s.size <= 3:
			inTree := r.get(tcInTree, name)
			throughput := func(prefix string, w *workload) []target {
				return []target{
					ratioTarget(prefix+"cosched gang throughput >= 0.9 x plain pods", w.avg(), plain.avg(), atLeast(0.9)),
					ratioTarget(prefix+"cosched gang throughput >= 1.2 x in-tree gang", w.avg(), inTree.avg(), atLeast(1.2)),
				}
			}
			ts = append(ts, throughput(name+": ", gang)...)
			// The same without the nomination writes of waiting members:
			// the shipped profile keeps them, so these rows are a
			// diagnostic, not targets.
			if noNNN := r.get(tcNoWaitNNN, name); noNNN != nil {
				ts = append(ts, throughput(name+": (diagnostic, nominations off) ", noNNN)...)
			}
		case s.size >= 100:
			done, total, ok := gang.completed()
			frac, _ := ratio(done, total)
			ts = append(ts, target{
				goal:     name + ": every gang fully bound",
				measured: completion(done, total, ok),
				met:      verdict(ok && total > 0 && done == total, ok),
				value:    frac,
				pass:     atLeast(1),
			}, ratioTarget(name+": time until all bound <= 1.0 x plain pods", gang.boundSeconds(), plain.boundSeconds(), atMost(1)))
		default:
			continue
		}
		ts = append(ts, ratioTarget(name+": peak heap <= 1.1 x plain pods", gang.heapMax(), plain.heapMax(), atMost(1.1)))
	}
	ts = append(ts, r.flatInGroups()...)
	for _, name := range r.names(tcAtomic) {
		s, ok := parseShape(name)
		if !ok || (s.domain != "Node" && s.domain != "Rack") {
			continue
		}
		atomic, gang := r.get(tcAtomic, name), r.get(tcGang, s.base)
		if gang == nil {
			continue
		}
		ts = append(ts, ratioTarget(fmt.Sprintf("%s: co-location by pod affinity >= 0.8 x plain gangs (%s)", name, s.base),
			atomic.avg(), gang.avg(), atLeast(0.8)))
	}
	for _, name := range r.names(tcContention) {
		w := r.get(tcContention, name)
		done, total, ok := w.completed()
		complete := ok && total > 0 && done == total && w.allComplete != nil && w.groups["PartiallyBound"] == 0
		measured := completion(done, total, ok)
		if w.allComplete == nil {
			measured += ", await never finished"
		}
		value := 0.0
		if complete {
			value = 1
		}
		ts = append(ts, target{
			goal:     fmt.Sprintf("%s: zero deadlocks (every group completes, none left partially bound)", name),
			measured: measured,
			met:      verdict(complete, w.tracked),
			value:    value,
			pass:     atLeast(1),
		})
	}
	return ts
}

// flatInGroups holds cosched's cost flat in the number of groups it has
// seen: a small-gang shape with more groups of the same size on the same
// nodes keeps the throughput and heap ratios to plain pods of the shape with
// the fewest groups, within 0.05 (it may do better).
func (r *run) flatInGroups() []target {
	fewest := map[[2]int]shape{}
	for _, name := range r.names(tcGang) {
		if s, ok := parseShape(name); ok && s.domain == "" && s.size <= 3 {
			if f, seen := fewest[[2]int{s.nodes, s.size}]; !seen || s.groups < f.groups {
				fewest[[2]int{s.nodes, s.size}] = s
			}
		}
	}
	var ts []target
	for _, name := range r.names(tcGang) {
		s, ok := parseShape(name)
		base, found := fewest[[2]int{s.nodes, s.size}]
		if !ok || s.domain != "" || s.size > 3 || !found || base.groups == s.groups {
			continue
		}
		more, few := r.get(tcGang, name), r.get(tcGang, base.base)
		morePlain, fewPlain := r.get(tcPlain, name), r.get(tcPlain, base.base)
		ts = append(ts,
			dropTarget(fmt.Sprintf("%s: cosched/plain throughput within 0.05 of %s's", name, base.base), few.avg(), fewPlain.avg(), more.avg(), morePlain.avg(), 1),
			dropTarget(fmt.Sprintf("%s: cosched/plain peak heap within 0.05 of %s's", name, base.base), few.heapMax(), fewPlain.heapMax(), more.heapMax(), morePlain.heapMax(), -1))
	}
	return ts
}

// dropTarget compares two ratios, base = baseNum/baseDen and now =
// num/den: it passes when now is worse than base by at most 0.05, worse
// meaning lower for sign 1 (throughput) and higher for sign -1 (heap).
func dropTarget(goal string, baseNum, baseDen, num, den float64, sign float64) target {
	b, okBase := ratio(baseNum, baseDen)
	n, okNow := ratio(num, den)
	measured := okBase && okNow
	drop := sign * (b - n)
	t := target{goal: goal, value: drop, pass: atMost(0.05), met: verdict(measured && drop <= 0.05, measured), measured: "n/a"}
	if measured {
		t.measured = fmt.Sprintf("%.2f vs %.2f", n, b)
	}
	return t
}

// medianTargets judges each target on the median of its values over runs;
// a run that did not measure a target is left out of its median.
func medianTargets(runs []*run) (goals []string, perRun []map[string]target, median map[string]target) {
	perRun = make([]map[string]target, len(runs))
	median = map[string]target{}
	values := map[string][]float64{}
	for i, r := range runs {
		perRun[i] = map[string]target{}
		for _, t := range r.targets() {
			if _, seen := values[t.goal]; !seen {
				goals = append(goals, t.goal)
				values[t.goal] = nil
			}
			perRun[i][t.goal] = t
			if t.met != "not measured" {
				values[t.goal] = append(values[t.goal], t.value)
			}
			median[t.goal] = target{goal: t.goal, pass: t.pass}
		}
	}
	for goal, vs := range values {
		t := median[goal]
		if len(vs) == 0 {
			t.measured, t.met = "n/a", "not measured"
		} else {
			sort.Float64s(vs)
			t.value = vs[len(vs)/2]
			if len(vs)%2 == 0 {
				t.value = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
			}
			t.measured = fmt.Sprintf("%.2f", t.value)
			t.met = verdict(t.pass(t.value), true)
			if len(vs) < len(runs) {
				t.measured += fmt.Sprintf(" (%d of %d runs)", len(vs), len(runs))
			}
		}
		median[goal] = t
	}
	return goals, perRun, median
}

// renderSummary is the target table over several runs of the same commit.
func renderSummary(runs []*run, dirs []string) string {
	var m md
	m.line("# cosched scheduler_perf targets over %d runs", len(runs))
	m.line("")
	m.line("Each ratio divides two workloads of the same run; a target is judged on the median of its runs.")
	m.line("")
	for i, r := range runs {
		var facts []string
		for _, kv := range r.machine {
			switch kv[0] {
			case "date", "commit", "load average at start (1/5/15 min)", "load average at end (1/5/15 min)":
				facts = append(facts, kv[0]+" "+kv[1])
			}
		}
		m.line("- run %d: %s (%s)", i+1, dirs[i], strings.Join(facts, "; "))
	}
	m.line("")
	goals, perRun, median := medianTargets(runs)
	header := []string{"target"}
	for i := range runs {
		header = append(header, fmt.Sprintf("run %d", i+1))
	}
	header = append(header, "median", "met")
	var rows [][]string
	for _, goal := range goals {
		row := []string{goal}
		for i := range runs {
			t, ok := perRun[i][goal]
			if !ok {
				row = append(row, "n/a")
				continue
			}
			row = append(row, t.measured)
		}
		row = append(row, median[goal].measured, median[goal].met)
		rows = append(rows, row)
	}
	m.table(header, rows)
	return m.b.String()
}

func completion(done, total float64, ok bool) string {
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.0f/%.0f groups", done, total)
}

// md builds a markdown table.
type md struct {
	b strings.Builder
}

func (m *md) line(format string, args ...any) { fmt.Fprintf(&m.b, format+"\n", args...) }

func (m *md) table(header []string, rows [][]string) {
	m.line("| %s |", strings.Join(header, " | "))
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
	}
	m.line("| %s |", strings.Join(seps, " | "))
	for _, row := range rows {
		m.line("| %s |", strings.Join(row, " | "))
	}
	m.line("")
}

func renderMarkdown(r *run) string {
	var m md
	m.line("# cosched scheduler_perf results")
	m.line("")
	m.line("Every figure below comes from one run of `test/performance`; ratios divide two workloads of that run.")
	m.line("Absolute numbers are listed only to read the ratios: they depend on the machine and on whatever else ran on it.")
	m.line("")
	if len(r.machine) > 0 {
		for _, kv := range r.machine {
			m.line("- %s: %s", kv[0], kv[1])
		}
		m.line("")
	}

	r.targetTable(&m)
	r.gangTable(&m)
	r.colocationTable(&m)
	r.contentionTable(&m)
	r.diagnosticTable(&m)
	r.batchingTable(&m)
	r.costTable(&m)
	r.detailTable(&m)
	r.failures(&m)
	return m.b.String()
}

func (r *run) targetTable(m *md) {
	m.line("## Targets")
	m.line("")
	var rows [][]string
	for _, t := range r.targets() {
		rows = append(rows, []string{t.goal, t.measured, t.met})
	}
	if len(rows) == 0 {
		m.line("No workload of this run measures a target.")
		m.line("")
		return
	}
	m.table([]string{"target", "measured", "met"}, rows)
}

func (r *run) gangTable(m *md) {
	var rows [][]string
	for _, name := range r.names(tcPlain) {
		plain := r.get(tcPlain, name)
		pc, gang, intree := r.get(tcPlainCosched, name), r.get(tcGang, name), r.get(tcInTree, name)
		rows = append(rows, []string{
			name,
			fmtRatio(pc.avg(), plain.avg()),
			fmtRatio(gang.avg(), plain.avg()),
			fmtRatio(intree.avg(), plain.avg()),
			fmtRatio(gang.avg(), intree.avg()),
			fmtRatio(gang.boundSeconds(), plain.boundSeconds()),
			fmtRatio(intree.boundSeconds(), plain.boundSeconds()),
			fmtRatio(gang.boundSeconds(), intree.boundSeconds()),
		})
	}
	if len(rows) == 0 {
		return
	}
	m.line("## Gangs against plain pods and upstream's in-tree gang scheduling")
	m.line("")
	m.line("Throughput is the harness's average SchedulingThroughput; \"all bound\" is the time from the workload's first pod to its last binding.")
	m.line("Plain pods run under the stock scheduler; cosched under its shipped profile; in-tree under the stock profile with GenericWorkload on.")
	m.line("")
	m.table([]string{"shape", "throughput: plain under cosched / plain", "throughput: cosched gangs / plain", "throughput: in-tree gangs / plain",
		"throughput: cosched / in-tree", "all bound: cosched / plain", "all bound: in-tree / plain", "all bound: cosched / in-tree"}, rows)
}

func (r *run) colocationTable(m *md) {
	var rows [][]string
	for _, name := range r.names(tcAtomic) {
		atomic, annotated, mbm := r.get(tcAtomic, name), r.get(tcAnnotated, name), r.get(tcMemberByMember, name)
		vsGang := "n/a"
		if s, ok := parseShape(name); ok {
			if gang := r.get(tcGang, s.base); gang != nil {
				vsGang = fmtRatio(atomic.avg(), gang.avg())
			}
		}
		rows = append(rows, []string{
			name,
			vsGang,
			fmtRatio(annotated.avg(), atomic.avg()),
			fmtRatio(mbm.avg(), atomic.avg()),
			fmtRatio(atomic.boundSeconds(), mbm.boundSeconds()),
			rejections(atomic) + " / " + rejections(mbm),
			attemptsPerPod(atomic) + " / " + attemptsPerPod(mbm),
		})
	}
	if len(rows) == 0 {
		return
	}
	m.line("## Co-location: pod-atomic placement against member-by-member pod-group affinity")
	m.line("")
	m.line("Atomic: members with a required pod affinity to their own group, planned as a whole. Annotated: the same groups asked for by the PodGroup annotation, without affinity.")
	m.line("Member-by-member: the affinity groups placed by the stock InterPodAffinity plugin, one member at a time.")
	m.line("")
	m.table([]string{"workload", "throughput: atomic / plain gangs", "throughput: annotated / atomic", "throughput: member-by-member / atomic",
		"all bound: atomic / member-by-member", "group rejections: atomic / mbm", "attempts per pod: atomic / mbm"}, rows)
}

func (r *run) contentionTable(m *md) {
	var rows [][]string
	for _, name := range r.names(tcContention) {
		w := r.get(tcContention, name)
		done, total, ok := w.completed()
		complete := "no (deadlock or failure)"
		if w.allComplete != nil {
			complete = fmt.Sprintf("%.1f s", *w.allComplete)
		}
		rows = append(rows, []string{
			name,
			completion(done, total, ok),
			fmt.Sprintf("%.0f", w.groups["PartiallyBound"]),
			complete,
			rejections(w),
			attemptsPerPod(w),
			fmt.Sprintf("%.0f ms", w.groups["MaxBindSpreadMs"]),
		})
	}
	if len(rows) == 0 {
		return
	}
	m.line("## Contention")
	m.line("")
	m.line("More gangs than fit at once, plain pods mixed in; each group is deleted a fixed time after it was bound, which frees room for the next.")
	m.line("\"All complete\" is the time from the first pod to the last binding (this run's machine; it includes each group's fixed runtime and the groups' backoff).")
	m.line("")
	m.table([]string{"workload", "groups completed", "left partially bound", "all complete", "group rejections", "attempts per pod", "max bind spread of a group"}, rows)
}

func (r *run) diagnosticTable(m *md) {
	var rows [][]string
	for _, name := range r.names(tcNoWaitNNN) {
		w := r.get(tcNoWaitNNN, name)
		s, _ := parseShape(name)
		// The same groups with the feature on: plain gangs, or annotated
		// co-location groups for a domain shape.
		with := r.get(tcGang, name)
		if s.domain != "" {
			with = r.get(tcAnnotated, name)
		}
		done, total, ok := w.completed()
		rows = append(rows, []string{
			name,
			fmtRatio(w.avg(), r.get(tcPlain, s.base).avg()),
			fmtRatio(w.avg(), with.avg()),
			completion(done, total, ok),
			rejections(w),
		})
	}
	if len(rows) == 0 {
		return
	}
	m.line("## Diagnostic: waiting members without a nominated node")
	m.line("")
	m.line("CoschedGang with the scheduler feature NominatedNodeNameForExpectation off, against the same groups with it on (plain gangs, or annotated co-location groups for a domain shape).")
	m.line("")
	m.table([]string{"workload", "throughput / plain pods", "throughput / same groups with the feature on", "groups completed", "group rejections"}, rows)
}

func rejections(w *workload) string {
	if w == nil || w.counters == nil {
		return "n/a"
	}
	var keys []string
	total := 0.0
	for k, v := range w.counters {
		if strings.HasPrefix(k, "rejections_") && v > 0 {
			keys = append(keys, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "rejections_"), v))
			total += v
		}
	}
	if total == 0 {
		return "0"
	}
	sort.Strings(keys)
	return fmt.Sprintf("%.0f (%s)", total, strings.Join(keys, ", "))
}

func attemptsPerPod(w *workload) string {
	if w == nil || w.counters == nil || w.allBound == nil || w.allBound["Pods"] == 0 {
		return "n/a"
	}
	attempts := w.counters["attempts_scheduled"] + w.counters["attempts_unschedulable"] + w.counters["attempts_error"]
	return fmt.Sprintf("%.2f", attempts/w.allBound["Pods"])
}

func (r *run) detailTable(m *md) {
	var rows [][]string
	for _, key := range r.order {
		w := r.workloads[key]
		rows = append(rows, []string{
			key,
			stat(w.throughput, "Average", "%.0f"),
			stat(w.throughput, "Perc50", "%.0f") + " / " + stat(w.throughput, "Perc90", "%.0f") + " / " + stat(w.throughput, "Perc99", "%.0f"),
			seconds(w.boundSeconds()),
			seconds(w.duration),
			stat(w.histograms["scheduler_scheduling_attempt_duration_seconds|scheduled"], "Perc50", "%.1f") + " / " +
				stat(w.histograms["scheduler_scheduling_attempt_duration_seconds|scheduled"], "Perc99", "%.1f"),
			stat(w.histograms["scheduler_permit_wait_duration_seconds|Success"], "Perc50", "%.1f") + " / " +
				stat(w.histograms["scheduler_permit_wait_duration_seconds|Success"], "Perc99", "%.1f"),
			stat(w.histograms["cosched_gang_permit_wait_duration_seconds|allowed"], "Perc50", "%.1f") + " / " +
				stat(w.histograms["cosched_gang_permit_wait_duration_seconds|allowed"], "Perc99", "%.1f"),
			attemptsPerPod(w),
			groupsCell(w),
		})
	}
	m.line("## Every workload (absolute values of this run)")
	m.line("")
	m.line("Throughput in pods/s (average, then 50th/90th/99th percentile of the per-second samples); durations in ms unless marked.")
	m.line("\"SchedulingDuration\" is the harness's own measure (creation start to all bound, polled once a second).")
	m.line("Scheduling attempt and permit wait are the scheduler's histograms; \"cosched wait\" is cosched_gang_permit_wait_duration_seconds{result=allowed}.")
	m.line("")
	m.table([]string{"workload", "throughput avg", "p50 / p90 / p99", "all bound", "SchedulingDuration", "attempt p50 / p99",
		"permit wait p50 / p99", "cosched wait p50 / p99", "attempts per pod", "groups"}, rows)
}

// perPod formats the counters named by keys, summed, per pod of w.
func perPod(w *workload, keys ...string) string {
	if w == nil || w.counters == nil || w.allBound == nil || w.allBound["Pods"] == 0 {
		return "n/a"
	}
	if _, measured := w.counters["writes_POST_pods"]; !measured {
		return "n/a"
	}
	sum := 0.0
	for _, k := range keys {
		sum += w.counters[k]
	}
	return fmt.Sprintf("%.2f", sum/w.allBound["Pods"])
}

// allWrites sums every write of the measured phase except the pods' own
// creation, which every test case makes alike.
func allWrites(w *workload) []string {
	var keys []string
	for k := range w.counters {
		if strings.HasPrefix(k, "writes_") && k != "writes_POST_pods" {
			keys = append(keys, k)
		}
	}
	return keys
}

// hintsPerPod is how many of a workload's pods the scheduler placed with a
// batching hint (the previous pod's node ranking).
func hintsPerPod(w *workload) string {
	if w == nil || w.counters == nil || w.allBound == nil || w.allBound["Pods"] == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", w.counters["batch_hint_used"]/w.allBound["Pods"])
}

func (r *run) batchingTable(m *md) {
	var rows [][]string
	for _, name := range r.names(tcPlainBatching) {
		plain, gang := r.get(tcPlainBatching, name), r.get(tcGangBatching, name)
		rows = append(rows, []string{
			name,
			fmtRatio(gang.avg(), plain.avg()),
			fmtRatio(gang.boundSeconds(), plain.boundSeconds()),
			hintsPerPod(plain) + " / " + hintsPerPod(gang),
		})
	}
	if len(rows) == 0 {
		return
	}
	m.line("## Opportunistic batching")
	m.line("")
	m.line("Pods of 3 CPUs, one to a node, under profiles without PodTopologySpread's default constraints (as upstream's batching benchmark):")
	m.line("the case where the scheduler can reuse the previous pod's node ranking.")
	m.line("")
	m.table([]string{"shape", "throughput: gangs / plain pods", "all bound: gangs / plain pods", "pods placed with a batching hint: plain / gangs"}, rows)
}

func (r *run) costTable(m *md) {
	var rows [][]string
	for _, key := range r.order {
		w := r.workloads[key]
		if w.counters == nil {
			continue
		}
		rows = append(rows, []string{
			key,
			perPod(w, "writes_POST_pods/binding"),
			perPod(w, "writes_PATCH_pods/status", "writes_PUT_pods/status", "writes_APPLY_pods/status"),
			perPod(w, "writes_PATCH_podgroups/status", "writes_PUT_podgroups/status"),
			perPod(w, "writes_PATCH_podgroups", "writes_PUT_podgroups"),
			perPod(w, "writes_POST_events", "writes_PATCH_events"),
			perPod(w, allWrites(w)...),
			stat(w.histograms["scheduler_scheduling_algorithm_duration_seconds|"], "Perc50", "%.1f") + " / " +
				stat(w.histograms["scheduler_scheduling_attempt_duration_seconds|scheduled"], "Perc50", "%.1f"),
			fmt.Sprintf("%.0f / %.0f / %.0f", w.counters["batch_hint_used"], w.counters["batch_hint_not_used"], w.counters["batch_no_hint"]),
			fmt.Sprintf("%.0f: %.0f / %.0f", w.counters["plans_shortcut"], w.counters["shortcut_planned"], w.counters["shortcut_search"]),
			stat(w.heap, "Max", "%.0f"),
		})
	}
	if len(rows) == 0 {
		return
	}
	m.line("## Where the time goes")
	m.line("")
	m.line("API writes per measured pod, from the in-process API server's apiserver_request_total during the measured phase: binds (POST pods/binding),")
	m.line("pod status writes (the nominated node of a member waiting at Permit, unschedulable conditions), PodGroup status and metadata writes, events;")
	m.line("\"all\" counts every write but the pods' own creation. Algorithm is scheduler_scheduling_algorithm_duration_seconds (Filter and Score),")
	m.line("attempt is scheduler_scheduling_attempt_duration_seconds{result=scheduled}, which includes the wait at Permit and the bind; p50 in ms.")
	m.line("Batching: the scheduler's opportunistic batching attempts (hint used / hint not used / no hint). Whole-group plans: how many groups got one, then its members")
	m.line("that went to their planned node / searched because it had filled up. Heap: the benchmark process's peak heap in use, MB.")
	m.line("")
	m.table([]string{"workload", "binds", "pod status", "PodGroup status", "PodGroup other", "events", "all writes", "algorithm / attempt p50",
		"batching used / not used / none", "whole-group plans: planned / searched", "heap MB"}, rows)
}

func stat(data map[string]float64, key, format string) string {
	if data == nil {
		return "n/a"
	}
	v, ok := data[key]
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}

func seconds(s float64) string {
	if s <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f s", s)
}

func groupsCell(w *workload) string {
	done, total, ok := w.completed()
	if !ok || total == 0 {
		return "-"
	}
	s := completion(done, total, ok)
	if p := w.groups["PartiallyBound"]; p > 0 {
		s += fmt.Sprintf(", %.0f partial", p)
	}
	return s
}

func (r *run) failures(m *md) {
	var failed []string
	for _, key := range r.order {
		w := r.workloads[key]
		if !w.harness || !w.tracked {
			failed = append(failed, key)
		}
	}
	if len(failed) == 0 {
		return
	}
	m.line("## Incomplete workloads")
	m.line("")
	m.line("These workloads left only part of their results (the benchmark failed or was stopped while they ran): %s.", strings.Join(failed, ", "))
	m.line("")
}
