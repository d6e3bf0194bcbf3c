package performance

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/kubernetes/pkg/scheduler"
	perf "k8s.io/kubernetes/test/integration/scheduler_perf"
	"k8s.io/kubernetes/test/utils/client-go/ktesting"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/pkg/podgroup"
)

// What the harness does not measure, this file does, watching pods through
// the scheduler's own pod informer (the one the harness counts with):
//
//   - the time from the workload's first pod to its last binding, to the
//     millisecond (the harness's SchedulingDuration polls once a second);
//   - every group's binding: how far apart its members were bound (a group
//     left partially bound fails the workload);
//   - for groups whose pods carry perf.cosched.dev/runtime-ms, their
//     completion: the group is deleted that long after its last member was
//     bound, as if the job ran and ended, which frees room for others;
//   - the await marker: when a createNodes op creates a node labelled
//     perf.cosched.dev/await, the op blocks until every pod has been bound
//     once and every group has completed, or fails after
//     -cosched-await-timeout naming the groups that never completed;
//   - cosched's own counters, the scheduler's attempt and opportunistic
//     batching counts, read before the harness resets the metrics registry;
//   - the API writes of the measured phase by verb and resource (binds,
//     nominations, PodGroup status, events), from the in-process API
//     server's apiserver_request_total (profile_test.go, which also writes
//     CPU and allocation profiles with -cosched-profile-dir);
//   - pods never bound that hold a nominated node (status.nominatedNodeName):
//     the scheduler's Filter counts them as occupying that node, so stale
//     nominations are reported, with the nodes they pile on.
//
// Results go to -data-items-dir as cosched_<workload>_<time>.json, in the
// harness's DataItems format.

const (
	// groupSizeLabel on a pod is its group's size: the group is complete
	// when that many of its members have been bound.
	groupSizeLabel = "perf.cosched.dev/group-size"
	// runtimeLabel on a pod makes the finisher delete its group that many
	// milliseconds after the group completed.
	runtimeLabel = "perf.cosched.dev/runtime-ms"
	// awaitLabel marks the node whose creation makes the benchmark wait for
	// completion.
	awaitLabel = "perf.cosched.dev/await"
)

// hooks carries the tracker of the running workload between the harness's
// callbacks; workloads run one after another.
type hooks struct {
	mu      sync.Mutex
	current *tracker
}

// prepare runs before each workload's ops, with the scheduler running.
func (h *hooks) prepare(tCtx ktesting.TContext) error {
	t := startTracker(tCtx)
	h.mu.Lock()
	h.current = t
	h.mu.Unlock()
	// Registered after the harness's own cleanup, so it runs before it:
	// the scheduler still runs and its metrics are not reset yet.
	tCtx.TB().Cleanup(func() {
		h.mu.Lock()
		h.current = nil
		h.mu.Unlock()
		if err := t.finish(); err != nil {
			tCtx.TB().Errorf("%v", err)
		}
	})
	return nil
}

// nodesCreated runs after every createNodes op. The first one attaches the
// tracker to the scheduler's pod informer (every workload creates its nodes
// before its pods); one that created the await marker waits for completion.
func (h *hooks) nodesCreated(tCtx ktesting.TContext, sched *scheduler.Scheduler, _ *perf.Workload, nodes *v1.NodeList) error {
	h.mu.Lock()
	t := h.current
	h.mu.Unlock()
	if t == nil {
		return nil
	}
	if err := t.attach(sched); err != nil {
		return err
	}
	for i := range nodes.Items {
		if _, ok := nodes.Items[i].Labels[awaitLabel]; ok {
			return t.awaitCompletion(tCtx, *awaitTimeout)
		}
	}
	return nil
}

type podRecord struct {
	name, namespace string
	group           *groupRecord
	bound           time.Time
	// nominated is the pod's status.nominatedNodeName while it is unbound.
	nominated string
}

type groupRecord struct {
	key     string
	size    int
	runtime time.Duration
	members map[types.UID]*podRecord
	// bound counts members bound at least once.
	bound                 int
	firstBound, lastBound time.Time
	completed             bool
	deleted               bool
}

type tracker struct {
	name   string
	client kubernetes.Interface
	ctx    context.Context
	cancel context.CancelFunc

	// informer is the scheduler's pod informer once attach ran.
	informer     cache.SharedIndexInformer
	registration cache.ResourceEventHandlerRegistration

	mu sync.Mutex
	// firstSeen is when the workload's first pod appeared.
	firstSeen time.Time
	lastBound time.Time
	pods      map[types.UID]*podRecord
	groups    map[string]*groupRecord
	deletions sync.WaitGroup
	timers    []*time.Timer
	problems  []string
	// awaited is when the await marker's wait ended, zero if it never ran.
	awaited time.Time
	// maxNominated is the most pods seen at once that were not bound yet
	// but held a nominated node; sampled once a second.
	maxNominated int
	sampler      sync.WaitGroup

	// writesAtAttach counts the API writes made before the measured phase
	// (nodes, PodGroups); profile profiles the measured phase.
	writesAtAttach map[string]float64
	profile        *phaseProfile
}

func startTracker(tCtx ktesting.TContext) *tracker {
	ctx, cancel := context.WithCancel(context.Background())
	t := &tracker{
		name:   tCtx.Name(),
		client: tCtx.Client(),
		ctx:    ctx,
		cancel: cancel,
		pods:   map[types.UID]*podRecord{},
		groups: map[string]*groupRecord{},
	}
	t.sampler.Add(1)
	go t.sample()
	return t
}

// attach starts watching pods through the scheduler's own pod informer, the
// one the harness counts bound pods with, so that both see every binding at
// the same moment (a second watch lags behind under load).
func (t *tracker) attach(sched *scheduler.Scheduler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.informer != nil {
		return nil
	}
	for _, prof := range sched.Profiles {
		informer := prof.SharedInformerFactory().Core().V1().Pods().Informer()
		reg, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { t.observe(obj) },
			UpdateFunc: func(_, obj any) { t.observe(obj) },
		})
		if err != nil {
			return err
		}
		t.informer, t.registration = informer, reg
		t.writesAtAttach = apiWrites()
		t.profile, err = startPhaseProfile(strings.TrimPrefix(t.name, "BenchmarkPerfScheduling/"))
		return err
	}
	return errors.New("the scheduler has no profile")
}

// catchUp waits until the tracker has seen every binding that the
// informer's store holds: handlers are told of a change after the store
// has it.
func (t *tracker) catchUp(timeout time.Duration) {
	if t.informer == nil {
		return
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		behind := false
		for _, obj := range t.informer.GetStore().List() {
			pod, ok := obj.(*v1.Pod)
			if !ok || pod.Spec.NodeName == "" {
				continue
			}
			t.mu.Lock()
			rec := t.pods[pod.UID]
			behind = rec == nil || rec.bound.IsZero()
			t.mu.Unlock()
			if behind {
				break
			}
		}
		if !behind {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sample keeps the peak of pending pods that hold a nominated node: room
// the scheduler's Filter counts as taken on that node (for pods of equal or
// lower priority) although nothing runs there.
func (t *tracker) sample() {
	defer t.sampler.Done()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-ticker.C:
			t.mu.Lock()
			_, nominated := t.pendingLocked()
			t.maxNominated = max(t.maxNominated, nominated)
			t.mu.Unlock()
		}
	}
}

// nominatedNodesLocked lists the nodes most nominated by pending pods.
func (t *tracker) nominatedNodesLocked(n int) string {
	count := map[string]int{}
	for _, p := range t.pods {
		if p.bound.IsZero() && p.nominated != "" {
			count[p.nominated]++
		}
	}
	nodes := make([]string, 0, len(count))
	for node := range count {
		nodes = append(nodes, node)
	}
	sort.Slice(nodes, func(i, j int) bool { return count[nodes[i]] > count[nodes[j]] })
	var parts []string
	for _, node := range first(nodes, n) {
		parts = append(parts, fmt.Sprintf("%s: %d", node, count[node]))
	}
	return strings.Join(parts, ", ")
}

// groupOf returns the key of the pod's group, cosched's or in-tree.
func groupOf(pod *v1.Pod) string {
	if key := podgroup.KeyOf(pod); key != "" {
		return key
	}
	if sg := pod.Spec.SchedulingGroup; sg != nil && sg.PodGroupName != nil {
		return pod.Namespace + "/" + *sg.PodGroupName
	}
	return ""
}

func (t *tracker) observe(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return // stopped: no new timers
	}
	rec, ok := t.pods[pod.UID]
	if !ok {
		if t.firstSeen.IsZero() {
			t.firstSeen = now
		}
		rec = &podRecord{name: pod.Name, namespace: pod.Namespace}
		if key := groupOf(pod); key != "" {
			g := t.groups[key]
			if g == nil {
				g = &groupRecord{key: key, members: map[types.UID]*podRecord{}}
				g.size, _ = strconv.Atoi(pod.Labels[groupSizeLabel])
				if ms, err := strconv.Atoi(pod.Labels[runtimeLabel]); err == nil {
					g.runtime = time.Duration(ms) * time.Millisecond
				}
				t.groups[key] = g
			}
			g.members[pod.UID] = rec
			rec.group = g
		}
		t.pods[pod.UID] = rec
	}
	if pod.Spec.NodeName == "" {
		rec.nominated = pod.Status.NominatedNodeName
	}
	if pod.Spec.NodeName == "" || !rec.bound.IsZero() {
		return
	}
	rec.bound = now
	t.lastBound = now
	g := rec.group
	if g == nil {
		return
	}
	g.bound++
	if g.firstBound.IsZero() {
		g.firstBound = now
	}
	g.lastBound = now
	if g.size > 0 && g.bound >= g.size && !g.completed {
		g.completed = true
		if g.runtime > 0 {
			t.finishLater(g)
		}
	}
}

// finishLater deletes the group's members once it has "run" for its
// runtime. Called with t.mu held.
func (t *tracker) finishLater(g *groupRecord) {
	members := make([]podRecord, 0, len(g.members))
	for _, m := range g.members {
		members = append(members, *m)
	}
	t.deletions.Add(1)
	timer := time.AfterFunc(g.runtime, func() {
		defer t.deletions.Done()
		for _, m := range members {
			err := t.client.CoreV1().Pods(m.namespace).Delete(t.ctx, m.name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			if err != nil && !apierrors.IsNotFound(err) && t.ctx.Err() == nil {
				t.mu.Lock()
				t.problems = append(t.problems, fmt.Sprintf("deleting finished member %s/%s: %v", m.namespace, m.name, err))
				t.mu.Unlock()
			}
		}
		t.mu.Lock()
		g.deleted = true
		t.mu.Unlock()
	})
	t.timers = append(t.timers, timer)
}

// awaitCompletion blocks until every pod seen has been bound once and every
// group has completed.
func (t *tracker) awaitCompletion(tCtx ktesting.TContext, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pending, incomplete := t.outstanding()
		if pending == 0 && len(incomplete) == 0 {
			t.mu.Lock()
			t.awaited = time.Now()
			t.mu.Unlock()
			tCtx.Logf("await marker: every pod bound and every group completed")
			return nil
		}
		if time.Now().After(deadline) {
			t.mu.Lock()
			_, nominated := t.pendingLocked()
			nodes := t.nominatedNodesLocked(5)
			t.mu.Unlock()
			return fmt.Errorf("deadlock: after %s, %d pod(s) were never bound (%d of them with a nominated node: %s) and %d group(s) never completed: %s; cosched counters: %s",
				timeout, pending, nominated, nodes, len(incomplete), strings.Join(first(incomplete, 10), ", "), describeCounters(gatherCounters()))
		}
		select {
		case <-tCtx.Done():
			return context.Cause(tCtx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// outstanding returns how many pods were never bound and which groups have
// not completed.
func (t *tracker) outstanding() (int, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pending, _ := t.pendingLocked()
	return pending, t.incompleteLocked()
}

// pendingLocked counts the pods never bound, and those of them that carry
// a nominated node (room the scheduler holds for them on that node).
func (t *tracker) pendingLocked() (pending, nominated int) {
	for _, p := range t.pods {
		if p.bound.IsZero() {
			pending++
			if p.nominated != "" {
				nominated++
			}
		}
	}
	return pending, nominated
}

func (t *tracker) incompleteLocked() []string {
	var incomplete []string
	for _, g := range t.groups {
		if !g.completed {
			incomplete = append(incomplete, fmt.Sprintf("%s (%d/%d bound)", g.key, g.bound, g.size))
		}
	}
	sort.Strings(incomplete)
	return incomplete
}

func first(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}

func (t *tracker) stop() {
	// No event arrives after the handler is removed, so no timer is added
	// after this.
	t.cancel()
	t.sampler.Wait()
	if t.informer != nil {
		_ = t.informer.RemoveEventHandler(t.registration)
	}
	t.mu.Lock()
	timers := t.timers
	t.mu.Unlock()
	for _, timer := range timers {
		if timer.Stop() {
			t.deletions.Done()
		}
	}
	t.deletions.Wait()
}

// finish checks the groups, reads the counters and writes the results.
func (t *tracker) finish() error {
	t.catchUp(30 * time.Second)
	counters := gatherCounters()
	if t.writesAtAttach != nil {
		maps.Copy(counters, writesSince(t.writesAtAttach))
	}
	profileErr := t.profile.stop()
	t.stop()

	t.mu.Lock()
	defer t.mu.Unlock()
	errs := []error{profileErr}
	for _, p := range t.problems {
		errs = append(errs, errors.New(p))
	}
	groups := map[string]float64{"Total": 0, "Completed": 0, "PartiallyBound": 0, "MaxBindSpreadMs": 0, "MedianBindSpreadMs": 0}
	var spreads []float64
	for _, g := range t.groups {
		groups["Total"]++
		switch {
		case g.completed:
			groups["Completed"]++
			spreads = append(spreads, float64(g.lastBound.Sub(g.firstBound).Milliseconds()))
		case g.bound > 0 && !g.deleted:
			// Bound members of a group that never completed: the
			// all-or-nothing promise was broken.
			groups["PartiallyBound"]++
			errs = append(errs, fmt.Errorf("group %s ended partially bound: %d of %d members", g.key, g.bound, g.size))
		}
	}
	if len(spreads) > 0 {
		sort.Float64s(spreads)
		groups["MaxBindSpreadMs"] = spreads[len(spreads)-1]
		groups["MedianBindSpreadMs"] = spreads[len(spreads)/2]
	}

	name := strings.TrimPrefix(t.name, "BenchmarkPerfScheduling/")
	pending, nominated := t.pendingLocked()
	bound := len(t.pods) - pending
	if pending > 0 && nominated > 0 {
		errs = append(errs, fmt.Errorf("%d pod(s) never bound; %d hold a nominated node (%s)", pending, nominated, t.nominatedNodesLocked(5)))
	}
	items := []perf.DataItem{
		{
			Labels: map[string]string{"Name": name, "Metric": "cosched:AllBound"},
			Unit:   "s",
			Data: map[string]float64{
				"Pods":  float64(len(t.pods)),
				"Bound": float64(bound),
				// Pods never bound that hold a nominated node at the end,
				// and the most seen at once during the run.
				"PendingNominated":    float64(nominated),
				"MaxPendingNominated": float64(t.maxNominated),
				// From the first pod seen to the last binding.
				"Duration": seconds(t.firstSeen, t.lastBound),
			},
		},
		{
			Labels: map[string]string{"Name": name, "Metric": "cosched:Groups"},
			Unit:   "groups",
			Data:   groups,
		},
		{
			Labels: map[string]string{"Name": name, "Metric": "cosched:Counters"},
			Unit:   "count",
			Data:   counters,
		},
	}
	if !t.awaited.IsZero() {
		items = append(items, perf.DataItem{
			Labels: map[string]string{"Name": name, "Metric": "cosched:AllComplete"},
			Unit:   "s",
			Data:   map[string]float64{"Duration": seconds(t.firstSeen, t.lastBound)},
		})
	}
	if err := writeItems(name, items); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func seconds(from, to time.Time) float64 {
	if from.IsZero() || to.IsZero() {
		return 0
	}
	return to.Sub(from).Seconds()
}

// gatherCounters reads cosched's counters and the scheduler's attempt
// counts from the process-wide registry the in-process scheduler uses.
func gatherCounters() map[string]float64 {
	out := map[string]float64{}
	err := eachCounter(func(name string, l map[string]string, value float64) {
		switch {
		case name == "scheduler_schedule_attempts_total":
			out["attempts_"+l["result"]] += value
		case name == "scheduler_batch_attempts_total":
			out["batch_"+l["result"]] += value
		case name == "scheduler_batch_cache_flushed_total":
			out["batch_flushed_"+l["reason"]] += value
		case name == "cosched_gang_plans_total":
			out["plans_"+l["kind"]] += value
		case name == "cosched_gang_shortcut_members_total":
			out["shortcut_"+l["result"]] += value
		case name == "cosched_gang_rejections_total":
			out["rejections_"+l["reason"]] += value
		case strings.HasPrefix(name, "cosched_gang_"):
			out[strings.TrimSuffix(strings.TrimPrefix(name, "cosched_gang_"), "_total")] += value
		}
	})
	if err != nil {
		out["GatherErrors"] = 1
	}
	return out
}

// eachCounter calls fn with every counter sample of the process-wide
// registry (histograms are collected by the harness), with its labels.
func eachCounter(fn func(name string, labels map[string]string, value float64)) error {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return err
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			fn(f.GetName(), labels, m.GetCounter().GetValue())
		}
	}
	return nil
}

func describeCounters(c map[string]float64) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%g", k, c[k])
	}
	return strings.Join(parts, " ")
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9-_]`)

// writeItems stores the items next to the harness's results.
func writeItems(name string, items []perf.DataItem) error {
	dir := "."
	if f := flag.Lookup("data-items-dir"); f != nil && f.Value.String() != "" {
		dir = f.Value.String()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	data, err := json.MarshalIndent(perf.DataItems{Version: "v1", DataItems: items}, "", "  ")
	if err != nil {
		return err
	}
	file := filepath.Join(dir, fmt.Sprintf("cosched_%s_%s.json", unsafeChars.ReplaceAllString(name, "_"), time.Now().UTC().Format("20060102T150405.000")))
	return os.WriteFile(file, data, 0o644)
}
