package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// gangWatch is testutil.GangWatch (the all-or-nothing check on every state
// the API server went through, shared with test/operators) on the suite's
// namespace.
type gangWatch struct{ *testutil.GangWatch }

// watchGangs starts the watch on the suite's namespace; it stops at the end
// of the test.
func (s *suite) watchGangs(grace time.Duration) *gangWatch {
	s.t.Helper()
	return &gangWatch{testutil.WatchGangs(s.ctx, s.t, s.cs, s.ns, grace)}
}

func (w *gangWatch) track(group string, minMember int) { w.Track(group, minMember) }
func (w *gangWatch) untrack(groups ...string)          { w.Untrack(groups...) }
func (w *gangWatch) pause()                            { w.Pause() }
func (w *gangWatch) resume()                           { w.Resume() }
func (w *gangWatch) check()                            { w.Check() }
func (w *gangWatch) stats() string                     { return w.Stats() }
func (w *gangWatch) snapshot(groups ...string) string  { return w.Snapshot(groups...) }

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
	return testutil.BoundByGroup(ctx, s.cs, s.ns, selector)
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
	client, err := testutil.MetricsClient(s.cfg)
	if err != nil {
		s.t.Fatalf("TLS config from KUBECONFIG: %v", err)
	}
	return &coschedMetrics{url: url, client: client}
}

// gc makes cosched collect garbage now: asking its pprof endpoint for a heap
// profile with gc=1 runs runtime.GC first.
func (m *coschedMetrics) gc(ctx context.Context) error {
	_, err := testutil.FetchBody(ctx, m.client, strings.TrimSuffix(m.url, "/metrics")+"/debug/pprof/heap?gc=1")
	return err
}

// sample returns the unlabelled samples named in want.
func (m *coschedMetrics) sample(ctx context.Context, want ...string) (map[string]float64, error) {
	body, err := testutil.FetchBody(ctx, m.client, m.url)
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
