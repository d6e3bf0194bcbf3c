package testutil

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/cosched/cosched/pkg/podgroup"
)

// GangWatch follows every pod of one namespace through a watch and checks
// the all-or-nothing promise on each state the API server went through: a
// tracked group has either no member bound or at least minMember.
//
// Kubernetes binds pods one at a time, so between the first and the last
// bind of a released gang the API server briefly holds a part of it. Such an
// episode is allowed if it ends, whole, within grace; time while the watch is
// paused (the API server or the scheduler is away on purpose) does not count.
// An episode that outlives grace, or a group left partly bound at the end, is
// a violation.
//
// A test that changes its groups itself (TestGangInvariants) tells the watch
// before each change (DeletingPod, PodGroupSet, PodGroupDeleted, SetRefused):
// an episode the test caused is excused, not judged. A group tracked with a
// topology key must also place its quorum in one domain.
//
// Pods count as members whatever created them (a test, or an operator such
// as KubeRay or training-operator), by the label scheduling.x-k8s.io/pod-group.
// Each group keeps a trace of its last changes, reported with its violations.
type GangWatch struct {
	t         testing.TB
	ctx       context.Context
	cs        kubernetes.Interface
	ns        string
	grace     time.Duration
	epoch     time.Time // trace times count from it
	prefix    string    // starts every failure the watch reports
	onDeleted func(pod string)

	mu         sync.Mutex
	groups     map[string]*watchedGroup
	gen        int           // the informer whose events count
	replaying  bool          // a new informer is listing: record, do not judge
	informer   chan struct{} // stops the current informer
	pausedAt   time.Time
	byTest     map[types.UID]string // pods the test deletes -> why
	refusals   map[string][]refusal // pod -> when the test refused its bindings
	nodeLabels map[string]map[string]string
	episodes   int            // partial episodes seen, transient ones included
	excused    map[string]int // excused episodes by kind of excuse
	longest    time.Duration  // longest partial episode not excused that ended
	longestOf  string
	violations []string

	stop chan struct{}
	done chan struct{}
}

type watchedGroup struct {
	name        string
	minMember   int
	topology    string
	hasPodGroup bool
	members     map[string]*watchedMember
	since       time.Time // start of the current partial episode
	excuse      string    // the test's change that caused it, if any
	flagged     bool
	whole       bool
	// domainCheckAt is when to check that the quorum shares a domain.
	domainCheckAt time.Time
	spanning      bool
	// peak is the most members that existed at the same time, and
	// peakBound the most that were bound at the same time.
	peak, peakBound int
	trace           []string
}

type watchedMember struct {
	uid   types.UID
	node  string
	owned bool // it has a controller, which recreates it
	// nominated and condition only feed the trace.
	nominated, condition string
}

type refusal struct {
	from, to time.Time // to is zero while the refusal lasts
}

// domainSettle is how long after a topology group became whole its quorum
// must share a domain: the admitted members bind in any order.
const domainSettle = 3 * time.Second

// WatchOption configures WatchGangs.
type WatchOption func(*GangWatch)

// TraceEpoch makes trace times count from epoch (default: when the watch
// starts), so that they match the test's own log.
func TraceEpoch(epoch time.Time) WatchOption { return func(w *GangWatch) { w.epoch = epoch } }

// FailurePrefix starts every failure the watch reports, e.g. how to replay
// a seed.
func FailurePrefix(prefix string) WatchOption { return func(w *GangWatch) { w.prefix = prefix + " " } }

// OnMemberDeleted calls fn, outside the watch's lock, after the deletion of
// a tracked member: a test that plays the members' controller recreates it.
func OnMemberDeleted(fn func(pod string)) WatchOption {
	return func(w *GangWatch) { w.onDeleted = fn }
}

// WatchGangs starts the watch on namespace ns; it stops when the test ends.
func WatchGangs(ctx context.Context, t testing.TB, cs kubernetes.Interface, ns string, grace time.Duration, opts ...WatchOption) *GangWatch {
	t.Helper()
	w := &GangWatch{
		t:          t,
		ctx:        ctx,
		cs:         cs,
		ns:         ns,
		grace:      grace,
		epoch:      time.Now(),
		groups:     map[string]*watchedGroup{},
		byTest:     map[types.UID]string{},
		refusals:   map[string][]refusal{},
		nodeLabels: map[string]map[string]string{},
		excused:    map[string]int{},
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, opt := range opts {
		opt(w)
	}
	w.startInformer()
	go w.tick()
	t.Cleanup(w.close)
	return w
}

func (w *GangWatch) errorf(format string, args ...any) {
	w.t.Helper()
	w.t.Errorf("%s"+format, append([]any{w.prefix}, args...)...)
}

// startInformer lists and watches the namespace's pods with a new informer.
// While it lists, pods are recorded without judging the groups (a list
// replays a whole gang pod by pod); once it has synced every group is judged
// on the listed state.
func (w *GangWatch) startInformer() {
	w.t.Helper()
	w.mu.Lock()
	w.gen++
	gen := w.gen
	w.replaying = true
	stop := make(chan struct{})
	w.informer = stop
	w.mu.Unlock()

	factory := informers.NewSharedInformerFactoryWithOptions(w.cs, 0, informers.WithNamespace(w.ns))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.observe(gen, obj, false) },
		UpdateFunc: func(_, obj any) { w.observe(gen, obj, false) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			w.observe(gen, obj, true)
		},
	})
	if err != nil {
		w.t.Fatalf("%swatching pods: %v", w.prefix, err)
	}
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		w.t.Fatalf("%sthe pod watch never synced", w.prefix)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.replaying = false
	now := time.Now()
	for _, g := range w.groups {
		w.judge(g, now, "")
	}
}

// Gang is a group as the test that creates it describes it to the watch.
type Gang struct {
	Name      string
	MinMember int
	// Topology is the PodGroup's topology key: once the group becomes whole
	// by the scheduler's doing, minMember of its bound members must share
	// one domain within domainSettle (AddNode gives the nodes' labels).
	Topology string
	// PodGroupLater: the PodGroup does not exist yet, and PodGroupSet will
	// tell when it does. A group without one has no quorum to keep.
	PodGroupLater bool
}

// Track starts checking group; create it (or the object an operator turns
// into it) after this call.
func (w *GangWatch) Track(group string, minMember int) {
	w.TrackGang(Gang{Name: group, MinMember: minMember})
}

// TrackGang is Track for a test that says more about the group.
func (w *GangWatch) TrackGang(gang Gang) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.groups[gang.Name]; !ok {
		w.groups[gang.Name] = &watchedGroup{
			name: gang.Name, minMember: gang.MinMember, topology: gang.Topology,
			hasPodGroup: !gang.PodGroupLater, members: map[string]*watchedMember{},
		}
	}
}

// Untrack stops checking groups, before the test deletes them.
func (w *GangWatch) Untrack(groups ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range groups {
		delete(w.groups, g)
	}
}

// Tracef adds a line to group's trace, e.g. what the test does to it.
func (w *GangWatch) Tracef(group, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if g, ok := w.groups[group]; ok {
		w.tracef(g, format, args...)
	}
}

// tracef: see Tracef. Callers hold mu.
func (w *GangWatch) tracef(g *watchedGroup, format string, args ...any) {
	const keep = 80
	g.trace = append(g.trace, w.now()+" "+fmt.Sprintf(format, args...))
	if len(g.trace) > keep {
		g.trace = g.trace[len(g.trace)-keep:]
	}
}

func (w *GangWatch) now() string {
	return fmt.Sprintf("+%6.2fs", time.Since(w.epoch).Seconds())
}

// DeletingGroup tells the watch that the test deletes group (then its pods
// with DeletingPod). The group stays tracked; its pending domain check is
// dropped, the test having changed the group.
func (w *GangWatch) DeletingGroup(group string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if g, ok := w.groups[group]; ok {
		w.tracef(g, "the test deletes the gang")
		g.domainCheckAt = time.Time{}
	}
}

// DeletingPod tells the watch, before the API call, that the test deletes
// pod: an episode the deletion causes is the test's.
func (w *GangWatch) DeletingPod(pod *v1.Pod, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byTest[pod.UID] = why
}

// AddNode gives the watch a node's labels, for the domain check.
func (w *GangWatch) AddNode(n *v1.Node) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nodeLabels[n.Name] = n.Labels
}

// SetRefused tells the watch that the test makes the API server refuse
// (on) or allow again the bindings of pod, a member of group: a bare group
// keeps its bound siblings when a member's binding fails (docs/reliability.md).
func (w *GangWatch) SetRefused(group, pod string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rs := w.refusals[pod]
	now := time.Now()
	switch {
	case on && (len(rs) == 0 || !rs[len(rs)-1].to.IsZero()):
		w.refusals[pod] = append(rs, refusal{from: now})
	case !on && len(rs) > 0 && rs[len(rs)-1].to.IsZero():
		rs[len(rs)-1].to = now
	}
	if g, ok := w.groups[group]; ok {
		w.tracef(g, "bindings of %s refused=%v", pod, on)
	}
}

// refusedDuring reports whether the test refused pod's bindings at some
// time in [from, to]. Callers hold mu.
func (w *GangWatch) refusedDuring(pod string, from, to time.Time) bool {
	for _, r := range w.refusals[pod] {
		end := r.to
		if end.IsZero() {
			end = to
		}
		if !r.from.After(to) && !end.Before(from) {
			return true
		}
	}
	return false
}

// PodGroupSet tells the watch, before the API call, that the test creates
// the group's PodGroup or changes its minMember. The watch judges by what
// the test did rather than by a PodGroup informer, whose events could come
// after the pods' and make a binding look like it happened without a
// PodGroup.
func (w *GangWatch) PodGroupSet(group string, minMember int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g, ok := w.groups[group]
	if !ok {
		return
	}
	old, created := g.minMember, !g.hasPodGroup
	g.hasPodGroup, g.minMember = true, int(minMember)
	cause := ""
	switch {
	case created:
		w.tracef(g, "PodGroup created with minMember %d", g.minMember)
		cause = fmt.Sprintf("PodGroup created by the test with minMember %d", g.minMember)
	case old != g.minMember:
		w.tracef(g, "minMember %d -> %d", old, g.minMember)
		if g.minMember > old {
			// A goal raised while members are bound, or being bound.
			cause = fmt.Sprintf("minMember raised by the test from %d to %d", old, g.minMember)
		}
	default:
		return
	}
	w.judge(g, time.Now(), cause)
}

// PodGroupDeleted tells the watch, before the API call, that the test
// deletes the group's PodGroup: without it a group has no quorum to keep,
// so an episode open now, or one that opens before PodGroupSet, is the
// test's.
func (w *GangWatch) PodGroupDeleted(group string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g, ok := w.groups[group]
	if !ok || !g.hasPodGroup {
		return
	}
	g.hasPodGroup = false
	w.tracef(g, "PodGroup deleted (minMember %d kept for judging)", g.minMember)
	w.judge(g, time.Now(), "PodGroup deleted by the test")
}

// Pause stops the watch and the clock of partial episodes while the test
// takes something away on purpose; Resume lists everything afresh (a watch
// that lost its API server may take its backoff, up to 30 s, to come back)
// and starts the clock again.
func (w *GangWatch) Pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pausedAt.IsZero() {
		return
	}
	w.pausedAt = time.Now()
	close(w.informer)
	w.gen++ // late events of the stopped informer no longer count
}

// Resume: see Pause.
func (w *GangWatch) Resume() {
	w.t.Helper()
	w.mu.Lock()
	if w.pausedAt.IsZero() {
		w.mu.Unlock()
		return
	}
	away := time.Since(w.pausedAt)
	for _, g := range w.groups {
		if !g.since.IsZero() {
			g.since = g.since.Add(away)
		}
		if !g.domainCheckAt.IsZero() {
			g.domainCheckAt = g.domainCheckAt.Add(away)
		}
		g.members = map[string]*watchedMember{}
		w.tracef(g, "the watch resumes after %s away and lists the pods again", away.Round(time.Millisecond))
	}
	w.pausedAt = time.Time{}
	w.mu.Unlock()
	w.startInformer()
}

func (w *GangWatch) observe(gen int, obj any, deleted bool) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	name := pod.Labels[podgroup.Label]
	w.mu.Lock()
	g, ok := w.groups[name]
	if !ok || name == "" || gen != w.gen {
		w.mu.Unlock()
		return
	}
	changed, cause := w.record(g, pod, deleted)
	if changed {
		w.judge(g, time.Now(), cause)
	}
	w.mu.Unlock()
	if changed && deleted && w.onDeleted != nil {
		w.onDeleted(pod.Name)
	}
}

// record applies a pod's event to its group and traces it. It reports
// whether the group's members or bindings changed, and the test's change
// that caused it, if any. Callers hold mu.
func (w *GangWatch) record(g *watchedGroup, pod *v1.Pod, deleted bool) (changed bool, cause string) {
	m := g.members[pod.Name]
	switch {
	case deleted:
		if m == nil || m.uid != pod.UID {
			return false, "" // an older pod of that name
		}
		delete(g.members, pod.Name)
		why, byTest := w.byTest[pod.UID]
		delete(w.byTest, pod.UID)
		if !byTest {
			w.tracef(g, "%s deleted, not by the test (was on %q)", pod.Name, m.node)
			return true, ""
		}
		w.tracef(g, "%s deleted (%s; was on %q)", pod.Name, why, m.node)
		// An episode the test's deletion causes or prolongs is the test's:
		// a bound member gone, or a bare one, which no controller brings
		// back, while the others were being bound.
		if m.node != "" || !m.owned {
			cause = fmt.Sprintf("%s: %s deleted while on %q", why, pod.Name, m.node)
		}
		return true, cause
	case m == nil || m.uid != pod.UID:
		g.members[pod.Name] = &watchedMember{uid: pod.UID, node: pod.Spec.NodeName, owned: metav1.GetControllerOf(pod) != nil}
		w.tracef(g, "%s created (uid %s, node %q)", pod.Name, shortUID(pod.UID), pod.Spec.NodeName)
		return true, ""
	case m.node != pod.Spec.NodeName:
		m.node = pod.Spec.NodeName
		w.tracef(g, "%s bound to %s", pod.Name, pod.Spec.NodeName)
		return true, ""
	}
	// Not a change the invariants judge; the trace keeps what explains the
	// scheduler's choices.
	if pod.Status.NominatedNodeName != m.nominated {
		m.nominated = pod.Status.NominatedNodeName
		w.tracef(g, "%s nominated to %q", pod.Name, m.nominated)
	}
	if c := scheduledCondition(pod); c != m.condition {
		m.condition = c
		if c != "" {
			w.tracef(g, "%s %s", pod.Name, c)
		}
	}
	return false, ""
}

// scheduledCondition is a pending pod's PodScheduled=False reason and
// message, shortened.
func scheduledCondition(pod *v1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
			msg := c.Message
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			return "PodScheduled=False " + c.Reason + ": " + msg
		}
	}
	return ""
}

func shortUID(uid types.UID) string {
	s := string(uid)
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// judge opens or closes the group's partial episode, keeps its peaks and
// schedules its domain check. cause, when set, is the test's own change that
// this judgement follows. Nothing is judged while a new informer lists.
// Callers hold mu.
func (w *GangWatch) judge(g *watchedGroup, now time.Time, cause string) {
	if w.replaying {
		return
	}
	if cause == "" && !g.hasPodGroup {
		cause = "no PodGroup (not created yet, or deleted by the test)"
	}
	n := g.boundCount()
	g.peak = max(g.peak, len(g.members))
	g.peakBound = max(g.peakBound, n)
	partial := n > 0 && n < g.minMember
	excused := g.excuse != ""
	switch {
	case partial && g.since.IsZero():
		g.since, g.excuse, g.flagged = now, cause, false
		w.episodes++
		if cause != "" {
			w.tracef(g, "partial episode opens, excused (%s): %s", cause, g.describe())
		} else {
			w.tracef(g, "partial episode opens: %s", g.describe())
		}
	case partial && cause != "" && g.excuse == "":
		g.excuse = cause
		w.tracef(g, "episode excused (%s): %s", cause, g.describe())
	case !partial && !g.since.IsZero():
		d := now.Sub(g.since)
		if g.excuse == "" && d > w.longest {
			w.longest, w.longestOf = d, g.name
		}
		if g.excuse != "" {
			w.excused[excuseKind(g.excuse)]++
		}
		w.tracef(g, "partial episode ends after %s: %s", d.Round(time.Millisecond), g.describe())
		g.since, g.excuse, g.flagged = time.Time{}, "", false
	}
	whole := g.minMember > 0 && n >= g.minMember
	switch {
	case whole && !g.whole && !excused && cause == "" && g.topology != "":
		g.domainCheckAt = now.Add(domainSettle)
	case !whole || cause != "":
		g.domainCheckAt = time.Time{}
	}
	g.whole = whole
}

func excuseKind(excuse string) string {
	switch {
	case strings.HasPrefix(excuse, "GangBindFailed"):
		return "bare bind failure"
	case strings.Contains(excuse, "minMember"):
		return "minMember raised"
	case strings.Contains(excuse, "PodGroup"):
		return "PodGroup deleted or created again"
	default:
		return "deleted by the test"
	}
}

func (g *watchedGroup) boundCount() int {
	n := 0
	for _, m := range g.members {
		if m.node != "" {
			n++
		}
	}
	return n
}

// owned: the group's members have a controller, which recreates them.
func (g *watchedGroup) owned() bool {
	for _, m := range g.members {
		if m.owned {
			return true
		}
	}
	return false
}

func (g *watchedGroup) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bound of %d members, minMember %d", g.boundCount(), len(g.members), g.minMember)
	switch {
	case g.owned():
		b.WriteString(", owned")
	case len(g.members) > 0:
		b.WriteString(", bare")
	}
	if g.topology != "" {
		fmt.Fprintf(&b, ", topology %s", g.topology)
	}
	if !g.hasPodGroup {
		b.WriteString(", no PodGroup")
	}
	return b.String()
}

// checkDomain runs domainSettle after a group with a topology key became
// whole by the scheduler's doing, if it is still whole and the test did
// nothing to it since: minMember of its bound members must share one domain
// (the plan places the quorum; members beyond it may join elsewhere).
// Callers hold mu.
func (w *GangWatch) checkDomain(g *watchedGroup) {
	if g.topology == "" || g.spanning {
		return
	}
	domains := map[string][]string{}
	largest := 0
	for name, m := range g.members {
		if m.node == "" {
			continue
		}
		value, ok := w.nodeLabels[m.node][g.topology]
		if !ok {
			value = "<no " + g.topology + " on " + m.node + ">"
		}
		domains[value] = append(domains[value], name+"@"+m.node)
		largest = max(largest, len(domains[value]))
	}
	if largest < g.minMember {
		g.spanning = true
		for _, d := range domains {
			sort.Strings(d)
		}
		w.violate(g, fmt.Sprintf("%s (topology %s, minMember %d) became whole, and %s later no domain holds its quorum: %v",
			g.name, g.topology, g.minMember, domainSettle, domains))
	}
}

// violate records a violation with the group's trace and logs it at once.
// Callers hold mu.
func (w *GangWatch) violate(g *watchedGroup, what string) {
	msg := fmt.Sprintf("%s %s\n  trace of %s:\n    %s", w.now(), what, g.name, strings.Join(g.trace, "\n    "))
	w.violations = append(w.violations, msg)
	w.t.Logf("VIOLATION %s%s", w.prefix, msg)
}

func (w *GangWatch) tick() {
	defer close(w.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		for _, o := range w.overdue(time.Now()) {
			w.judgeOverdue(o)
		}
	}
}

// overdueEpisode is a partial episode that outlived the grace without an
// excuse, as the tick saw it.
type overdueEpisode struct {
	g        *watchedGroup
	since    time.Time
	describe string
	members  []string
	// lookForExcuse: the group is bare and the test refused bindings, so
	// the documented exception may apply.
	lookForExcuse bool
}

// overdue runs the domain checks that are due and returns the episodes
// that outlived the grace without an excuse.
func (w *GangWatch) overdue(now time.Time) []overdueEpisode {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pausedAt.IsZero() {
		return nil
	}
	var late []overdueEpisode
	for _, g := range w.groups {
		if !g.domainCheckAt.IsZero() && now.After(g.domainCheckAt) {
			g.domainCheckAt = time.Time{}
			w.checkDomain(g)
		}
		if !g.since.IsZero() && g.excuse == "" && !g.flagged && now.Sub(g.since) > w.grace {
			o := overdueEpisode{g: g, since: g.since, describe: g.describe(), lookForExcuse: !g.owned() && len(w.refusals) > 0}
			for m := range g.members {
				o.members = append(o.members, m)
			}
			late = append(late, o)
		}
	}
	return late
}

// judgeOverdue excuses an overdue episode by the documented exception or
// records a violation with the group's events. The API calls run outside
// mu; an episode that ended meanwhile was still overdue.
func (w *GangWatch) judgeOverdue(o overdueEpisode) {
	g := o.g
	excuse := ""
	if o.lookForExcuse {
		excuse = w.bindFailureExcuse(g.name, o.since)
	}
	events := ""
	if excuse == "" {
		ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
		events = groupEvents(NamespaceEvents(ctx, w.cs, w.ns), g.name, o.members)
		cancel()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	same := g.since.Equal(o.since)
	if excuse != "" {
		if same && g.excuse == "" {
			g.excuse = excuse
			w.tracef(g, "episode excused: %s", excuse)
		}
		return
	}
	if same {
		g.flagged = true
	}
	if events == "" {
		events = "    none"
	}
	w.violate(g, fmt.Sprintf("%s stayed partly bound (%s) for more than %s\n  events of %s:\n%s",
		g.name, o.describe, w.grace, g.name, events))
}

// bindFailureExcuse finds the documented exception for a bare group: a
// GangBindFailed event on its PodGroup naming a member whose binding the
// test refused. It returns the excuse, or "".
func (w *GangWatch) bindFailureExcuse(group string, since time.Time) string {
	list, err := w.cs.EventsV1().Events(w.ns).List(w.ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	prefix := "member " + w.ns + "/"
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range list.Items {
		if e.Regarding.Kind != "PodGroup" || e.Regarding.Name != group || e.Reason != "GangBindFailed" {
			continue
		}
		at := e.EventTime.Time
		if e.Series != nil {
			at = e.Series.LastObservedTime.Time
		}
		if at.IsZero() {
			at = e.DeprecatedLastTimestamp.Time
		}
		if at.Before(since.Add(-5 * time.Second)) {
			continue
		}
		rest, ok := strings.CutPrefix(e.Note, prefix)
		if !ok {
			continue
		}
		member, _, _ := strings.Cut(rest, " ")
		if w.refusedDuring(member, since.Add(-w.grace), time.Now()) {
			return fmt.Sprintf("GangBindFailed for %s, whose binding the test refused: bare siblings keep their nodes (docs/reliability.md)", member)
		}
	}
	return ""
}

// groupEvents keeps the lines of NamespaceEvents about group: its PodGroup,
// its members, and pods named after it (members that are gone).
func groupEvents(all, group string, members []string) string {
	about := []string{"PodGroup/" + group + " ", "Pod/" + group + "-"}
	for _, m := range members {
		about = append(about, "Pod/"+m+" ")
	}
	var out []string
	for _, line := range strings.Split(all, "\n") {
		for _, a := range about {
			if strings.Contains(line, a) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// Snapshot describes the tracked groups as the watch sees them now.
func (w *GangWatch) Snapshot(groups ...string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var parts []string
	for _, name := range groups {
		if g, ok := w.groups[name]; ok {
			parts = append(parts, name+": "+g.describe())
		}
	}
	return strings.Join(parts, "; ")
}

// Traces returns the traces of the named groups.
func (w *GangWatch) Traces(groups ...string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, name := range groups {
		if g, ok := w.groups[name]; ok {
			fmt.Fprintf(&b, "  %s (%s):\n    %s\n", name, g.describe(), strings.Join(g.trace, "\n    "))
		}
	}
	return b.String()
}

// Peak returns the most members of group that existed at the same time and
// the most that were bound at the same time, as the watch saw them.
func (w *GangWatch) Peak(group string) (members, bound int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if g, ok := w.groups[group]; ok {
		return g.peak, g.peakBound
	}
	return 0, 0
}

// unjudged returns, sorted, the groups whose partial episode is neither
// excused nor flagged. Callers hold mu.
func (w *GangWatch) unjudged() []string {
	var open []string
	for name, g := range w.groups {
		if !g.since.IsZero() && g.excuse == "" && !g.flagged {
			open = append(open, name)
		}
	}
	sort.Strings(open)
	return open
}

// WaitEpisodes waits until every partial episode has ended, been excused or
// been flagged, and returns the groups whose episode is still open after
// timeout.
func (w *GangWatch) WaitEpisodes(timeout time.Duration) []string {
	var open []string
	_ = wait.PollUntilContextTimeout(w.ctx, 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		open = w.unjudged()
		return len(open) == 0, nil
	})
	return open
}

// Check waits until the watch has caught up with the API server (a fresh
// list agrees on every tracked group), then fails the test for every
// violation so far and for every tracked group that is partly bound now
// without an excuse.
func (w *GangWatch) Check() {
	w.t.Helper()
	w.check(true)
}

// CheckViolations is Check without judging the groups partly bound now, for
// a test that stops midway (its groups may be between two binds).
func (w *GangWatch) CheckViolations() {
	w.t.Helper()
	w.check(false)
}

func (w *GangWatch) check(atRest bool) {
	w.t.Helper()
	var lag string
	err := wait.PollUntilContextTimeout(w.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		bound, total, err := BoundByGroup(ctx, w.cs, w.ns, "")
		if err != nil {
			return false, nil
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for name, g := range w.groups {
			if g.boundCount() != bound[name] || len(g.members) != total[name] {
				lag = fmt.Sprintf("%s: watch %s, API server %d bound of %d", name, g.describe(), bound[name], total[name])
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		w.errorf("the pod watch did not catch up with the API server within a minute (%s)", lag)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.violations {
		w.errorf("invariant violated: %s", v)
	}
	if !atRest {
		return
	}
	for _, name := range w.unjudged() {
		g := w.groups[name]
		w.errorf("all-or-nothing violated: %s is partly bound (%s)\n  trace:\n    %s", name, g.describe(), strings.Join(g.trace, "\n    "))
	}
}

// Stats: partial episodes seen (the ones not excused all transient when
// Check passes), the longest not excused, and the excused ones by kind.
func (w *GangWatch) Stats() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.episodes == 0 {
		return "no group was ever seen partly bound"
	}
	out := fmt.Sprintf("%d partial-bind episodes, the longest not excused %s (%s)",
		w.episodes, w.longest.Round(time.Millisecond), w.longestOf)
	if len(w.excused) > 0 {
		var ex []string
		for k, n := range w.excused {
			ex = append(ex, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(ex)
		out += "; excused: " + strings.Join(ex, ", ")
	}
	return out
}

func (w *GangWatch) close() {
	w.mu.Lock()
	if w.pausedAt.IsZero() {
		close(w.informer) // a paused watch has stopped its informer already
		w.pausedAt = time.Now()
	}
	w.mu.Unlock()
	close(w.stop)
	<-w.done
}

// BoundByGroup lists the namespace's pods matching selector once and counts
// bound members per group label (plain pods under "").
func BoundByGroup(ctx context.Context, cs kubernetes.Interface, ns, selector string) (bound, total map[string]int, err error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, nil, err
	}
	bound, total = map[string]int{}, map[string]int{}
	for _, p := range list.Items {
		g := p.Labels[podgroup.Label]
		total[g]++
		if p.Spec.NodeName != "" {
			bound[g]++
		}
	}
	return bound, total, nil
}
