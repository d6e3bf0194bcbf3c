package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// gangWatch follows every pod of the test's namespace through a watch and
// checks the all-or-nothing promise on each state the API server went
// through: a tracked group has either no member bound or at least minMember.
//
// Kubernetes binds pods one at a time, so between the first and the last
// bind of a released gang the API server briefly holds a part of it. Such an
// episode is allowed if it ends, whole, within grace; time while the watch is
// paused (the API server or the scheduler is away on purpose) does not count.
// An episode that outlives grace, or a group left partly bound at the end, is
// a violation.
type gangWatch struct {
	s     *suite
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
}

// watchGangs starts the watch on the suite's namespace; it stops at the end
// of the test.
func (s *suite) watchGangs(grace time.Duration) *gangWatch {
	s.t.Helper()
	w := &gangWatch{
		s:      s,
		grace:  grace,
		groups: map[string]*watchedGroup{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	w.startInformer()
	go w.tick()
	s.t.Cleanup(w.close)
	return w
}

// startInformer lists and watches the namespace's pods with a new informer.
// While it lists, pods are recorded without judging the groups (a list
// replays a whole gang pod by pod); once it has synced every group is judged
// on the listed state.
func (w *gangWatch) startInformer() {
	w.s.t.Helper()
	w.mu.Lock()
	w.gen++
	gen := w.gen
	w.replaying = true
	stop := make(chan struct{})
	w.informer = stop
	w.mu.Unlock()

	factory := informers.NewSharedInformerFactoryWithOptions(w.s.cs, 0, informers.WithNamespace(w.s.ns))
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
		w.s.t.Fatalf("watching pods: %v", err)
	}
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		w.s.t.Fatal("the pod watch never synced")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.replaying = false
	now := time.Now()
	for name, g := range w.groups {
		w.judge(name, g, now)
	}
}

// track starts checking group; create it after this call.
func (w *gangWatch) track(group string, minMember int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.groups[group]; !ok {
		w.groups[group] = &watchedGroup{minMember: minMember, bound: map[string]bool{}}
	}
}

// untrack stops checking group, before the test deletes it.
func (w *gangWatch) untrack(groups ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range groups {
		delete(w.groups, g)
	}
}

// pause stops the watch and the clock of partial episodes while the test
// takes something away on purpose; resume lists everything afresh (a watch
// that lost its API server may take its backoff, up to 30 s, to come back)
// and starts the clock again.
func (w *gangWatch) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pausedAt.IsZero() {
		return
	}
	w.pausedAt = time.Now()
	close(w.informer)
	w.gen++ // late events of the stopped informer no longer count
}

func (w *gangWatch) resume() {
	w.s.t.Helper()
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

func (w *gangWatch) observe(gen int, obj interface{}, deleted bool) {
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

// judge opens or closes the group's partial episode. Callers hold mu.
func (w *gangWatch) judge(name string, g *watchedGroup, now time.Time) {
	n := g.boundCount()
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

func (w *gangWatch) tick() {
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

// snapshot describes the tracked groups as the watch sees them now.
func (w *gangWatch) snapshot(groups ...string) string {
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

// check waits until the watch has caught up with the API server (a fresh
// list agrees on every tracked group), then fails the test for every
// violation so far and for every tracked group that is partly bound now.
func (w *gangWatch) check() {
	t := w.s.t
	t.Helper()
	var lag string
	err := wait.PollUntilContextTimeout(w.s.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		bound, total, err := w.s.boundByGroup(ctx, "")
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

// stats: partial episodes seen (all transient when check passes) and the
// longest one.
func (w *gangWatch) stats() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.episodes == 0 {
		return "no group was ever seen partly bound"
	}
	return fmt.Sprintf("%d transient partial-bind episodes while members were being bound, longest %s (%s)",
		w.episodes, w.longest.Round(time.Millisecond), w.longestOf)
}

func (w *gangWatch) close() {
	w.mu.Lock()
	if w.pausedAt.IsZero() {
		close(w.informer) // a paused watch has stopped its informer already
		w.pausedAt = time.Now()
	}
	w.mu.Unlock()
	close(w.stop)
	<-w.done
}

// --- gangs ----------------------------------------------------------------------

// gangSpec is one group a test creates: minMember, how many members, what
// each asks for, and whether the test expects it to be placed.
type gangSpec struct {
	name      string
	minMember int
	members   int
	cpu, mem  string
	fits      bool
	labels    map[string]string
	// timeout sets scheduleTimeoutSeconds when > 0.
	timeout int32
	// topologyKey sets the cosched.dev/topology-key annotation.
	topologyKey string
	// gateLast holds the last member with a scheduling gate.
	gateLast bool
	// membersFirst creates the members before their PodGroup.
	membersFirst bool
}

const holdGate = "e2e.cosched.dev/hold"

func (s *suite) gangObjects(g gangSpec) (*schedv1alpha1.PodGroup, []*v1.Pod) {
	pg := testutil.PodGroup(s.ns, g.name, int32(g.minMember))
	pg.Labels = copyLabels(g.labels)
	if g.timeout > 0 {
		pg.Spec.ScheduleTimeoutSeconds = &g.timeout
	}
	if g.topologyKey != "" {
		pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: g.topologyKey}
	}
	pods := s.members(g.name, g.members, g.cpu, g.mem)
	for _, p := range pods {
		for k, v := range g.labels {
			p.Labels[k] = v
		}
	}
	if g.gateLast {
		pods[len(pods)-1].Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: holdGate}}
	}
	return pg, pods
}

// createGang creates the PodGroup and its members; safe to call from any
// goroutine (it returns errors instead of failing the test).
func (s *suite) createGang(ctx context.Context, g gangSpec) ([]string, error) {
	pg, pods := s.gangObjects(g)
	createGroup := func() error {
		_, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Create(ctx, pg, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating PodGroup %s: %w", g.name, err)
		}
		return nil
	}
	if !g.membersFirst {
		if err := createGroup(); err != nil {
			return nil, err
		}
	}
	for _, p := range pods {
		if _, err := s.cs.CoreV1().Pods(s.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating pod %s: %w", p.Name, err)
		}
	}
	if g.membersFirst {
		if err := createGroup(); err != nil {
			return nil, err
		}
	}
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Name
	}
	return names, nil
}

// waitServiceAccount waits for the namespace's default ServiceAccount: the
// API server refuses pods until kube-controller-manager has created it, which
// can take a while when that controller is still reconnecting to an API
// server that was restarted.
func (s *suite) waitServiceAccount() {
	s.t.Helper()
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := s.cs.CoreV1().ServiceAccounts(s.ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		s.t.Fatalf("the ServiceAccount %s/default never appeared (is kube-controller-manager running?): %v", s.ns, err)
	}
}

// ungate removes the hold gate from a pod, retrying on conflicts.
func (s *suite) ungate(name string) {
	s.t.Helper()
	deadline := time.Now().Add(bindTimeout)
	for {
		p, err := s.cs.CoreV1().Pods(s.ns).Get(s.ctx, name, metav1.GetOptions{})
		if err == nil {
			p.Spec.SchedulingGates = nil
			_, err = s.cs.CoreV1().Pods(s.ns).Update(s.ctx, p, metav1.UpdateOptions{})
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("removing the scheduling gate of %s: %v", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// boundByGroup lists the namespace's pods matching selector once and counts
// bound members per group label (plain pods under "").
func (s *suite) boundByGroup(ctx context.Context, selector string) (bound, total map[string]int, err error) {
	list, err := s.cs.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
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

// --- the cosched process ----------------------------------------------------------

// coschedIdentity tells whether the cosched process changed: its PID (when
// COSCHED_PID_FILE names the local control plane's pid file) and its
// leader-election Lease (COSCHED_LEASE, default cosched-system/cosched).
type coschedIdentity struct {
	pid         int
	holder      string
	acquired    time.Time
	transitions int32
	haveLease   bool
}

func (id coschedIdentity) String() string {
	out := "pid "
	if id.pid > 0 {
		out += strconv.Itoa(id.pid)
	} else {
		out += "unknown"
	}
	if id.haveLease {
		out += fmt.Sprintf(", Lease holder %q acquired %s, %d transitions", id.holder, id.acquired.Format(time.RFC3339), id.transitions)
	}
	return out
}

func (s *suite) coschedIdentity() coschedIdentity {
	s.t.Helper()
	var id coschedIdentity
	if pid, err := coschedPID(); err == nil {
		id.pid = pid
	} else if os.Getenv("COSCHED_PID_FILE") != "" {
		s.t.Fatalf("cosched is not running: %v", err)
	}
	ns, name := "cosched-system", "cosched"
	if v := os.Getenv("COSCHED_LEASE"); v != "" {
		ns, name, _ = strings.Cut(v, "/")
	}
	lease, err := s.cs.CoordinationV1().Leases(ns).Get(s.ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		s.t.Fatalf("reading the Lease %s/%s: %v", ns, name, err)
	default:
		id.haveLease = true
		id.holder, id.acquired, id.transitions = leaseFields(lease)
	}
	return id
}

func leaseFields(l *coordinationv1.Lease) (string, time.Time, int32) {
	var holder string
	var acquired time.Time
	var transitions int32
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.AcquireTime != nil {
		acquired = l.Spec.AcquireTime.Time
	}
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions
	}
	return holder, acquired, transitions
}

// coschedPID reads COSCHED_PID_FILE and returns the PID if that process is
// alive (not a zombie).
func coschedPID() (int, error) {
	file := os.Getenv("COSCHED_PID_FILE")
	if file == "" {
		return 0, fmt.Errorf("COSCHED_PID_FILE is not set")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	if !processAlive(pid) {
		return pid, fmt.Errorf("process %d (from %s) is gone", pid, file)
	}
	return pid, nil
}

func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z")
}

// rssBytes is VmRSS of a process.
func rssBytes(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// coschedMetrics reads cosched's /metrics (COSCHED_METRICS_URL) with the
// client certificate of KUBECONFIG; nil when the URL is not set.
type coschedMetrics struct {
	url    string
	client *http.Client
}

func (s *suite) coschedMetrics() *coschedMetrics {
	s.t.Helper()
	url := os.Getenv("COSCHED_METRICS_URL")
	if url == "" {
		return nil
	}
	tlsCfg, err := rest.TLSConfigFor(s.cfg)
	if err != nil {
		s.t.Fatalf("TLS config from KUBECONFIG: %v", err)
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	// cosched serves /metrics with a self-signed certificate on loopback.
	tlsCfg.InsecureSkipVerify = true //nolint:gosec // loopback, self-signed
	return &coschedMetrics{url: url, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg},
	}}
}

func (m *coschedMetrics) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// gc makes cosched collect garbage now: asking its pprof endpoint for a heap
// profile with gc=1 runs runtime.GC first.
func (m *coschedMetrics) gc(ctx context.Context) error {
	_, err := m.get(ctx, strings.TrimSuffix(m.url, "/metrics")+"/debug/pprof/heap?gc=1")
	return err
}

// sample returns the unlabelled samples named in want.
func (m *coschedMetrics) sample(ctx context.Context, want ...string) (map[string]float64, error) {
	body, err := m.get(ctx, m.url)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		for _, w := range want {
			if name == w {
				if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
					out[name] = v
				}
			}
		}
	}
	for _, w := range want {
		if _, ok := out[w]; !ok {
			return out, fmt.Errorf("%s has no sample %s", m.url, w)
		}
	}
	return out, nil
}

// --- misc ------------------------------------------------------------------------

// runCommand runs a shell command from the environment with extra
// environment variables and returns its combined output.
func runCommand(ctx context.Context, command string, env ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

func copyLabels(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
