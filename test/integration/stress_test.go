package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// TestGangInvariants is a seeded, randomized stress test of the
// all-or-nothing promise (docs/reliability.md) against a real API server.
// One RNG, seeded from COSCHED_STRESS_SEED (default: a random seed, printed
// first and in every failure), draws a sequence of COSCHED_STRESS_OPS
// operations (default 300): gangs of 1-8 members (minMember up to the size,
// sometimes one more; short Permit timeouts; a rack, node or missing
// topology key; priorities; bare or controller-owned members; members
// created before their PodGroup), plain pods, deletions of members, gangs
// and PodGroups, PodGroups created again, minMember edits, nodes deleted
// and added, bindings refused by a ValidatingAdmissionPolicy, and scheduler
// restarts. The sequence of operations is a function of the seed alone (it
// reads only the test's own model, never the cluster); their timing against
// the scheduler is not, so a replay runs the same operations, not
// necessarily the same interleaving. Every operation is logged.
//
// A watch of every pod (testutil.GangWatch, told of each change the test
// makes: PodGroups, deletions, refusals) checks, on each state the API
// server goes through:
//
//   - no group stays bound below its minMember (0 < bound < minMember) for
//     longer than the grace the e2e watcher allows (15 s: binds are one API
//     call each), except an episode the test itself caused (it deleted a
//     bound member, or a member of a bare group while it was being bound,
//     raised minMember, or deleted the PodGroup) and the one documented
//     exception: a bare group (no controller) whose member's binding was
//     refused keeps its bound siblings (a GangBindFailed event naming a
//     member whose binding the test refused). Controller-owned groups have
//     no exception: their siblings must be released, and a small controller
//     played by the test recreates every member that disappears;
//   - when a group with a topology key becomes whole by cosched's doing
//     (not after an excused episode), its quorum shares one domain once
//     the burst of binds settles (3 s).
//
// Then the chaos stops (no refusals, no restarts), the cluster rests for
// the grace (so any group left partly bound is caught), and the cluster is
// drained: everything that cannot bind is deleted, and every group whose
// quorum fits on the empty cluster must bind at least minMember members;
// bound groups are deleted as they complete, so each finds the room freed
// by the others. Finally, with everything deleted, cosched's in-memory
// gauges (tracked groups, reservations, releasing members) must return to
// zero.
//
// make test runs the short default; make soak-invariants runs 5000
// operations.
func TestGangInvariants(t *testing.T) {
	cfg := stressParams(t)
	t.Logf("TestGangInvariants: seed %d, %d operations (replay with COSCHED_STRESS_SEED=%d COSCHED_STRESS_OPS=%d)", cfg.seed, cfg.ops, cfg.seed, cfg.ops)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with COSCHED_STRESS_SEED=%d COSCHED_STRESS_OPS=%d", cfg.seed, cfg.seed, cfg.ops)
		}
	})
	began := time.Now()
	c := startCluster(t)
	st := newStress(t, c, cfg)
	// A violation the watch finds is reported at the end, with everything
	// the rest of the run finds (the drain and the gauges still run).
	st.run()
	if st.t.Failed() {
		st.w.CheckViolations()
		return
	}
	st.quiesce()
	st.drain()
	st.w.Check()
	st.deleteEverything()
	st.checkGauges()
	t.Logf("TestGangInvariants: seed %d, %d operations (%s), %d scheduler restarts, in %s; %s",
		cfg.seed, cfg.ops, st.opStats(), st.restarts, time.Since(began).Round(time.Second), st.w.Stats())
}

const (
	// stressGrace is how long a group may be seen partly bound while its
	// members are being bound: the e2e watcher's grace for the soak.
	stressGrace = 15 * time.Second
	// stressStall is how long the drain waits for a group that fits to bind
	// while nothing else completes.
	stressStall = 90 * time.Second
	// stressMaxLiveGangs bounds the load: beyond it, creating a gang turns
	// into deleting one.
	stressMaxLiveGangs  = 24
	stressMaxLivePlains = 12
	// stressMinNodes is how few nodes node deletions leave; additions stop
	// at stressMaxNodes.
	stressMinNodes = 3
	stressMaxNodes = 10
	stressRacks    = 3
	// noSuchTopology is a topology key no node carries.
	noSuchTopology = "example.com/no-such-label"
	// refusedBindings is the ConfigMap naming the pods whose bindings the
	// API server refuses.
	refusedBindings = "refused-bindings"
	refusalMessage  = "binding refused by the stress test"
	stressProbe     = "stress-probe"
)

type stressConfig struct {
	seed uint64
	ops  int
}

func stressParams(t *testing.T) stressConfig {
	t.Helper()
	cfg := stressConfig{seed: rand.Uint64N(1_000_000_000), ops: 300}
	if v := os.Getenv("COSCHED_STRESS_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("COSCHED_STRESS_SEED=%q: want a non-negative integer", v)
		}
		cfg.seed = seed
	}
	if v := os.Getenv("COSCHED_STRESS_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("COSCHED_STRESS_OPS=%q: want a positive integer", v)
		}
		cfg.ops = n
	}
	return cfg
}

// --- the model: what the test created, as far as its own operations know --------

type stressGang struct {
	name         string
	size         int
	minMember    int32
	cpu, memory  string
	timeout      int32 // scheduleTimeoutSeconds, 0 for none
	topology     string
	priority     string
	owned        bool
	membersFirst bool
	pgExists     bool
	deleted      bool
	// gone are members the test deleted for good (bare members; a
	// controller recreates owned ones).
	gone map[int]bool
}

func (g *stressGang) member(i int) string { return fmt.Sprintf("%s-%d", g.name, i) }

func (g *stressGang) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s size=%d minMember=%d cpu=%s mem=%s", g.name, g.size, g.minMember, g.cpu, g.memory)
	if g.timeout > 0 {
		fmt.Fprintf(&b, " timeout=%ds", g.timeout)
	}
	if g.topology != "" {
		fmt.Fprintf(&b, " topology=%s", g.topology)
	}
	if g.priority != "" {
		fmt.Fprintf(&b, " priority=%s", g.priority)
	}
	if g.owned {
		b.WriteString(" owned")
	} else {
		b.WriteString(" bare")
	}
	if g.membersFirst {
		b.WriteString(" members-first")
	}
	return b.String()
}

type stressNode struct {
	name        string
	cpu, memory string
	rack        string
	deleted     bool
}

type stressPlain struct {
	name    string
	deleted bool
}

// stress runs the operations and owns the model.
type stress struct {
	t   *testing.T
	cfg stressConfig
	tag string
	s   *scenario
	ctx context.Context
	rng *rand.Rand
	w   *testutil.GangWatch

	gangs    []*stressGang
	plains   []*stressPlain
	nodes    []*stressNode
	refused  map[string]string // pod -> its gang
	counts   map[string]int
	restarts int
	owner    *v1.ConfigMap
	start    time.Time

	// templates are the pods the test's controller recreates when they
	// disappear: the members of live controller-owned gangs.
	mu        sync.Mutex
	templates map[string]*v1.Pod
	recreates sync.WaitGroup
}

func stressArgs(a *config.CoschedGangArgs) {
	a.PodGroupBackoffSeconds = ptr.To[int64](1)
	a.PermitWaitingTimeSeconds = ptr.To[int64](10)
	// Whole-group shortcut plans from 4 pending members (100 in production),
	// so that the invariants hold for them too.
	a.WholeGroupPlanMinMembers = ptr.To[int32](4)
}

func newStress(t *testing.T, c *cluster, cfg stressConfig) *stress {
	t.Helper()
	st := &stress{
		t:         t,
		cfg:       cfg,
		tag:       fmt.Sprintf("[seed %d: replay with COSCHED_STRESS_SEED=%d COSCHED_STRESS_OPS=%d]", cfg.seed, cfg.seed, cfg.ops),
		rng:       rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15)),
		refused:   map[string]string{},
		counts:    map[string]int{},
		templates: map[string]*v1.Pod{},
	}
	// The first nodes come from the seed too.
	var initial []*v1.Node
	for i := 0; i < 6; i++ {
		n := st.drawNode()
		initial = append(initial, st.nodeObject(n))
	}
	st.s = c.newScenario(t, initial, stressArgs)
	st.ctx = st.s.ctx
	st.start = time.Now()
	for _, n := range st.nodes {
		st.logf("initial node %s cpu=%s mem=%s %s", n.name, n.cpu, n.memory, n.rack)
	}
	owner, err := st.s.cs.CoreV1().ConfigMaps(st.s.ns).Create(st.ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		st.fatalf("creating the owner of controller-owned members: %v", err)
	}
	st.owner = owner
	st.w = testutil.WatchGangs(st.ctx, t, st.s.cs, st.s.ns, stressGrace,
		testutil.TraceEpoch(st.start), testutil.FailurePrefix(st.tag), testutil.OnMemberDeleted(st.podGone))
	for _, n := range st.nodes {
		st.w.AddNode(st.nodeObject(n))
	}
	st.installRefusalPolicy()
	// The test's controller stops before the test ends.
	t.Cleanup(func() {
		st.mu.Lock()
		st.templates = map[string]*v1.Pod{}
		st.mu.Unlock()
		st.recreates.Wait()
	})
	return st
}

func (st *stress) errorf(format string, args ...any) {
	st.t.Helper()
	st.t.Errorf("%s "+format, append([]any{st.tag}, args...)...)
}

func (st *stress) fatalf(format string, args ...any) {
	st.t.Helper()
	st.t.Fatalf("%s "+format, append([]any{st.tag}, args...)...)
}

func (st *stress) logf(format string, args ...any) {
	st.t.Helper()
	st.t.Logf("+%6.2fs "+format, append([]any{time.Since(st.start).Seconds()}, args...)...)
}

func pick[T any](rng *rand.Rand, from ...T) T { return from[rng.IntN(len(from))] }

// --- operations -------------------------------------------------------------------

type stressOp struct {
	name   string
	weight int
	do     func(st *stress) string
}

var stressOps = []stressOp{
	{"createGang", 20, (*stress).opCreateGang},
	{"createPlain", 6, (*stress).opCreatePlain},
	{"deletePlain", 4, (*stress).opDeletePlain},
	{"deleteMember", 8, (*stress).opDeleteMember},
	{"deleteGang", 9, (*stress).opDeleteGang},
	{"deletePodGroup", 3, (*stress).opDeletePodGroup},
	{"recreatePodGroup", 3, (*stress).opRecreatePodGroup},
	{"editMinMember", 7, (*stress).opEditMinMember},
	{"addNode", 3, (*stress).opAddNode},
	{"deleteNode", 3, (*stress).opDeleteNode},
	{"refuseBinding", 4, (*stress).opRefuse},
	{"allowBinding", 4, (*stress).opAllow},
	{"restartScheduler", 2, (*stress).opRestart},
	{"pause", 3, (*stress).opPause},
}

func (st *stress) run() {
	total := 0
	for _, op := range stressOps {
		total += op.weight
	}
	for i := 1; i <= st.cfg.ops; i++ {
		r := st.rng.IntN(total)
		var op stressOp
		for _, o := range stressOps {
			if r < o.weight {
				op = o
				break
			}
			r -= o.weight
		}
		// Bounded load: past a cap, creating turns into deleting.
		switch {
		case op.name == "createGang" && len(st.liveGangs(nil)) >= stressMaxLiveGangs:
			op = stressOpNamed("deleteGang")
		case op.name == "createPlain" && st.livePlains() >= stressMaxLivePlains:
			op = stressOpNamed("deletePlain")
		case op.name == "addNode" && len(st.liveNodes()) >= stressMaxNodes:
			op = stressOpNamed("deleteNode")
		}
		desc := op.do(st)
		st.counts[op.name]++
		st.logf("op %d/%d %s: %s", i, st.cfg.ops, op.name, desc)
		st.podGC()
		if st.t.Failed() {
			st.logf("stopping the operations after op %d: a check failed", i)
			return
		}
		time.Sleep(time.Duration(20+st.rng.IntN(300)) * time.Millisecond)
	}
}

func stressOpNamed(name string) stressOp {
	return stressOps[slices.IndexFunc(stressOps, func(o stressOp) bool { return o.name == name })]
}

func (st *stress) livePlains() int {
	n := 0
	for _, p := range st.plains {
		if !p.deleted {
			n++
		}
	}
	return n
}

func (st *stress) opStats() string {
	var parts []string
	for _, op := range stressOps {
		if n := st.counts[op.name]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op.name, n))
		}
	}
	return strings.Join(parts, ", ")
}

func (st *stress) liveGangs(keep func(*stressGang) bool) []*stressGang {
	var out []*stressGang
	for _, g := range st.gangs {
		if !g.deleted && (keep == nil || keep(g)) {
			out = append(out, g)
		}
	}
	return out
}

func (st *stress) opCreateGang() string {
	rng := st.rng
	g := &stressGang{name: fmt.Sprintf("g%d", len(st.gangs)), gone: map[int]bool{}}
	g.size = 1 + rng.IntN(8)
	g.minMember = int32(1 + rng.IntN(g.size))
	if rng.IntN(20) == 0 {
		g.minMember = int32(g.size + 1) // short of its quorum for good
	}
	g.cpu = pick(rng, "100m", "250m", "500m", "1", "2")
	g.memory = pick(rng, "128Mi", "256Mi", "512Mi", "1Gi", "2Gi")
	if rng.IntN(10) < 3 {
		g.timeout = int32(1 + rng.IntN(3))
	}
	switch r := rng.IntN(100); {
	case r < 18:
		g.topology = rackLabel
	case r < 28:
		g.topology = v1.LabelHostname
	case r < 31:
		g.topology = noSuchTopology
	}
	switch r := rng.IntN(100); {
	case r < 15:
		g.priority = testutil.HighPriority
	case r < 30:
		g.priority = testutil.LowPriority
	}
	g.owned = rng.IntN(2) == 0
	g.membersFirst = rng.IntN(100) < 15
	refuse := -1
	if rng.IntN(100) < 12 {
		refuse = rng.IntN(g.size)
	}
	st.gangs = append(st.gangs, g)
	st.w.TrackGang(testutil.Gang{Name: g.name, MinMember: int(g.minMember), Topology: g.topology, PodGroupLater: true})
	st.w.Tracef(g.name, "created by the test: %s", g)
	desc := g.String()
	if refuse >= 0 {
		desc += fmt.Sprintf(" refused=%s", g.member(refuse))
		st.refused[g.member(refuse)] = g.name
		st.w.SetRefused(g.name, g.member(refuse), true)
		st.writeRefusals()
	}

	pods := make([]*v1.Pod, g.size)
	st.mu.Lock()
	for i := range pods {
		pods[i] = st.memberPod(g, i)
		if g.owned {
			st.templates[pods[i].Name] = pods[i].DeepCopy()
		}
	}
	st.mu.Unlock()
	if !g.membersFirst {
		st.createPodGroup(g)
	}
	for _, p := range pods {
		if _, err := st.s.cs.CoreV1().Pods(st.s.ns).Create(st.ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			st.errorf("creating pod %s: %v", p.Name, err)
		}
	}
	if g.membersFirst {
		st.createPodGroup(g)
	}
	return desc
}

func (st *stress) memberPod(g *stressGang, i int) *v1.Pod {
	p := testutil.Pod(st.s.ns, g.member(i), g.name, g.cpu, g.memory)
	if g.priority != "" {
		testutil.WithPriorityClass(p, g.priority)
	}
	if g.owned {
		p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(st.owner, v1.SchemeGroupVersion.WithKind("ConfigMap"))}
	}
	return p
}

func (st *stress) createPodGroup(g *stressGang) {
	pg := testutil.PodGroup(st.s.ns, g.name, g.minMember)
	if g.timeout > 0 {
		testutil.WithTimeout(pg, g.timeout)
	}
	if g.topology != "" {
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: g.topology}
	}
	st.w.PodGroupSet(g.name, g.minMember)
	if _, err := st.s.pg.SchedulingV1alpha1().PodGroups(st.s.ns).Create(st.ctx, pg, metav1.CreateOptions{}); err != nil {
		st.errorf("creating PodGroup %s: %v", g.name, err)
		return
	}
	g.pgExists = true
}

func (st *stress) opCreatePlain() string {
	cpu := pick(st.rng, "100m", "250m", "500m", "1", "2")
	mem := pick(st.rng, "128Mi", "256Mi", "512Mi", "1Gi")
	prio := pick(st.rng, "", "", testutil.LowPriority, testutil.HighPriority)
	p := &stressPlain{name: fmt.Sprintf("plain-%d", len(st.plains))}
	st.plains = append(st.plains, p)
	pod := testutil.Pod(st.s.ns, p.name, "", cpu, mem)
	if prio != "" {
		testutil.WithPriorityClass(pod, prio)
	}
	if _, err := st.s.cs.CoreV1().Pods(st.s.ns).Create(st.ctx, pod, metav1.CreateOptions{}); err != nil {
		st.errorf("creating pod %s: %v", p.name, err)
	}
	return fmt.Sprintf("%s cpu=%s mem=%s priority=%q", p.name, cpu, mem, prio)
}

func (st *stress) opDeletePlain() string {
	var live []*stressPlain
	for _, p := range st.plains {
		if !p.deleted {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return "no plain pod (skipped)"
	}
	p := live[st.rng.IntN(len(live))]
	p.deleted = true
	return p.name + ": " + st.deletePod(p.name, "plain pod deleted by the test")
}

func (st *stress) opDeleteMember() string {
	gangs := st.liveGangs(nil)
	if len(gangs) == 0 {
		return "no gang (skipped)"
	}
	g := gangs[st.rng.IntN(len(gangs))]
	i := st.rng.IntN(g.size)
	name := g.member(i)
	if g.gone[i] {
		return name + ": deleted before (skipped)"
	}
	if !g.owned {
		g.gone[i] = true
		return name + " (bare, for good): " + st.deletePod(name, "member deleted by the test")
	}
	return name + " (owned, the controller recreates it): " + st.deletePod(name, "member deleted by the test")
}

func (st *stress) opDeleteGang() string {
	gangs := st.liveGangs(nil)
	if len(gangs) == 0 {
		return "no gang (skipped)"
	}
	g := gangs[st.rng.IntN(len(gangs))]
	return g.name + ": " + st.deleteGang(g, "gang deleted by the test")
}

// deleteGang deletes a gang's members and its PodGroup; the watch keeps
// judging it (every deletion is the test's own).
func (st *stress) deleteGang(g *stressGang, why string) string {
	g.deleted = true
	st.mu.Lock()
	for i := 0; i < g.size; i++ {
		delete(st.templates, g.member(i))
	}
	st.mu.Unlock()
	st.w.DeletingGroup(g.name)
	list, err := st.s.cs.CoreV1().Pods(st.s.ns).List(st.ctx, metav1.ListOptions{LabelSelector: podgroup.Label + "=" + g.name})
	if err != nil {
		st.errorf("listing the pods of %s: %v", g.name, err)
		return err.Error()
	}
	deleted := 0
	for _, p := range list.Items {
		if st.deletePodObject(&p, why) {
			deleted++
		}
	}
	if g.pgExists {
		g.pgExists = false
		st.w.PodGroupDeleted(g.name)
		if err := st.s.pg.SchedulingV1alpha1().PodGroups(st.s.ns).Delete(st.ctx, g.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			st.errorf("deleting PodGroup %s: %v", g.name, err)
		}
	}
	return fmt.Sprintf("%d pods and the PodGroup deleted", deleted)
}

// deletePod deletes the pod now named name, telling the watch first that
// the deletion is the test's.
func (st *stress) deletePod(name, why string) string {
	pod, err := st.s.cs.CoreV1().Pods(st.s.ns).Get(st.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "already gone"
	}
	if err != nil {
		st.errorf("getting pod %s: %v", name, err)
		return err.Error()
	}
	if !st.deletePodObject(pod, why) {
		return "already gone"
	}
	if pod.Spec.NodeName != "" {
		return "deleted, was bound to " + pod.Spec.NodeName
	}
	return "deleted, was pending"
}

func (st *stress) deletePodObject(pod *v1.Pod, why string) bool {
	st.w.DeletingPod(pod, why)
	err := st.s.cs.CoreV1().Pods(st.s.ns).Delete(st.ctx, pod.Name, metav1.DeleteOptions{
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		GracePeriodSeconds: ptr.To[int64](0),
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return false
	}
	if err != nil {
		st.errorf("deleting pod %s: %v", pod.Name, err)
		return false
	}
	return true
}

func (st *stress) opDeletePodGroup() string {
	gangs := st.liveGangs(func(g *stressGang) bool { return g.pgExists })
	if len(gangs) == 0 {
		return "no PodGroup (skipped)"
	}
	g := gangs[st.rng.IntN(len(gangs))]
	g.pgExists = false
	st.w.PodGroupDeleted(g.name)
	if err := st.s.pg.SchedulingV1alpha1().PodGroups(st.s.ns).Delete(st.ctx, g.name, metav1.DeleteOptions{}); err != nil {
		st.errorf("deleting PodGroup %s: %v", g.name, err)
	}
	return g.name + ": PodGroup deleted, members kept"
}

func (st *stress) opRecreatePodGroup() string {
	gangs := st.liveGangs(func(g *stressGang) bool { return !g.pgExists })
	if len(gangs) == 0 {
		return "no gang without its PodGroup (skipped)"
	}
	g := gangs[st.rng.IntN(len(gangs))]
	g.minMember = int32(1 + st.rng.IntN(g.size))
	st.createPodGroup(g)
	return fmt.Sprintf("%s: PodGroup created again with minMember %d", g.name, g.minMember)
}

func (st *stress) opEditMinMember() string {
	gangs := st.liveGangs(func(g *stressGang) bool { return g.pgExists })
	if len(gangs) == 0 {
		return "no PodGroup (skipped)"
	}
	g := gangs[st.rng.IntN(len(gangs))]
	old := g.minMember
	g.minMember = int32(1 + st.rng.IntN(g.size+1))
	st.w.PodGroupSet(g.name, g.minMember)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pg, err := st.s.pg.SchedulingV1alpha1().PodGroups(st.s.ns).Get(st.ctx, g.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pg.Spec.MinMember = g.minMember
		_, err = st.s.pg.SchedulingV1alpha1().PodGroups(st.s.ns).Update(st.ctx, pg, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		st.errorf("editing minMember of %s: %v", g.name, err)
	}
	return fmt.Sprintf("%s: minMember %d -> %d", g.name, old, g.minMember)
}

func (st *stress) drawNode() *stressNode {
	n := &stressNode{
		name:   fmt.Sprintf("node-%d", len(st.nodes)),
		cpu:    pick(st.rng, "4", "8"),
		memory: pick(st.rng, "8Gi", "16Gi"),
		rack:   fmt.Sprintf("rack-%d", st.rng.IntN(stressRacks)),
	}
	st.nodes = append(st.nodes, n)
	return n
}

func (st *stress) nodeObject(n *stressNode) *v1.Node {
	return testutil.Node(n.name, n.cpu, n.memory, map[string]string{rackLabel: n.rack})
}

func (st *stress) liveNodes() []*stressNode {
	var out []*stressNode
	for _, n := range st.nodes {
		if !n.deleted {
			out = append(out, n)
		}
	}
	return out
}

func (st *stress) opAddNode() string {
	n := st.drawNode()
	obj := st.nodeObject(n)
	st.w.AddNode(obj)
	st.s.nodes = append(st.s.nodes, n.name) // the scenario deletes it at the end
	if _, err := st.s.cs.CoreV1().Nodes().Create(st.ctx, obj, metav1.CreateOptions{}); err != nil {
		st.errorf("creating node %s: %v", n.name, err)
	}
	return fmt.Sprintf("%s cpu=%s mem=%s %s", n.name, n.cpu, n.memory, n.rack)
}

func (st *stress) opDeleteNode() string {
	live := st.liveNodes()
	if len(live) <= stressMinNodes {
		return fmt.Sprintf("only %d nodes (skipped)", len(live))
	}
	n := live[st.rng.IntN(len(live))]
	n.deleted = true
	if err := st.s.cs.CoreV1().Nodes().Delete(st.ctx, n.name, metav1.DeleteOptions{}); err != nil {
		st.errorf("deleting node %s: %v", n.name, err)
	}
	return n.name + " (the test's pod GC deletes the pods bound to it)"
}

// podGC plays kube-controller-manager's pod garbage collector, which no one
// runs here: pods bound to a node that was deleted are deleted. The watch
// counts these deletions as the test's (a node lost with its pods). Without
// it they would stay bound forever to a node the scheduler no longer sees.
func (st *stress) podGC() {
	deleted := map[string]bool{}
	for _, n := range st.nodes {
		if n.deleted {
			deleted[n.name] = true
		}
	}
	if len(deleted) == 0 {
		return
	}
	list, err := st.s.cs.CoreV1().Pods(st.s.ns).List(st.ctx, metav1.ListOptions{})
	if err != nil {
		st.errorf("listing pods: %v", err)
		return
	}
	for _, p := range list.Items {
		if deleted[p.Spec.NodeName] && p.DeletionTimestamp == nil {
			if st.deletePodObject(&p, "pod GC: its node "+p.Spec.NodeName+" was deleted") {
				st.logf("pod GC: deleted %s, bound to the deleted node %s", p.Name, p.Spec.NodeName)
			}
		}
	}
}

func (st *stress) opRefuse() string {
	gangs := st.liveGangs(nil)
	if len(gangs) == 0 {
		return "no gang (skipped)"
	}
	g := gangs[st.rng.IntN(len(gangs))]
	name := g.member(st.rng.IntN(g.size))
	if _, ok := st.refused[name]; ok {
		return name + ": refused already (skipped)"
	}
	st.refused[name] = g.name
	st.w.SetRefused(g.name, name, true)
	st.writeRefusals()
	return fmt.Sprintf("bindings of %s refused from now (%s)", name, ownership(g))
}

func (st *stress) opAllow() string {
	if len(st.refused) == 0 {
		return "nothing refused (skipped)"
	}
	names := make([]string, 0, len(st.refused))
	for n := range st.refused {
		names = append(names, n)
	}
	sort.Strings(names)
	name := names[st.rng.IntN(len(names))]
	group := st.refused[name]
	delete(st.refused, name)
	st.writeRefusals()
	st.w.SetRefused(group, name, false)
	return "bindings of " + name + " allowed again"
}

func ownership(g *stressGang) string {
	if g.owned {
		return "owned"
	}
	return "bare"
}

func (st *stress) opRestart() string {
	began := time.Now()
	st.s.restartScheduler(stressArgs)
	st.restarts++
	return fmt.Sprintf("scheduler stopped and started again in %s", time.Since(began).Round(time.Millisecond))
}

func (st *stress) opPause() string {
	d := time.Duration(500+st.rng.IntN(2500)) * time.Millisecond
	time.Sleep(d)
	return "idle " + d.String()
}

// --- refused bindings -------------------------------------------------------------

// installRefusalPolicy makes the API server refuse the bindings of the pods
// that the ConfigMap refused-bindings names (a ValidatingAdmissionPolicy on
// pods/binding with the ConfigMap as its parameter), and checks that it
// does.
func (st *stress) installRefusalPolicy() {
	cs, ns := st.s.cs, st.s.ns
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(st.ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: refusedBindings}}, metav1.CreateOptions{}); err != nil {
		st.fatalf("creating ConfigMap %s: %v", refusedBindings, err)
	}
	name := "stress-refuse-bindings-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			ParamKind:     &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/binding"}},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!has(params.data) || !(object.metadata.name in params.data)",
				Message:    refusalMessage,
			}},
		},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(st.ctx, policy, metav1.CreateOptions{}); err != nil {
		st.fatalf("creating the binding policy: %v", err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: name,
			ParamRef: &admissionregistrationv1.ParamRef{
				Name: refusedBindings, Namespace: ns,
				ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction),
			},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(st.ctx, binding, metav1.CreateOptions{}); err != nil {
		st.fatalf("creating the binding policy binding: %v", err)
	}
	st.t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// A pod no scheduler handles probes, with dry-run bindings, that the
	// policy refuses what the ConfigMap names, and only that.
	probe := testutil.Pod(ns, stressProbe, "", "1m", "1Mi")
	probe.Spec.SchedulerName = "nobody"
	if _, err := cs.CoreV1().Pods(ns).Create(st.ctx, probe, metav1.CreateOptions{}); err != nil {
		st.fatalf("creating the probe pod: %v", err)
	}
	st.setRefusals(map[string]string{stressProbe: ""})
	st.waitProbe(true)
	st.setRefusals(nil)
	st.waitProbe(false)
}

func (st *stress) writeRefusals() {
	data := map[string]string{}
	for n := range st.refused {
		data[n] = ""
	}
	st.setRefusals(data)
}

func (st *stress) setRefusals(data map[string]string) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := st.s.cs.CoreV1().ConfigMaps(st.s.ns).Get(st.ctx, refusedBindings, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cm.Data = data
		_, err = st.s.cs.CoreV1().ConfigMaps(st.s.ns).Update(st.ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		st.errorf("writing the refused bindings: %v", err)
	}
}

// waitProbe waits until the API server refuses (or allows) the probe's
// binding, i.e. until it acts on the latest ConfigMap.
func (st *stress) waitProbe(refused bool) {
	var last error
	err := wait.PollUntilContextTimeout(st.ctx, 100*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		last = st.s.cs.CoreV1().Pods(st.s.ns).Bind(ctx, &v1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: stressProbe},
			Target:     v1.ObjectReference{Kind: "Node", Name: st.nodes[0].name},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		isRefused := last != nil && strings.Contains(last.Error(), refusalMessage)
		return isRefused == refused && (isRefused || last == nil), nil
	})
	if err != nil {
		st.fatalf("the API server never switched the binding policy (refusing=%v): last answer %v", refused, last)
	}
}

// --- the end: quiet, drain, gauges --------------------------------------------------

// quiesce ends the chaos: every binding is allowed again (and the API
// server acts on it), and the cluster rests for the grace, so a group left
// partly bound is caught by the watch.
func (st *stress) quiesce() {
	st.logf("quiet: allowing every binding, no more operations")
	for pod, group := range st.refused {
		st.w.SetRefused(group, pod, false)
	}
	st.refused = map[string]string{}
	st.setRefusals(map[string]string{stressProbe: ""})
	st.waitProbe(true)
	st.setRefusals(nil)
	st.waitProbe(false)
	st.podGC()
	time.Sleep(stressGrace + 2*time.Second)
	st.logf("quiet for %s; partial episodes so far: %s", stressGrace+2*time.Second, st.w.Stats())
}

// quorumFits reports whether minMember members of g fit on the current
// nodes when they are empty: identical members, each node holds as many as
// its cpu, memory and pod count allow, within one domain of g's topology.
func (st *stress) quorumFits(g *stressGang) bool {
	need := int64(g.minMember)
	cpu := resource.MustParse(g.cpu)
	mem := resource.MustParse(g.memory)
	perNode := func(n *stressNode) int64 {
		ncpu := resource.MustParse(n.cpu)
		nmem := resource.MustParse(n.memory)
		return min(ncpu.MilliValue()/cpu.MilliValue(), nmem.Value()/mem.Value(), 110)
	}
	domains := map[string]int64{}
	for _, n := range st.liveNodes() {
		switch g.topology {
		case "":
			domains[""] += perNode(n)
		case v1.LabelHostname:
			domains[n.name] += perNode(n)
		case rackLabel:
			domains[n.rack] += perNode(n)
		}
	}
	for _, room := range domains {
		if room >= need {
			return true
		}
	}
	return false
}

// drain deletes the plain pods and every gang that cannot bind (no
// PodGroup, fewer live members than minMember, a quorum that does not fit
// on the empty cluster), then waits for each remaining gang to bind at
// least minMember members, deleting the gangs that did, so the others find
// their room. A gang that fits and does not bind while nothing else
// completes for stressStall fails the test.
func (st *stress) drain() {
	ns := st.s.ns
	// A group partly bound now is judged before it is deleted: its episode
	// ends, is excused, or outlives the grace.
	if open := st.w.WaitEpisodes(stressGrace + 5*time.Second); len(open) > 0 {
		st.errorf("partial episodes neither ended nor were judged within %s: %v", stressGrace+5*time.Second, open)
	}
	for _, p := range st.plains {
		if !p.deleted {
			p.deleted = true
			st.deletePod(p.name, "plain pod deleted by the drain")
		}
	}
	list, err := st.s.cs.CoreV1().Pods(ns).List(st.ctx, metav1.ListOptions{})
	if err != nil {
		st.fatalf("listing pods: %v", err)
	}
	live := map[string]int{}
	for _, p := range list.Items {
		if g := p.Labels[podgroup.Label]; g != "" && p.DeletionTimestamp == nil {
			live[g]++
		}
	}
	var expected []*stressGang
	for _, g := range st.liveGangs(nil) {
		members := live[g.name]
		if g.owned {
			members = g.size // its controller recreates any that is missing
		}
		switch {
		case !g.pgExists:
			st.logf("drain: %s cannot bind (no PodGroup): %s", g, st.deleteGang(g, "deleted by the drain"))
		case members < int(g.minMember):
			st.logf("drain: %s cannot bind (%d live members): %s", g, members, st.deleteGang(g, "deleted by the drain"))
		case !st.quorumFits(g):
			st.logf("drain: %s cannot bind (its quorum does not fit on the empty cluster): %s", g, st.deleteGang(g, "deleted by the drain"))
		default:
			expected = append(expected, g)
		}
	}
	st.logf("drain: %d gangs whose quorum fits on the empty cluster must bind", len(expected))
	began, lastProgress := time.Now(), time.Now()
	for len(expected) > 0 {
		if st.t.Failed() {
			return
		}
		list, err := st.s.cs.CoreV1().Pods(ns).List(st.ctx, metav1.ListOptions{})
		if err != nil {
			st.fatalf("listing pods: %v", err)
		}
		bound := map[string]int{}
		for _, p := range list.Items {
			if g := p.Labels[podgroup.Label]; g != "" && p.Spec.NodeName != "" {
				bound[g]++
			}
		}
		var left []*stressGang
		for _, g := range expected {
			if bound[g.name] >= int(g.minMember) {
				st.logf("drain: %s bound %d members after %s: %s", g.name, bound[g.name], time.Since(began).Round(100*time.Millisecond), st.deleteGang(g, "deleted by the drain once bound"))
				lastProgress = time.Now()
				continue
			}
			left = append(left, g)
		}
		expected = left
		if len(expected) > 0 && time.Since(lastProgress) > stressStall {
			var b strings.Builder
			for _, g := range expected {
				fmt.Fprintf(&b, "\n  %s: %d bound\n%s", g, bound[g.name], st.explain(list.Items, g.name))
			}
			st.errorf("%d gangs whose quorum fits on the empty cluster did not bind within %s while nothing else completed:%s\nwatch traces:\n%s",
				len(expected), stressStall, b.String(), st.w.Traces(names(expected)...))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	st.logf("drain: every gang that fits bound in %s", time.Since(began).Round(100*time.Millisecond))
}

func names(gangs []*stressGang) []string {
	out := make([]string, len(gangs))
	for i, g := range gangs {
		out[i] = g.name
	}
	return out
}

// explain describes a gang's pods (node, PodScheduled) and its events.
func (st *stress) explain(pods []v1.Pod, group string) string {
	var b strings.Builder
	for _, p := range pods {
		if p.Labels[podgroup.Label] != group {
			continue
		}
		fmt.Fprintf(&b, "    pod %s node=%q owner=%v", p.Name, p.Spec.NodeName, metav1.GetControllerOf(&p) != nil)
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled {
				fmt.Fprintf(&b, " PodScheduled=%s %s: %s", c.Status, c.Reason, c.Message)
			}
		}
		if p.Status.NominatedNodeName != "" {
			fmt.Fprintf(&b, " nominated=%s", p.Status.NominatedNodeName)
		}
		b.WriteString("\n")
	}
	evs, _ := testutil.EventsFor(st.ctx, st.s.cs, st.s.ns, "PodGroup", group)
	for _, e := range evs {
		fmt.Fprintf(&b, "    event: %s\n", e)
	}
	return b.String()
}

// deleteEverything deletes every pod and PodGroup of the test and waits
// until the API server lists none.
func (st *stress) deleteEverything() {
	for _, g := range st.liveGangs(nil) {
		st.deleteGang(g, "deleted at the end")
	}
	ns := st.s.ns
	_ = st.s.cs.CoreV1().Pods(ns).DeleteCollection(st.ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
	_ = st.s.pg.SchedulingV1alpha1().PodGroups(ns).DeleteCollection(st.ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	st.recreates.Wait()
	err := wait.PollUntilContextTimeout(st.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := st.s.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		pgs, err := st.s.pg.SchedulingV1alpha1().PodGroups(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0 && len(pgs.Items) == 0, nil
	})
	if err != nil {
		st.errorf("pods or PodGroups still listed a minute after deleting everything: %v", err)
	}
}

// stressGauges are cosched's in-memory counts (pkg/gang/metrics.go).
var stressGauges = []string{
	"cosched_gang_tracked_groups",
	"cosched_gang_reservations",
	"cosched_gang_releasing_members",
}

// checkGauges waits until cosched's gauges, read from the in-process
// registry, are all zero: nothing is left in its memory once every pod and
// PodGroup is gone.
func (st *stress) checkGauges() {
	var last map[string]float64
	var missing []string
	err := wait.PollUntilContextTimeout(st.ctx, 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		last, missing = readGauges(st.t)
		if len(missing) > 0 {
			return false, nil
		}
		for _, v := range last {
			if v != 0 {
				return false, nil
			}
		}
		return true, nil
	})
	switch {
	case len(missing) > 0:
		st.errorf("cosched does not export the gauges %v (pkg/gang/metrics.go, legacyregistry); got %v", missing, last)
	case err != nil:
		st.errorf("cosched's in-memory state did not return to zero within a minute of deleting every pod and PodGroup: %v", last)
	default:
		st.logf("gauges back to zero: %v", last)
	}
}

func readGauges(t *testing.T) (map[string]float64, []string) {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range families {
		if !slices.Contains(stressGauges, mf.GetName()) {
			continue
		}
		out[mf.GetName()] = 0
		for _, m := range mf.GetMetric() {
			out[mf.GetName()] += m.GetGauge().GetValue()
		}
	}
	var missing []string
	for _, name := range stressGauges {
		if _, ok := out[name]; !ok {
			missing = append(missing, name)
		}
	}
	return out, missing
}

// --- the controller the test plays -------------------------------------------------

// podGone recreates a member of a live controller-owned gang that
// disappeared, as its controller would.
func (st *stress) podGone(name string) {
	st.mu.Lock()
	tmpl, ok := st.templates[name]
	st.mu.Unlock()
	if !ok {
		return
	}
	st.recreates.Add(1)
	go func() {
		defer st.recreates.Done()
		err := wait.PollUntilContextTimeout(st.ctx, 100*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
			st.mu.Lock()
			_, still := st.templates[name]
			st.mu.Unlock()
			if !still {
				return true, nil
			}
			created, err := st.s.cs.CoreV1().Pods(st.s.ns).Create(ctx, tmpl.DeepCopy(), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			st.mu.Lock()
			_, still = st.templates[name]
			st.mu.Unlock()
			if !still {
				// The gang was deleted meanwhile.
				st.deletePodObject(created, "recreated after its gang was deleted")
			}
			return true, nil
		})
		if err != nil && st.ctx.Err() == nil {
			st.errorf("the test's controller could not recreate %s: %v", name, err)
		}
	}()
}
