package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// TestSoak sends waves of gangs of mixed sizes, with plain cosched pods mixed
// in, through cosched, and watches its memory and goroutines. Each wave
// arrives while the previous one is being deleted, so that room freed by
// deletions and new arrivals interleave. After each wave every gang that fits
// must be bound whole, the ones that cannot (one short of its quorum, one too
// big for any node) must hold nothing, and no gang may ever stay partly bound.
// cosched's heap in use after the waves must stay within a factor (1.5,
// COSCHED_SOAK_HEAP_FACTOR) of its value after the first wave + heapSlack
// (all samples after a settle pause and a forced GC), and its goroutines must
// come back to their baseline + goroutineSlack.
//
// The size comes from the environment (defaults: the short run that
// make test-e2e does; make soak runs a long one and writes COSCHED_SOAK_OUT):
//
//	COSCHED_SOAK_WAVES=2           waves
//	COSCHED_SOAK_GANGS=15          gangs per wave that fit (plus 2 that do not)
//	COSCHED_SOAK_MAX_MEMBERS=16    largest gang (2..64)
//	COSCHED_SOAK_NODES=0           fake nodes of 32 CPU / 110 pods (0: enough
//	                               for 3 waves, so two overlapping ones fit)
//	COSCHED_SOAK_SETTLE_SECONDS=3  pause before each sample
//	COSCHED_SOAK_IDLE_SECONDS=0    when > 0, idle this long after the last
//	                               wave and check that the live heap is back
//	                               within idleSlack of the baseline (780 lets
//	                               client-go's 6-12 min event cache empty)
//	COSCHED_SOAK_SEED=1            the mix of sizes and requests
//	COSCHED_SOAK_HEAP_FACTOR=1.5   see above; client-go keeps each event it
//	                               sent for 6-12 minutes, so waves that go on
//	                               for longer than about 10 minutes need more
//	COSCHED_SOAK_OUT=              Markdown report to write
//
// Memory and goroutines come from cosched's /metrics (COSCHED_METRICS_URL,
// read with KUBECONFIG's client certificate), RSS from /proc/<pid>/status
// when COSCHED_PID_FILE is set; without the URL the load still runs and only
// the memory checks are skipped.
func TestSoak(t *testing.T) {
	cfg := soakConfig{
		waves:      envInt(t, "COSCHED_SOAK_WAVES", 2),
		gangs:      envInt(t, "COSCHED_SOAK_GANGS", 15),
		maxMembers: envInt(t, "COSCHED_SOAK_MAX_MEMBERS", 16),
		nodes:      envInt(t, "COSCHED_SOAK_NODES", 0),
		settle:     time.Duration(envInt(t, "COSCHED_SOAK_SETTLE_SECONDS", 3)) * time.Second,
		seed:       uint64(envInt(t, "COSCHED_SOAK_SEED", 1)),
		idle:       time.Duration(envInt(t, "COSCHED_SOAK_IDLE_SECONDS", 0)) * time.Second,
		heapFactor: 1.5,
		out:        os.Getenv("COSCHED_SOAK_OUT"),
	}
	if v := os.Getenv("COSCHED_SOAK_HEAP_FACTOR"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 1 {
			t.Fatalf("COSCHED_SOAK_HEAP_FACTOR=%q: want a number >= 1", v)
		}
		cfg.heapFactor = f
	}
	if cfg.waves < 1 || cfg.gangs < 1 || cfg.maxMembers < 2 || cfg.maxMembers > 64 {
		t.Fatalf("want COSCHED_SOAK_WAVES >= 1, COSCHED_SOAK_GANGS >= 1, 2 <= COSCHED_SOAK_MAX_MEMBERS <= 64; got %+v", cfg)
	}
	began := time.Now()
	s := newSuite(t)
	s.waitServiceAccount()
	plans := make([]wavePlan, cfg.waves)
	for i := range plans {
		plans[i] = planWave(s, cfg, i+1)
	}
	if cfg.nodes == 0 {
		cfg.nodes = soakNodes(plans)
	}
	racks := max(2, cfg.nodes/6)
	specs := make([]nodeSpec, cfg.nodes)
	for i := range specs {
		specs[i] = nodeSpec{cpu: "32", memory: "128Gi", labels: map[string]string{soakRackLabel: fmt.Sprintf("rack-%d", i%racks)}}
	}
	s.nodes(specs)
	w := s.watchGangs(15 * time.Second)
	proc := s.coschedIdentity()
	metrics := s.coschedMetrics()
	if metrics == nil {
		t.Logf("COSCHED_METRICS_URL is not set: memory and goroutines are not measured")
	}
	t.Logf("soak: %d waves x %d gangs (sizes 2..%d) on %d nodes of 32 CPU in %d racks; cosched %s",
		cfg.waves, cfg.gangs, cfg.maxMembers, cfg.nodes, racks, proc)

	r := &soakReport{cfg: cfg, racks: racks, started: began}
	r.baseline = s.soakSample(metrics, proc.pid, cfg.settle, "baseline")
	for i, plan := range plans {
		var prev *wavePlan
		if i > 0 {
			prev = &plans[i-1]
		}
		row := s.runWave(w, plan, prev)
		row.sample = s.soakSample(metrics, proc.pid, cfg.settle, fmt.Sprintf("wave %d", plan.wave))
		r.rows = append(r.rows, row)
		t.Logf("wave %d: %d gangs (+%d that cannot fit), %d pods: created in %s, all bound %s after the first create; %s",
			plan.wave, plan.fitGangs, plan.unfitGangs, plan.pods, row.created.Round(time.Millisecond),
			row.bound.Round(time.Millisecond), row.sample)
		if t.Failed() {
			break
		}
	}
	if !t.Failed() {
		s.deleteWave(w, &plans[len(plans)-1])
		r.final = s.soakSample(metrics, proc.pid, 2*cfg.settle, "after deleting every wave")
		t.Logf("after deleting every wave: %s", r.final)
		if cfg.idle > 0 && metrics != nil {
			t.Logf("idling %s so that the event recorder's cache empties", cfg.idle)
			r.idle = s.soakSample(metrics, proc.pid, cfg.idle, fmt.Sprintf("idle %s later", cfg.idle))
			t.Logf("%s: %s", r.idle.label, r.idle)
		}
	}
	r.partial = w.stats()
	w.check()

	if after := s.coschedIdentity(); proc.pid > 0 && after.pid != proc.pid {
		t.Errorf("cosched was restarted during the soak: pid %d, then %d", proc.pid, after.pid)
	}
	r.verdicts = s.soakVerdicts(r)
	r.duration = time.Since(began)
	t.Logf("soak: %d gangs, %d pods in %s; %s", r.gangs(), r.pods(), r.duration.Round(time.Second), r.partial)
	if cfg.out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg.out, []byte(r.markdown(t.Failed())), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", cfg.out)
	}
}

const (
	soakWaveLabel = "e2e.cosched.dev/wave"
	soakRackLabel = "topology.cosched.dev/rack"
	// heapSlack (with COSCHED_SOAK_HEAP_FACTOR) bounds the heap in use over
	// its value after the first wave; goroutineSlack bounds the goroutines
	// after the soak over the baseline.
	heapSlack      = 32 << 20
	goroutineSlack = 50
	// idleSlack bounds the live heap after COSCHED_SOAK_IDLE_SECONDS over
	// the baseline's.
	idleSlack = 16 << 20
)

type soakConfig struct {
	waves, gangs, maxMembers, nodes int
	settle, idle                    time.Duration
	heapFactor                      float64
	seed                            uint64
	out                             string
}

// wavePlan is one wave: its gangs (those that fit first) and plain pods.
type wavePlan struct {
	wave                 int
	gangs                []gangSpec
	plain                []*v1.Pod
	fitGangs, unfitGangs int
	pods                 int
	fitPods, fitMilliCPU int
}

// Gang sizes and member requests, drawn at random (seeded) for each gang.
var (
	soakSizes = []int{2, 2, 3, 4, 4, 6, 8, 8, 12, 16, 24, 32, 48, 64}
	soakCPUs  = []string{"100m", "250m", "500m"}
)

func planWave(s *suite, cfg soakConfig, wave int) wavePlan {
	rng := rand.New(rand.NewPCG(cfg.seed, uint64(wave)))
	p := wavePlan{wave: wave}
	labels := map[string]string{soakWaveLabel: strconv.Itoa(wave)}
	var sizes []int
	for _, n := range soakSizes {
		if n <= cfg.maxMembers {
			sizes = append(sizes, n)
		}
	}
	for j := 0; j < cfg.gangs; j++ {
		size := sizes[rng.IntN(len(sizes))]
		cpu := soakCPUs[rng.IntN(len(soakCPUs))]
		g := gangSpec{name: fmt.Sprintf("w%d-g%d", wave, j), minMember: size, members: size,
			cpu: cpu, mem: "64Mi", fits: true, labels: labels}
		switch {
		case j%7 == 3 && size <= 8:
			g.topologyKey = "kubernetes.io/hostname"
		case j%5 == 2 && size <= 16:
			g.topologyKey = soakRackLabel
		}
		if j%6 == 5 {
			g.members = size + 2 // members beyond the quorum
		}
		g.membersFirst = j%9 == 4
		p.gangs = append(p.gangs, g)
		p.fitGangs++
		p.fitPods += g.members
		p.fitMilliCPU += g.members * milliCPU(cpu)
		plain := s.pod(fmt.Sprintf("w%d-p%d", wave, j), "", "100m", "64Mi")
		for k, v := range labels {
			plain.Labels[k] = v
		}
		p.plain = append(p.plain, plain)
		p.fitPods++
		p.fitMilliCPU += 100
	}
	p.gangs = append(p.gangs,
		gangSpec{name: fmt.Sprintf("w%d-short", wave), minMember: 4, members: 3, cpu: "100m", mem: "64Mi", labels: labels},
		gangSpec{name: fmt.Sprintf("w%d-toobig", wave), minMember: 2, members: 2, cpu: "64", mem: "64Mi", labels: labels},
	)
	p.unfitGangs = 2
	p.pods = p.fitPods + 5
	return p
}

func milliCPU(q string) int {
	if v, ok := strings.CutSuffix(q, "m"); ok {
		n, _ := strconv.Atoi(v)
		return n
	}
	n, _ := strconv.Atoi(q)
	return n * 1000
}

// soakNodes is enough 32 CPU / 110 pod nodes to hold three of the largest
// waves: two waves overlap while one is deleted and the next arrives, and
// the rest is slack for gangs that must share a node or a rack.
func soakNodes(plans []wavePlan) int {
	n := 4
	for _, p := range plans {
		n = max(n, int(math.Ceil(3*float64(p.fitPods)/110)), int(math.Ceil(3*float64(p.fitMilliCPU)/32000)))
	}
	return n
}

type soakRow struct {
	plan             wavePlan
	created, bound   time.Duration
	deletedPrevAfter time.Duration
	sample           soakSample
}

// runWave deletes the previous wave while this one is created, then waits
// until everything in it that fits is bound.
func (s *suite) runWave(w *gangWatch, plan wavePlan, prev *wavePlan) soakRow {
	s.t.Helper()
	row := soakRow{plan: plan}
	for _, g := range plan.gangs {
		w.track(g.name, g.minMember)
	}
	start := time.Now()
	deleted := make(chan time.Duration, 1)
	if prev != nil {
		go func() {
			s.deleteWave(w, prev)
			deleted <- time.Since(start)
		}()
	} else {
		deleted <- 0
	}
	// Never leave the deletion behind, not even when the wave fails.
	deletedAfter := sync.OnceValue(func() time.Duration { return <-deleted })
	defer deletedAfter()

	// Create the wave from 8 workers: each gang is created whole by one
	// worker, its plain pod right after it.
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	jobs := make(chan int)
	errs := make(chan error, len(plan.gangs))
	var wg sync.WaitGroup
	for k := 0; k < 8; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if _, err := s.createGang(ctx, plan.gangs[j]); err != nil {
					errs <- err
					cancel()
					continue
				}
				if j < len(plan.plain) {
					if _, err := s.cs.CoreV1().Pods(s.ns).Create(ctx, plan.plain[j], metav1.CreateOptions{}); err != nil {
						errs <- fmt.Errorf("creating pod %s: %w", plan.plain[j].Name, err)
						cancel()
					}
				}
			}
		}()
	}
	for j := range plan.gangs {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		s.t.Fatalf("wave %d: %v", plan.wave, err)
	}
	row.created = time.Since(start)

	selector := soakWaveLabel + "=" + strconv.Itoa(plan.wave)
	timeout := 2*time.Minute + time.Duration(plan.pods)*100*time.Millisecond
	var bound, total map[string]int
	err := wait.PollUntilContextTimeout(s.ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		bound, total, err = s.boundByGroup(ctx, selector)
		if err != nil {
			return false, nil
		}
		if bound[""] < len(plan.plain) {
			return false, nil
		}
		for _, g := range plan.gangs {
			if g.fits && bound[g.name] < g.members {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var missing []string
		for _, g := range plan.gangs {
			if g.fits && bound[g.name] < g.members {
				missing = append(missing, fmt.Sprintf("%s %d/%d (min %d, %s each, topology %q)",
					g.name, bound[g.name], total[g.name], g.minMember, g.cpu, g.topologyKey))
			}
		}
		s.t.Fatalf("wave %d: not everything that fits was bound within %s: plain %d/%d; gangs: %s",
			plan.wave, timeout, bound[""], len(plan.plain), strings.Join(missing, ", "))
	}
	row.bound = time.Since(start)
	for _, g := range plan.gangs {
		if !g.fits && bound[g.name] > 0 {
			s.t.Errorf("wave %d: %s cannot fit but has %d of %d members bound", plan.wave, g.name, bound[g.name], g.members)
		}
	}
	row.deletedPrevAfter = deletedAfter()
	return row
}

// deleteWave stops watching a wave's groups and deletes its pods and
// PodGroups, waiting until the pods are gone.
func (s *suite) deleteWave(w *gangWatch, plan *wavePlan) {
	s.t.Helper()
	var names []string
	for _, g := range plan.gangs {
		names = append(names, g.name)
	}
	w.untrack(names...)
	selector := metav1.ListOptions{LabelSelector: soakWaveLabel + "=" + strconv.Itoa(plan.wave)}
	now := metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}
	if err := s.cs.CoreV1().Pods(s.ns).DeleteCollection(s.ctx, now, selector); err != nil {
		s.t.Errorf("deleting the pods of wave %d: %v", plan.wave, err)
		return
	}
	if err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).DeleteCollection(s.ctx, now, selector); err != nil {
		s.t.Errorf("deleting the PodGroups of wave %d: %v", plan.wave, err)
		return
	}
	err := wait.PollUntilContextTimeout(s.ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := s.cs.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: selector.LabelSelector, Limit: 1})
		return err == nil && len(list.Items) == 0, nil
	})
	if err != nil {
		s.t.Errorf("the pods of wave %d are still there 2m after their deletion", plan.wave)
	}
}

// soakSample is cosched's memory and goroutines at one point.
type soakSample struct {
	label                       string
	rss, heap, live, goroutines float64
	ok                          bool
}

func (m soakSample) String() string {
	if !m.ok {
		return "cosched not measured"
	}
	return fmt.Sprintf("cosched RSS %s, heap in use %s (live %s), %0.f goroutines", mib(m.rss), mib(m.heap), mib(m.live), m.goroutines)
}

func (s *suite) soakSample(m *coschedMetrics, pid int, settle time.Duration, label string) soakSample {
	s.t.Helper()
	out := soakSample{label: label}
	if m == nil {
		return out
	}
	time.Sleep(settle)
	if err := m.gc(s.ctx); err != nil {
		s.t.Logf("forcing a GC in cosched: %v (sampling without it)", err)
	}
	got, err := m.sample(s.ctx, "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_goroutines", "process_resident_memory_bytes")
	if err != nil {
		s.t.Errorf("sampling cosched's metrics (%s): %v", label, err)
		return out
	}
	// VmRSS of the process when its PID is known, else what it reports.
	rss := got["process_resident_memory_bytes"]
	if pid > 0 {
		if rss, err = rssBytes(pid); err != nil {
			s.t.Errorf("reading cosched's RSS (%s): %v", label, err)
			return out
		}
	}
	out.rss, out.heap, out.live, out.goroutines = rss, got["go_memstats_heap_inuse_bytes"], got["go_memstats_heap_alloc_bytes"], got["go_goroutines"]
	out.ok = true
	return out
}

type soakReport struct {
	cfg             soakConfig
	racks           int
	started         time.Time
	duration        time.Duration
	baseline, final soakSample
	idle            soakSample
	rows            []soakRow
	partial         string
	verdicts        []string
}

func (r *soakReport) gangs() int {
	n := 0
	for _, row := range r.rows {
		n += row.plan.fitGangs + row.plan.unfitGangs
	}
	return n
}

func (r *soakReport) pods() int {
	n := 0
	for _, row := range r.rows {
		n += row.plan.pods
	}
	return n
}

// soakVerdicts checks memory and goroutines and says what was checked.
func (s *suite) soakVerdicts(r *soakReport) []string {
	if len(r.rows) == 0 || !r.rows[0].sample.ok || !r.final.ok || !r.baseline.ok {
		return []string{"memory and goroutines not checked (no complete samples)"}
	}
	var out []string
	first := r.rows[0].sample.heap
	limit := r.cfg.heapFactor*first + heapSlack
	worst := r.final
	for _, row := range r.rows[1:] {
		if row.sample.ok && row.sample.heap > worst.heap {
			worst = row.sample
		}
	}
	verdict := fmt.Sprintf("heap in use after wave 1 %s; highest later %s (%s); limit %.1fx + %s = %s",
		mib(first), mib(worst.heap), worst.label, r.cfg.heapFactor, mib(heapSlack), mib(limit))
	if worst.heap > limit {
		s.t.Errorf("cosched's heap grew over the waves: %s", verdict)
		verdict = "FAIL: " + verdict
	} else {
		verdict = "ok: " + verdict
	}
	out = append(out, verdict)
	glimit := r.baseline.goroutines + goroutineSlack
	verdict = fmt.Sprintf("goroutines %0.f at the baseline, %0.f after deleting every wave; limit %0.f",
		r.baseline.goroutines, r.final.goroutines, glimit)
	if r.final.goroutines > glimit {
		s.t.Errorf("cosched's goroutines did not come back: %s", verdict)
		verdict = "FAIL: " + verdict
	} else {
		verdict = "ok: " + verdict
	}
	out = append(out, verdict)
	if r.idle.ok {
		ilimit := r.baseline.live + idleSlack
		verdict = fmt.Sprintf("live heap %s at the baseline, %s right after the waves, %s %s; limit baseline + %s = %s",
			mib(r.baseline.live), mib(r.final.live), mib(r.idle.live), r.idle.label, mib(idleSlack), mib(ilimit))
		if r.idle.live > ilimit {
			s.t.Errorf("cosched's live heap did not come back after idling: %s", verdict)
			verdict = "FAIL: " + verdict
		} else {
			verdict = "ok: " + verdict
		}
		out = append(out, verdict)
	}
	return out
}

func (r *soakReport) markdown(failed bool) string {
	var b strings.Builder
	result := "PASS"
	if failed {
		result = "FAIL"
	}
	fmt.Fprintf(&b, "# cosched soak (%s)\n\n", result)
	fmt.Fprintf(&b, "Run %s, %s in all. %d waves of %d gangs that fit (sizes 2..%d, seed %d) plus 2 that cannot "+
		"(one short of its quorum, one too big for any node) and one plain pod per gang; "+
		"%d fake nodes of 32 CPU / 110 pods in %d racks. Each wave is created while the previous one is deleted.\n\n",
		r.started.UTC().Format(time.RFC3339), r.duration.Round(time.Second), r.cfg.waves, r.cfg.gangs,
		r.cfg.maxMembers, r.cfg.seed, r.cfg.nodes, r.racks)
	fmt.Fprintf(&b, "Totals: %d gangs, %d pods. %s.\n\n", r.gangs(), r.pods(), r.partial)
	b.WriteString("| sample | gangs (fit + not) | pods | created in | all bound after | previous wave gone after | cosched RSS | heap in use | live heap | goroutines |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	cell := func(m soakSample) string {
		if !m.ok {
			return "- | - | - | -"
		}
		return fmt.Sprintf("%s | %s | %s | %0.f", mib(m.rss), mib(m.heap), mib(m.live), m.goroutines)
	}
	fmt.Fprintf(&b, "| baseline | | | | | | %s |\n", cell(r.baseline))
	for _, row := range r.rows {
		prev := "-"
		if row.plan.wave > 1 {
			prev = row.deletedPrevAfter.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| wave %d | %d + %d | %d | %s | %s | %s | %s |\n", row.plan.wave, row.plan.fitGangs, row.plan.unfitGangs,
			row.plan.pods, row.created.Round(100*time.Millisecond), row.bound.Round(100*time.Millisecond), prev, cell(row.sample))
	}
	fmt.Fprintf(&b, "| all deleted | | | | | | %s |\n", cell(r.final))
	if r.idle.ok {
		fmt.Fprintf(&b, "| %s | | | | | | %s |\n", r.idle.label, cell(r.idle))
	}
	b.WriteString("\n")
	b.WriteString("Samples are taken after a settle pause and a forced GC in cosched (`/debug/pprof/heap?gc=1`); ")
	b.WriteString("RSS from /proc/<pid>/status, heap in use (`go_memstats_heap_inuse_bytes`: spans holding objects), ")
	b.WriteString("live heap (`go_memstats_heap_alloc_bytes`: the objects themselves) and goroutines from cosched's /metrics. ")
	b.WriteString("The event recorder of client-go keeps every event it sent for 6 to 12 minutes (to merge repeats into series), ")
	b.WriteString("so right after the waves the heap still holds one event per scheduled pod; the idle sample, when taken, comes after that cache has emptied.\n\n")
	for _, v := range r.verdicts {
		fmt.Fprintf(&b, "- %s\n", v)
	}
	return b.String()
}
