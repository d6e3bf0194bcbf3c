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
// Pods count as members whatever created them (a test, or an operator such
// as KubeRay or training-operator), by the label scheduling.x-k8s.io/pod-group.
type GangWatch struct {
	t     testing.TB
	ctx   context.Context
	cs    kubernetes.Interface
	ns    string
	grace time.Duration

	mu         sync.Mutex
	groups     map[string]*watchedGroup
	gen        int           // the informer whose events count
	replaying  bool          // a new informer is listing: record, do not judge
	informer   chan struct{} // stops the current informer
	pausedAt   time.Time
	episodes   int           // partial episodes seen, transient ones included
	longest    time.Duration // longest partial episode that ended whole or empty
	longestOf  string
	violations []string

	stop chan struct{}
	done chan struct{}
}

type watchedGroup struct {
	minMember int
	bound     map[string]bool // member pod -> bound
	since     time.Time       // start of the current partial episode
	flagged   bool
	// peak is the most members that existed at the same time, and
	// peakBound the most that were bound at the same time.
	peak, peakBound int
}

// WatchGangs starts the watch on namespace ns; it stops when the test ends.
func WatchGangs(ctx context.Context, t testing.TB, cs kubernetes.Interface, ns string, grace time.Duration) *GangWatch {
	t.Helper()
	w := &GangWatch{
		t:      t,
		ctx:    ctx,
		cs:     cs,
		ns:     ns,
		grace:  grace,
		groups: map[string]*watchedGroup{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	w.startInformer()
	go w.tick()
	t.Cleanup(w.close)
	return w
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
		AddFunc:    func(obj interface{}) { w.observe(gen, obj, false) },
		UpdateFunc: func(_, obj interface{}) { w.observe(gen, obj, false) },
		DeleteFunc: func(obj interface{}) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			w.observe(gen, obj, true)
		},
	})
	if err != nil {
		w.t.Fatalf("watching pods: %v", err)
	}
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		w.t.Fatal("the pod watch never synced")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.replaying = false
	now := time.Now()
	for name, g := range w.groups {
		w.judge(name, g, now)
	}
}

// Track starts checking group; create it (or the object an operator turns
// into it) after this call.
func (w *GangWatch) Track(group string, minMember int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.groups[group]; !ok {
		w.groups[group] = &watchedGroup{minMember: minMember, bound: map[string]bool{}}
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
		g.bound = map[string]bool{}
	}
	w.pausedAt = time.Time{}
	w.mu.Unlock()
	w.startInformer()
}

func (w *GangWatch) observe(gen int, obj interface{}, deleted bool) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	name := pod.Labels[podgroup.Label]
	w.mu.Lock()
	defer w.mu.Unlock()
	g, ok := w.groups[name]
	if !ok || name == "" || gen != w.gen {
		return
	}
	if deleted {
		delete(g.bound, pod.Name)
	} else {
		g.bound[pod.Name] = pod.Spec.NodeName != ""
	}
	if !w.replaying {
		w.judge(name, g, time.Now())
	}
}

// judge opens or closes the group's partial episode and keeps its peaks.
// Callers hold mu.
func (w *GangWatch) judge(name string, g *watchedGroup, now time.Time) {
	n := g.boundCount()
	g.peak = max(g.peak, len(g.bound))
	g.peakBound = max(g.peakBound, n)
	partial := n > 0 && n < g.minMember
	switch {
	case partial && g.since.IsZero():
		g.since = now
		w.episodes++
	case !partial && !g.since.IsZero():
		if d := now.Sub(g.since); d > w.longest {
			w.longest, w.longestOf = d, name
		}
		g.since = time.Time{}
	}
}

func (g *watchedGroup) boundCount() int {
	n := 0
	for _, b := range g.bound {
		if b {
			n++
		}
	}
	return n
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
		w.mu.Lock()
		if w.pausedAt.IsZero() {
			for name, g := range w.groups {
				if !g.since.IsZero() && !g.flagged && time.Since(g.since) > w.grace {
					g.flagged = true
					w.violations = append(w.violations, fmt.Sprintf("%s stayed partly bound (%s) for more than %s",
						name, g.describe(), w.grace))
				}
			}
		}
		w.mu.Unlock()
	}
}

func (g *watchedGroup) describe() string {
	return fmt.Sprintf("%d bound of %d members, minMember %d", g.boundCount(), len(g.bound), g.minMember)
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

// Check waits until the watch has caught up with the API server (a fresh
// list agrees on every tracked group), then fails the test for every
// violation so far and for every tracked group that is partly bound now.
func (w *GangWatch) Check() {
	t := w.t
	t.Helper()
	var lag string
	err := wait.PollUntilContextTimeout(w.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		bound, total, err := BoundByGroup(ctx, w.cs, w.ns, "")
		if err != nil {
			return false, nil
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for name, g := range w.groups {
			if g.boundCount() != bound[name] || len(g.bound) != total[name] {
				lag = fmt.Sprintf("%s: watch %s, API server %d bound of %d", name, g.describe(), bound[name], total[name])
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("the pod watch did not catch up with the API server within a minute (%s)", lag)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.violations {
		t.Errorf("all-or-nothing violated: %s", v)
	}
	var names []string
	for name := range w.groups {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if g := w.groups[name]; !g.since.IsZero() && !g.flagged {
			t.Errorf("all-or-nothing violated: %s is partly bound (%s)", name, g.describe())
		}
	}
}

// Stats: partial episodes seen (all transient when Check passes) and the
// longest one.
func (w *GangWatch) Stats() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.episodes == 0 {
		return "no group was ever seen partly bound"
	}
	return fmt.Sprintf("%d transient partial-bind episodes while members were being bound, longest %s (%s)",
		w.episodes, w.longest.Round(time.Millisecond), w.longestOf)
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
