// Package compat runs the cosched binary against real API servers of older
// Kubernetes releases: a kube-apiserver 1.37 in-process that emulates 1.34
// (--emulated-version), which serves the APIs of 1.34 and reports it on
// /version. It checks that cosched picks the server's release by itself and
// becomes ready, that a user-set newer release gets a clear warning and a
// log that names the cache holding the scheduler back, and that a server
// outside the range or not answering ends the start with a clear error.
// hack/test-compat.sh runs the e2e suite against real 1.34-1.36 binaries.
package compat

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/test/integration/framework"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	"sigs.k8s.io/yaml"

	"github.com/cosched/cosched/test/testutil"
)

func TestMain(m *testing.M) {
	if err := testutil.LocateAPIServerFixtures(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	framework.EtcdMain(m.Run)
}

// server is an in-process kube-apiserver serving the APIs of release
// emulate, with the PodGroup CRD.
type server struct {
	cfg *rest.Config
	cs  kubernetes.Interface
	pg  versioned.Interface
}

func startServer(t *testing.T, emulate string) *server {
	t.Helper()
	s := kubeapiservertesting.StartTestServerOrDie(t, nil, []string{
		"--emulated-version=" + emulate,
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--authorization-mode=RBAC",
	}, framework.SharedEtcd())
	t.Cleanup(s.TearDownFn)
	cfg := rest.CopyConfig(s.ClientConfig)
	cs := kubernetes.NewForConfigOrDie(cfg)
	jsonCfg := rest.CopyConfig(cfg)
	jsonCfg.ContentType = "application/json"
	ctx := context.Background()
	if err := testutil.InstallCRD(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cosched-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &server{cfg: cfg, cs: cs, pg: versioned.NewForConfigOrDie(jsonCfg)}
}

// TestOlderServer: against a server of an older release, cosched with the
// shipped config and no flags emulates that release, becomes ready, and
// schedules gangs whole. With a user-set newer --emulated-version it warns at
// start and names the informer that never syncs, and binds nothing.
func TestOlderServer(t *testing.T) {
	srv := startServer(t, "1.34")
	ctx := context.Background()
	dir := t.TempDir()
	config := writeConfig(t, srv.cfg, dir)
	for i := 0; i < 2; i++ {
		node := testutil.Node(fmt.Sprintf("node-%d", i), "4", "8Gi", nil)
		if _, err := srv.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("chosen automatically", func(t *testing.T) {
		p := startCosched(t, dir, "auto", "--config="+config)
		start := time.Now()
		p.waitReady(t, 60*time.Second)
		t.Logf("ready %s after start", time.Since(start).Round(100*time.Millisecond))
		p.expectLog(t, `"Running as the API server's Kubernetes release"`, `emulatedVersion="1.34"`, `chosenBy="server"`, `featureGatesChanged=[`, `DRADeviceTaintRules=false`)

		ns := testutil.CreateNamespace(ctx, t, srv.cs, "auto")
		if _, err := srv.pg.SchedulingV1alpha1().PodGroups(ns).Create(ctx, testutil.PodGroup(ns, "fits", 3), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.pg.SchedulingV1alpha1().PodGroups(ns).Create(ctx, testutil.PodGroup(ns, "too-big", 3), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		fits := testutil.Members(ns, "fits", 3, "1", "1Gi")
		tooBig := testutil.Members(ns, "too-big", 3, "3", "1Gi") // 3 CPUs each: 2 nodes hold 2 of 3
		if err := testutil.CreatePods(ctx, srv.cs, append(fits, tooBig...)...); err != nil {
			t.Fatal(err)
		}
		if _, err := testutil.WaitAllBound(ctx, srv.cs, ns, testutil.Names(fits), 60*time.Second); err != nil {
			t.Fatalf("the gang that fits: %v", err)
		}
		if err := testutil.ExpectNoneBound(ctx, srv.cs, ns, testutil.Names(tooBig), 5*time.Second); err != nil {
			t.Errorf("the gang that does not fit: %v", err)
		}
	})

	t.Run("user's newer --emulated-version", func(t *testing.T) {
		p := startCosched(t, dir, "newer", "--config="+config, "--emulated-version=1.37")
		p.expectLogWithin(t, 45*time.Second, `newer than the API server`, `Informer caches have not synced`, `resource.k8s.io/v1, Kind=DeviceTaintRule`)
		p.expectLog(t, `chosenBy="--emulated-version"`)
		if code, body := p.get(t, "/readyz?verbose"); code == http.StatusOK || !strings.Contains(body, "sched-handler-sync") {
			t.Errorf("/readyz = %d %q, want a failure of sched-handler-sync", code, body)
		}
		ns := testutil.CreateNamespace(ctx, t, srv.cs, "newer")
		if _, err := srv.pg.SchedulingV1alpha1().PodGroups(ns).Create(ctx, testutil.PodGroup(ns, "waits", 2), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The other replica of the subtest before is gone; nobody else
		// schedules these.
		waits := testutil.Members(ns, "waits", 2, "100m", "128Mi")
		if err := testutil.CreatePods(ctx, srv.cs, waits...); err != nil {
			t.Fatal(err)
		}
		if err := testutil.ExpectNoneBound(ctx, srv.cs, ns, testutil.Names(waits), 5*time.Second); err != nil {
			t.Error(err)
		}
	})
}

// TestServerTooOld: a server older than the range ends the start with one
// error naming its version and the range, and a non-zero exit.
func TestServerTooOld(t *testing.T) {
	srv := startServer(t, "1.33")
	dir := t.TempDir()
	p := startCosched(t, dir, "too-old", "--config="+writeConfig(t, srv.cfg, dir))
	code := p.waitExit(t, 30*time.Second)
	if code == 0 {
		t.Errorf("exit code 0, want non-zero")
	}
	p.expectLog(t, `older than cosched supports: 1.34 to 1.37`, `emulating 1.33`)
}

// TestServerNotAnswering: nothing on /version ends the start, after the
// retries of --server-version-timeout, with an error naming the address.
func TestServerNotAnswering(t *testing.T) {
	dir := t.TempDir()
	closed := listenAndClose(t)
	start := time.Now()
	p := startCosched(t, dir, "unreachable", "--master=https://"+closed, "--server-version-timeout=3s")
	if code := p.waitExit(t, 30*time.Second); code == 0 {
		t.Errorf("exit code 0, want non-zero")
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("gave up after %s, before --server-version-timeout=3s", took)
	}
	p.expectLog(t, "Waiting for the API server's /version", "cannot read the version of the API server at https://"+closed)
}

// writeConfig writes the shipped scheduler config (leader election off, as
// it ships) pointed at the server with its admin credentials.
func writeConfig(t *testing.T, cfg *rest.Config, dir string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.TLSClientConfig.CAData, TLSServerName: cfg.TLSClientConfig.ServerName}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	kc.CurrentContext = "test"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, testutil.SchedulerConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	var sc map[string]any
	if err := yaml.Unmarshal(data, &sc); err != nil {
		t.Fatal(err)
	}
	sc["clientConnection"].(map[string]any)["kubeconfig"] = kubeconfig
	out, err := yaml.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type cosched struct {
	*testutil.Process
	port string
}

// startCosched runs $COSCHED_BIN (make sets it to bin/cosched; else built
// into dir) with args; the test's cleanup kills it.
func startCosched(t *testing.T, dir, name string, args ...string) *cosched {
	t.Helper()
	bin := os.Getenv("COSCHED_BIN")
	if bin == "" {
		root, err := testutil.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(dir, "cosched")
		if _, err := os.Stat(bin); err != nil {
			build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/cosched")
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("building cosched: %v\n%s", err, out)
			}
		}
	}
	port := testutil.FreePort(t)
	p := &cosched{port: port, Process: &testutil.Process{Name: name, Log: filepath.Join(dir, name+".log"),
		Cmd: exec.Command(bin, append([]string{"--secure-port=" + port, "--bind-address=127.0.0.1", "-v=2"}, args...)...)}}
	p.Cmd.Env = append(os.Environ(), "POD_NAMESPACE=cosched-system")
	p.Start(t)
	return p
}

func (p *cosched) get(t *testing.T, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://127.0.0.1:" + p.port + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

func (p *cosched) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		select {
		case <-p.Done():
			return false, fmt.Errorf("cosched exited")
		default:
		}
		code, _ := p.get(t, "/readyz")
		return code == http.StatusOK, nil
	})
	if err != nil {
		_, body := p.get(t, "/readyz?verbose")
		t.Fatalf("cosched not ready within %s: %v; /readyz: %s", timeout, err, body)
	}
}

func (p *cosched) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.Done():
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("cosched still runs after %s", timeout)
		return 0
	}
}

func (p *cosched) expectLog(t *testing.T, want ...string) {
	t.Helper()
	out, _ := os.ReadFile(p.Log)
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("log does not contain %s", w)
		}
	}
}

func (p *cosched) expectLogWithin(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	_ = wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		out, _ := os.ReadFile(p.Log)
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				return false, nil
			}
		}
		return true, nil
	})
	p.expectLog(t, want...)
}

// listenAndClose returns an address where nothing listens.
func listenAndClose(t *testing.T) string {
	return "127.0.0.1:" + testutil.FreePort(t)
}
