package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/cosched/cosched/test/testutil"
)

// TestHelmInstall installs charts/cosched with helm into the cluster, runs
// the scheduler exactly as the chart's Deployment would (its ConfigMap, as its
// ServiceAccount, with only the chart's RBAC) and gang-schedules a group
// through it; then uninstalls the release and checks that it left nothing
// behind but the CRD.
//
// The installation lives next to the one the suite already runs (local-up
// applied manifests/: the CRD, cosched-system and the RBAC of the
// ServiceAccount cosched-system/cosched), so its values keep clear of it:
// another name (the cluster-wide RBAC objects are named after it), another
// namespace, another scheduler name and no CRD (crd.install=false, the case
// of a cluster where scheduler-plugins installed it). replicas=0: the
// Deployment's own pods could not run here (KWOK nodes have no kubelet and
// there is no default scheduler); the test runs bin/cosched in their place.
func TestHelmInstall(t *testing.T) {
	s := newSuite(t)
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helmBin := envOr("HELM", filepath.Join(root, "_output", "bin", "helm"))
	coschedBin := envOr("COSCHED_BIN", filepath.Join(root, "bin", "cosched"))
	for _, bin := range []string{helmBin, coschedBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%v (make test-e2e builds bin/cosched; hack/build-helm.sh builds helm)", err)
		}
	}

	// Short and unique: the name prefixes the cluster-wide RBAC objects and
	// names the scheduler profile, the Lease and the namespace.
	name := fmt.Sprintf("helm-%d", time.Now().UnixNano()%100000)
	release, chartNS := name, name+"-system"
	helm := func(args ...string) string {
		t.Helper()
		args = append(args, "--kubeconfig", os.Getenv("KUBECONFIG"))
		cmd := exec.Command(helmBin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}

	// The release record lives in the test's namespace; the chart creates
	// its own namespace for the scheduler's objects.
	out := helm("install", release, filepath.Join(root, "charts", "cosched"), "--namespace", s.ns,
		"--set", "name="+name+",namespace.name="+chartNS+",crd.install=false,replicas=0",
		"--set", "profiles.cosched.schedulerName="+name+",profiles.kuberay.enabled=false,profiles.memberByMember.enabled=false",
		"--wait", "--timeout", "2m")
	t.Logf("helm install:\n%s", out)
	uninstalled := false
	t.Cleanup(func() {
		if !uninstalled {
			cmd := exec.Command(helmBin, "uninstall", release, "--namespace", s.ns, "--kubeconfig", os.Getenv("KUBECONFIG"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("helm uninstall: %v\n%s", err, out)
			}
		}
	})
	if status := helm("status", release, "--namespace", s.ns); !strings.Contains(status, "STATUS: deployed") {
		t.Fatalf("helm status:\n%s", status)
	}

	// What the release created, read back from the API server.
	cm, err := s.cs.CoreV1().ConfigMaps(chartNS).Get(s.ctx, name+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's ConfigMap: %v", err)
	}
	if cm.Labels["app.kubernetes.io/managed-by"] != "Helm" {
		t.Errorf("ConfigMap %s/%s is not managed by Helm: labels %v", chartNS, cm.Name, cm.Labels)
	}
	dep, err := s.cs.AppsV1().Deployments(chartNS).Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's Deployment: %v", err)
	}
	sa := dep.Spec.Template.Spec.ServiceAccountName
	if _, err := s.cs.CoreV1().ServiceAccounts(chartNS).Get(s.ctx, sa, metav1.GetOptions{}); err != nil {
		t.Fatalf("the Deployment's ServiceAccount: %v", err)
	}

	// The scheduler process, as the Deployment's pod would run it.
	dir := t.TempDir()
	kubeconfig := serviceAccountKubeconfig(t, s, chartNS, sa, dir)
	config := configFromConfigMap(t, cm.Data["config.yaml"], kubeconfig, dir)
	port := freePort(t)
	proc := startScheduler(t, coschedBin, dir, []string{"POD_NAMESPACE=" + chartNS},
		"--config="+config,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--v=2")

	// Leader election on the chart's Lease works with the chart's Role.
	err = wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := s.cs.CoordinationV1().Leases(chartNS).Get(ctx, name, metav1.GetOptions{})
		return err == nil && ptr.Deref(l.Spec.HolderIdentity, "") != "", nil
	})
	if err != nil {
		t.Fatalf("the scheduler never held the Lease %s/%s: %v\n%s", chartNS, name, err, proc.tail())
	}

	// A gang, through the chart's profile.
	s.nodes(sameNodes(3, "4", "8Gi"))
	s.group(testutil.PodGroup(s.ns, "helm-gang", 3))
	members := s.members("helm-gang", 3, "3", "1Gi")
	for _, p := range members {
		p.Spec.SchedulerName = name
	}
	names := s.create(members...)
	nodes, err := testutil.WaitAllBound(s.ctx, s.cs, s.ns, names, bindTimeout)
	if err != nil {
		t.Fatalf("%v\n%s", err, proc.tail())
	}
	if len(distinct(nodes)) != 3 {
		t.Errorf("members of 3 CPU on 4-CPU nodes share a node: %s", testutil.Describe(nodes))
	}
	// The status writer runs under its Lease in the chart's namespace.
	s.phase("helm-gang", schedv1alpha1.PodGroupRunning)
	if _, err := s.cs.CoordinationV1().Leases(chartNS).Get(s.ctx, "cosched-podgroup-status", metav1.GetOptions{}); err != nil {
		t.Errorf("the PodGroup status Lease in %s: %v", chartNS, err)
	}

	// The metrics endpoint, with delegated authentication and authorization
	// through the chart's RBAC: this process scheduled the group.
	series := fmt.Sprintf(`scheduler_schedule_attempts_total{profile=%q,result="scheduled"}`, name)
	var metrics string
	err = wait.PollUntilContextTimeout(s.ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		metrics = getMetrics(t, s.cfg, port)
		return sampleValue(metrics, series) >= 3, nil
	})
	if err != nil {
		t.Errorf("/metrics: %s is not 3 or more; scheduler lines:\n%s", series, grepLines(metrics, "scheduler_schedule_attempts_total"))
	}

	// helm uninstall takes everything but the CRD (crd.install=false).
	proc.stop()
	out = helm("uninstall", release, "--namespace", s.ns, "--wait", "--timeout", "2m")
	uninstalled = true
	t.Logf("helm uninstall:\n%s", out)
	gone := func(what string, get func(context.Context) error) {
		t.Helper()
		err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
			return apierrors.IsNotFound(get(ctx)), nil
		})
		if err != nil {
			t.Errorf("%s is still there after helm uninstall", what)
		}
	}
	gone("ClusterRole "+name+":podgroups", func(ctx context.Context) error {
		_, err := s.cs.RbacV1().ClusterRoles().Get(ctx, name+":podgroups", metav1.GetOptions{})
		return err
	})
	gone("ClusterRoleBinding "+name+":kube-scheduler", func(ctx context.Context) error {
		_, err := s.cs.RbacV1().ClusterRoleBindings().Get(ctx, name+":kube-scheduler", metav1.GetOptions{})
		return err
	})
	gone("RoleBinding kube-system/"+name+":extension-apiserver-authentication-reader", func(ctx context.Context) error {
		_, err := s.cs.RbacV1().RoleBindings("kube-system").Get(ctx, name+":extension-apiserver-authentication-reader", metav1.GetOptions{})
		return err
	})
	gone("Namespace "+chartNS, func(ctx context.Context) error {
		_, err := s.cs.CoreV1().Namespaces().Get(ctx, chartNS, metav1.GetOptions{})
		return err
	})
	if _, err := s.pg.SchedulingV1alpha1().PodGroups(s.ns).Get(s.ctx, "helm-gang", metav1.GetOptions{}); err != nil {
		t.Errorf("the PodGroup API went away with the release: %v", err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func distinct(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// sampleValue returns the value of one series in Prometheus text format, or
// -1 when it is missing.
func sampleValue(metrics, series string) float64 {
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount namespace/name with a token from the TokenRequest API, the
// credential the kubelet would mount into the Deployment's pod.
func serviceAccountKubeconfig(t *testing.T, s *suite, namespace, name, dir string) string {
	t.Helper()
	tr, err := s.cs.CoreV1().ServiceAccounts(namespace).CreateToken(s.ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	cluster := &clientcmdapi.Cluster{Server: s.cfg.Host, CertificateAuthorityData: s.cfg.CAData, CertificateAuthority: s.cfg.CAFile}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = cluster
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(dir, "serviceaccount.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// configFromConfigMap writes the ConfigMap's KubeSchedulerConfiguration with
// clientConnection.kubeconfig set, the one change a process outside a pod
// needs (in a pod, client-go finds the mounted token by itself).
func configFromConfigMap(t *testing.T, data, kubeconfig, dir string) string {
	t.Helper()
	var cfg map[string]interface{}
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		t.Fatalf("the chart's ConfigMap holds no YAML: %v\n%s", err, data)
	}
	cc, _ := cfg["clientConnection"].(map[string]interface{})
	if cc == nil {
		cc = map[string]interface{}{}
		cfg["clientConnection"] = cc
	}
	cc["kubeconfig"] = kubeconfig
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// schedulerProcess is a scheduler this test started.
type schedulerProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startScheduler(t *testing.T, bin, dir string, env []string, args ...string) *schedulerProcess {
	t.Helper()
	logPath := filepath.Join(dir, "cosched.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &schedulerProcess{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("scheduler log:\n%s", p.tail())
		}
	})
	return p
}

// stop ends the process (SIGTERM, then SIGKILL after 10s) and waits for it.
func (p *schedulerProcess) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last lines of the process's log.
func (p *schedulerProcess) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// getMetrics reads /metrics from the scheduler's secure port as the
// KUBECONFIG user; the scheduler authenticates and authorizes the request
// through the API server (TokenReview/SubjectAccessReview), which its RBAC
// must allow.
func getMetrics(t *testing.T, cfg *rest.Config, port int) string {
	t.Helper()
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	tlsCfg.InsecureSkipVerify = true //nolint:gosec // loopback, self-signed serving certificate
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)
	var body string
	err = wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		if cfg.BearerToken != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.BearerToken)
		}
		resp, err := client.Do(req)
		if err != nil {
			body = err.Error()
			return false, nil
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		if resp.StatusCode != http.StatusOK {
			body = resp.Status + ": " + body
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("GET %s: %s", url, body)
	}
	return body
}
