// Command qps measures how fast one scheduler binds a batch of pods on a
// real cluster: gangs (a PodGroup and its members), or the same pods without
// groups. With -start-cmd the pods are created first, while no scheduler
// runs, and the command then starts it: the rate is the scheduler's own,
// from its first bind to its last, not the rate at which this program can
// create pods. It also reads the scheduler's metrics, to show how many
// writes it sent per pod, how long its client-side rate limiter held them
// back, and its peak heap. hack/bench-qps.sh runs it against the local control plane once
// per scheduler and client QPS setting.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/cosched/cosched/test/testutil"
)

type options struct {
	scheduler  string
	groups     int
	size       int
	plain      bool
	cpu        string
	namespace  string
	workers    int
	timeout    time.Duration
	metricsURL string
	startCmd   string
	label      string
	variant    string
}

// result is one line of hack/bench-qps.sh's table.
type result struct {
	Label     string `json:"label"`
	Scheduler string `json:"scheduler"`
	// Variant says how the scheduler ran when not as shipped.
	Variant  string `json:"variant,omitempty"`
	Workload string `json:"workload"`
	Pods     int    `json:"pods"`
	Bound    int    `json:"bound"`
	// Backlog: the pods existed before the scheduler started.
	Backlog   bool    `json:"backlog"`
	CreateSec float64 `json:"createSeconds"`
	// AllBoundSec runs to the last bind seen from the first bind (backlog)
	// or from the first create request.
	AllBoundSec float64 `json:"allBoundSeconds"`
	PodsPerSec  float64 `json:"podsPerSecond"`
	// SteadyPerSec is the bind rate between the 10th and the 90th
	// percentile of bind times, away from the ramp at both ends.
	SteadyPerSec float64 `json:"steadyPodsPerSecond"`
	// Scheduler-side figures, from its /metrics (0 without -metrics-url):
	// writes (POST, PUT, PATCH, DELETE) its clients sent per pod, and the
	// seconds its requests spent waiting in client-side rate limiters, all
	// requests added up.
	WritesPerPod float64 `json:"writesPerPod"`
	ThrottledSec float64 `json:"throttledSeconds"`
	// PeakHeapMB is the largest go_memstats_heap_inuse_bytes the scheduler
	// reported, sampled once a second while the batch ran: the scheduler's
	// own heap, which scheduler_perf cannot tell apart from its in-process
	// API server's.
	PeakHeapMB float64 `json:"peakHeapMB"`
}

func main() {
	var o options
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster (its user should be exempt from API priority and fairness, e.g. the admin)")
	flag.StringVar(&o.scheduler, "scheduler", "cosched", "spec.schedulerName of the pods")
	flag.IntVar(&o.groups, "groups", 1000, "gangs to send")
	flag.IntVar(&o.size, "size", 3, "members per gang (= minMember)")
	flag.BoolVar(&o.plain, "plain", false, "send the same pods without PodGroups or group labels")
	flag.StringVar(&o.cpu, "cpu", "100m", "CPU request of each pod")
	flag.StringVar(&o.namespace, "namespace", "cosched-qps", "namespace for the pods (recreated)")
	flag.IntVar(&o.workers, "workers", 32, "parallel create requests")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long to wait for every pod to be bound")
	flag.StringVar(&o.metricsURL, "metrics-url", "", "the scheduler's /metrics (read with the kubeconfig's client certificate)")
	flag.StringVar(&o.startCmd, "start-cmd", "", "shell command that starts the scheduler once every pod exists (without it, the scheduler runs already and pods are sent to it)")
	flag.StringVar(&o.label, "label", "", "free text naming this run in the output")
	flag.StringVar(&o.variant, "variant", "", "how the scheduler runs when not as shipped (e.g. its feature gates), shown after its name")
	out := flag.String("out", "", "append the result as one JSON line to this file")
	report := flag.String("report", "", "print the Markdown table of the results in this file (what -out appended) and exit")
	flag.Parse()
	if *report != "" {
		if err := printReport(*report); err != nil {
			fmt.Fprintln(os.Stderr, "qps:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*kubeconfig, o, *out); err != nil {
		fmt.Fprintln(os.Stderr, "qps:", err)
		os.Exit(1)
	}
}

func run(kubeconfig string, o options, out string) error {
	if kubeconfig == "" {
		return fmt.Errorf("no cluster: set KUBECONFIG or -kubeconfig")
	}
	if o.groups < 1 || o.size < 1 {
		return fmt.Errorf("-groups and -size must be at least 1")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	// The load generator must not be what limits the rate.
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pgc, err := versioned.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := recreateNamespace(ctx, cs, o.namespace); err != nil {
		return err
	}

	var scrape func() (schedulerMetrics, error)
	if o.metricsURL != "" {
		hc, err := testutil.MetricsClient(cfg)
		if err != nil {
			return err
		}
		scrape = func() (schedulerMetrics, error) {
			body, err := testutil.FetchBody(ctx, hc, o.metricsURL)
			if err != nil {
				return schedulerMetrics{}, err
			}
			return parseSchedulerMetrics(body), nil
		}
	}

	pods := make([]*v1.Pod, 0, o.groups*o.size)
	for g := 0; g < o.groups; g++ {
		group := fmt.Sprintf("g%04d", g)
		if !o.plain {
			pg := testutil.PodGroup(o.namespace, group, int32(o.size))
			if _, err := pgc.SchedulingV1alpha1().PodGroups(o.namespace).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating PodGroup %s: %w", group, err)
			}
		}
		for m := 0; m < o.size; m++ {
			pods = append(pods, newPod(o, group, m))
		}
	}

	// Watch binds from before the first create.
	var mu sync.Mutex
	boundAt := map[string]time.Time{}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(o.namespace))
	inf := factory.Core().V1().Pods().Informer()
	record := func(obj interface{}) {
		p, ok := obj.(*v1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return
		}
		mu.Lock()
		if _, seen := boundAt[p.Name]; !seen {
			boundAt[p.Name] = time.Now()
		}
		mu.Unlock()
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, obj interface{}) { record(obj) },
	}); err != nil {
		return err
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		return fmt.Errorf("pod informer did not sync")
	}

	// A scheduler started by startCmd counts from zero: nothing to read
	// before.
	var before schedulerMetrics
	if scrape != nil && o.startCmd == "" {
		if before, err = scrape(); err != nil {
			return err
		}
	}

	start := time.Now()
	if err := createAll(ctx, cs, pods, o.workers); err != nil {
		return err
	}
	created := time.Since(start)
	if o.startCmd != "" {
		mu.Lock()
		early := len(boundAt)
		mu.Unlock()
		if early > 0 {
			return fmt.Errorf("%d pods were bound before -start-cmd ran: is a scheduler named %q running already?", early, o.scheduler)
		}
		cmd := exec.CommandContext(ctx, "bash", "-c", o.startCmd)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("-start-cmd: %w", err)
		}
	}

	var peakHeap float64
	sampleHeap := func() {
		if scrape == nil {
			return
		}
		// A failed sample is only a missing point; the scrape after the
		// batch reports errors.
		if m, err := scrape(); err == nil {
			peakHeap = max(peakHeap, m.heapInUseBytes)
		}
	}
	deadline := time.Now().Add(o.timeout)
	for tick := 0; ; tick++ {
		mu.Lock()
		n := len(boundAt)
		mu.Unlock()
		if n == len(pods) || time.Now().After(deadline) {
			break
		}
		if tick%10 == 0 {
			sampleHeap()
		}
		time.Sleep(100 * time.Millisecond)
	}

	r := result{
		Label:     o.label,
		Scheduler: o.scheduler,
		Variant:   o.variant,
		Workload:  workloadName(o),
		Pods:      len(pods),
		Backlog:   o.startCmd != "",
		CreateSec: created.Seconds(),
	}
	mu.Lock()
	times := make([]time.Time, 0, len(boundAt))
	for _, t := range boundAt {
		times = append(times, t)
	}
	mu.Unlock()
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	r.Bound = len(times)
	if len(times) > 1 {
		from, binds := start, len(times)
		if r.Backlog {
			from, binds = times[0], len(times)-1
		}
		r.AllBoundSec = times[len(times)-1].Sub(from).Seconds()
		r.PodsPerSec = float64(binds) / r.AllBoundSec
		lo, hi := times[len(times)/10], times[len(times)*9/10]
		if hi.After(lo) {
			r.SteadyPerSec = float64(len(times)*9/10-len(times)/10) / hi.Sub(lo).Seconds()
		}
	}
	if scrape != nil {
		after, err := scrape()
		if err != nil {
			return err
		}
		r.WritesPerPod = (after.writes - before.writes) / float64(len(pods))
		r.ThrottledSec = after.throttledSeconds - before.throttledSeconds
		r.PeakHeapMB = max(peakHeap, after.heapInUseBytes) / (1 << 20)
	}

	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	if out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if r.Bound < r.Pods {
		return fmt.Errorf("only %d of %d pods bound within %s", r.Bound, r.Pods, o.timeout)
	}
	return deleteNamespace(ctx, cs, o.namespace)
}

func workloadName(o options) string {
	if o.plain {
		return fmt.Sprintf("%d plain pods", o.groups*o.size)
	}
	return fmt.Sprintf("%d gangs of %d", o.groups, o.size)
}

// newPod is member number member of group, or a pod of the same name
// without the group label for -plain. It tolerates the taint local-up's fake
// nodes may carry, so that it lands on them either way.
func newPod(o options, group string, member int) *v1.Pod {
	label := group
	if o.plain {
		label = ""
	}
	p := testutil.Pod(o.namespace, fmt.Sprintf("%s-%d", group, member), label, o.cpu, "")
	p.Labels["app"] = "qps"
	p.Spec.SchedulerName = o.scheduler
	p.Spec.Tolerations = []v1.Toleration{{Key: testutil.KWOKNodeAnnotation, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	return p
}

// createAll creates pods in order with workers requests in flight, so a
// gang's members arrive together as an operator's would.
func createAll(ctx context.Context, cs kubernetes.Interface, pods []*v1.Pod, workers int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(pods) {
					return
				}
				if _, err := cs.CoreV1().Pods(pods[i].Namespace).Create(ctx, pods[i], metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("creating pod %s: %w", pods[i].Name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func recreateNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	if err := deleteNamespace(ctx, cs, ns); err != nil {
		return err
	}
	_, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	return err
}

// deleteNamespace removes the pods at once (the fake nodes have no kubelet
// to wait for) and then the namespace, and waits until it is gone, so the
// next run starts on an empty cluster. A busy API server may time out on
// thousands of pods; the namespace's deletion removes whatever is left, and
// the wait for it covers that.
func deleteNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTimeout(err) {
		return fmt.Errorf("deleting the pods of %s: %w", ns, err)
	}
	err = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting namespace %s: %w", ns, err)
	}
	return wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// schedulerMetrics holds what a scheduler process's /metrics says of its
// clients, summed over all of them (the events client included), and its
// heap in use.
type schedulerMetrics struct {
	writes           float64
	throttledSeconds float64
	heapInUseBytes   float64
}

// parseSchedulerMetrics reads rest_client_requests_total (write methods),
// rest_client_rate_limiter_duration_seconds_sum and
// go_memstats_heap_inuse_bytes from the text exposition.
func parseSchedulerMetrics(body []byte) schedulerMetrics {
	var m schedulerMetrics
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := sample(line)
		if !ok {
			continue
		}
		switch {
		case name == "rest_client_requests_total":
			for _, verb := range []string{"POST", "PUT", "PATCH", "DELETE"} {
				if strings.Contains(line, `method="`+verb+`"`) {
					m.writes += value
				}
			}
		case name == "rest_client_rate_limiter_duration_seconds_sum":
			m.throttledSeconds += value
		case name == "go_memstats_heap_inuse_bytes":
			m.heapInUseBytes = value
		}
	}
	return m
}

// sample splits one exposition line into its metric name and value.
func sample(line string) (string, float64, bool) {
	if line == "" || line[0] == '#' {
		return "", 0, false
	}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(line[i+1:], 64)
	if err != nil || math.IsNaN(v) {
		return "", 0, false
	}
	name := line[:i]
	if j := strings.IndexByte(name, '{'); j >= 0 {
		name = name[:j]
	}
	return name, v, true
}

// printReport prints the results in path (JSON lines) as a Markdown table.
func printReport(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rows []result
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r result
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rows = append(rows, r)
	}
	writeReport(os.Stdout, rows)
	return nil
}

// writeReport writes one row per result, with its pods/s and peak heap
// relative to the stock scheduler's (default-scheduler) plain pods of the
// same label.
func writeReport(w io.Writer, rows []result) {
	stock := map[string]result{}
	for _, r := range rows {
		if r.Scheduler == "default-scheduler" {
			stock[r.Label] = r
		}
	}
	fmt.Fprintln(w, "| setting | scheduler | workload | bound | pods/s | / stock | steady pods/s | all bound (s) | scheduler writes/pod | requests held by its rate limiters (mean) | peak heap MB | / stock |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		ratio, heapRatio := "—", "—"
		if s := stock[r.Label]; s.PodsPerSec > 0 {
			ratio = fmt.Sprintf("%.2f", r.PodsPerSec/s.PodsPerSec)
		}
		if s := stock[r.Label]; s.PeakHeapMB > 0 {
			heapRatio = fmt.Sprintf("%.2f", r.PeakHeapMB/s.PeakHeapMB)
		}
		// Little's law: the time all requests spent waiting over the time
		// the batch took is how many waited at once, on average.
		held := 0.0
		if r.AllBoundSec > 0 {
			held = r.ThrottledSec / r.AllBoundSec
		}
		scheduler := r.Scheduler
		if r.Variant != "" {
			scheduler += " (" + r.Variant + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d/%d | %.0f | %s | %.0f | %.1f | %.2f | %.0f | %.0f | %s |\n",
			r.Label, scheduler, r.Workload, r.Bound, r.Pods, r.PodsPerSec, ratio, r.SteadyPerSec,
			r.AllBoundSec, r.WritesPerPod, held, r.PeakHeapMB, heapRatio)
	}
}
