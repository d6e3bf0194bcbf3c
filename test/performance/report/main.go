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
	in := flag.String("in", "", "the run's -data-items-dir")
	out := flag.String("out", "", "where results.md and throughput.svg go (default: -in)")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "report: -in is required")
		os.Exit(2)
	}
	if *out == "" {
		*out = *in
	}
	run, err := load(*in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
	md := renderMarkdown(run)
	if err := os.WriteFile(filepath.Join(*out, "results.md"), []byte(md), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(*out, "throughput.svg"), []byte(renderSVG(run)), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(md)
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

func (r *run) targets() []target {
	var ts []target
	for _, name := range r.names(tcGang) {
		s, ok := parseShape(name)
		if !ok {
			continue
		}
		gang := r.get(tcGang, name)
		switch {
		case s.size <= 3:
			plain, intree := r.get(tcPlain, name), r.get(tcInTree, name)
			v, m := ratio(gang.avg(), plain.avg())
			ts = append(ts, target{
				goal:     fmt.Sprintf("%s: cosched gang throughput >= 0.9 x plain pods", name),
				measured: fmtRatio(gang.avg(), plain.avg()),
				met:      verdict(v >= 0.9, m),
			})
			v, m = ratio(gang.avg(), intree.avg())
			ts = append(ts, target{
				goal:     fmt.Sprintf("%s: cosched gang throughput >= in-tree gang", name),
				measured: fmtRatio(gang.avg(), intree.avg()),
				met:      verdict(v >= 1, m),
			})
		case s.size >= 100:
			done, total, ok := gang.completed()
			ts = append(ts, target{
				goal:     fmt.Sprintf("%s: every gang fully bound", name),
				measured: completion(done, total, ok),
				met:      verdict(ok && total > 0 && done == total, ok),
			})
			plain := r.get(tcPlain, name)
			v, m := ratio(gang.boundSeconds(), plain.boundSeconds())
			ts = append(ts, target{
				goal:     fmt.Sprintf("%s: time until all bound <= plain pods", name),
				measured: fmtRatio(gang.boundSeconds(), plain.boundSeconds()),
				met:      verdict(v <= 1, m),
			})
		}
	}
	for _, name := range r.names(tcAtomic) {
		s, ok := parseShape(name)
		if !ok || (s.domain != "Node" && s.domain != "Rack") {
			continue
		}
		atomic, gang := r.get(tcAtomic, name), r.get(tcGang, s.base)
		if gang == nil {
			continue
		}
		v, m := ratio(atomic.avg(), gang.avg())
		ts = append(ts, target{
			goal:     fmt.Sprintf("%s: atomic placement costs <= 20%% throughput vs plain gangs (%s)", name, s.base),
			measured: fmtRatio(atomic.avg(), gang.avg()),
			met:      verdict(v >= 0.8, m),
		})
	}
	for _, name := range r.names(tcContention) {
		w := r.get(tcContention, name)
		done, total, ok := w.completed()
		complete := ok && total > 0 && done == total && w.allComplete != nil && w.groups["PartiallyBound"] == 0
		measured := completion(done, total, ok)
		if w.allComplete == nil {
			measured += ", await never finished"
		}
		ts = append(ts, target{
			goal:     fmt.Sprintf("%s: zero deadlocks (every group completes, none left partially bound)", name),
			measured: measured,
			met:      verdict(complete, w.tracked),
		})
	}
	return ts
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

	m.line("## Targets")
	m.line("")
	var rows [][]string
	for _, t := range r.targets() {
		rows = append(rows, []string{t.goal, t.measured, t.met})
	}
	if len(rows) == 0 {
		m.line("No workload of this run measures a target.")
		m.line("")
	} else {
		m.table([]string{"target", "measured", "met"}, rows)
	}

	r.gangTable(&m)
	r.colocationTable(&m)
	r.contentionTable(&m)
	r.diagnosticTable(&m)
	r.detailTable(&m)
	r.failures(&m)
	return m.b.String()
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
