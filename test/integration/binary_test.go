package integration

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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/cosched/cosched/test/testutil"
)

// The identity the cosched binary runs as: the ServiceAccount that
// manifests/cosched/rbac.yaml binds, authenticated by a static token so the
// test needs no token controller.
const (
	coschedToken = "cosched-integration-token"
	coschedUser  = "system:serviceaccount:cosched-system:cosched"
)

// TestCoschedBinary runs bin/cosched as a separate process, as a Deployment
// would: with the ConfigMap's KubeSchedulerConfiguration (leader election on)
// and only the permissions of manifests/cosched/rbac.yaml. A gang must bind
// and its PodGroup status must be written.
func TestCoschedBinary(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	line := fmt.Sprintf("%s,%s,cosched-uid,\"system:serviceaccounts,system:serviceaccounts:cosched-system,system:authenticated\"\n", coschedToken, coschedUser)
	if err := os.WriteFile(tokens, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, "--token-auth-file="+tokens)
	ctx := c.tc.Ctx

	for _, rel := range []string{"manifests/cosched/namespace.yaml", "manifests/cosched/rbac.yaml", "manifests/cosched/config.yaml"} {
		got, err := testutil.ReadManifest(rel)
		if err != nil {
			t.Fatal(err)
		}
		if err := testutil.Apply(ctx, c.cs, got...); err != nil {
			t.Fatalf("applying %s: %v", rel, err)
		}
	}
	configPath := writeDeployedConfig(t, ctx, c, dir)
	bin := coschedBinary(t, dir)

	// Two replicas, as the Deployment runs them; the first takes the lease.
	first := startCosched(t, bin, configPath, dir, "first")
	waitLease(t, c, "cosched")
	second := startCosched(t, bin, configPath, dir, "second")

	s := c.newScenarioWithoutScheduler(t, nodes("binary", 4, "4", "8Gi"))
	s.createGroup(testutil.PodGroup(s.ns, "gang", 3))
	names := s.createPods(s.members("gang", 3, "1", "1Gi")...)
	s.expectAllBound(names, 60*time.Second)
	s.expectPodGroup("gang", bindTimeout, phaseIs(schedv1alpha1.PodGroupScheduling))

	// Both leases live in the namespace the RBAC grants.
	for _, lease := range []string{"cosched", "cosched-podgroup-status"} {
		if _, err := c.cs.CoordinationV1().Leases("cosched-system").Get(ctx, lease, metav1.GetOptions{}); err != nil {
			t.Errorf("lease cosched-system/%s: %v", lease, err)
		}
	}

	// The endpoints are served as kube-scheduler serves them: health for
	// anyone, metrics only for those RBAC allows.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/metrics": http.StatusForbidden} {
		resp, err := client.Get("https://127.0.0.1:" + first.port + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}

	// A burst of gangs; the leader dies in the middle of it. The other
	// replica takes over, and every gang ends bound whole.
	var groups [][]string
	for g := 0; g < 6; g++ {
		name := fmt.Sprintf("burst-%d", g)
		s.createGroup(testutil.PodGroup(s.ns, name, 3))
		groups = append(groups, s.createPods(s.members(name, 3, "500m", "512Mi")...))
		if g == 2 {
			first.Kill()
		}
	}
	for _, names := range groups {
		s.expectAllBound(names, 90*time.Second)
	}
	if second.Exited() {
		t.Errorf("the second replica exited")
	}
	for _, r := range []*coschedProcess{first, second} {
		out, _ := os.ReadFile(r.Log)
		for _, forbidden := range []string{"is forbidden", coschedToken} {
			if strings.Contains(string(out), forbidden) {
				t.Errorf("%s replica's log contains %q:\n%s", r.Name, forbidden, grepLines(string(out), forbidden))
			}
		}
	}
}

// coschedProcess is one running replica of the binary.
type coschedProcess struct {
	*testutil.Process
	port string
}

func startCosched(t *testing.T, bin, config, dir, name string) *coschedProcess {
	t.Helper()
	port := testutil.FreePort(t)
	p := &coschedProcess{port: port, Process: &testutil.Process{Name: name, Log: filepath.Join(dir, name+".log"),
		Cmd: exec.Command(bin, "--config="+config, "--secure-port="+port, "--bind-address=127.0.0.1", "-v=2")}}
	p.Cmd.Env = append(os.Environ(), "POD_NAMESPACE=cosched-system")
	p.Start(t)
	return p
}

func waitLease(t *testing.T, c *cluster, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(c.tc.Ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.cs.CoordinationV1().Leases("cosched-system").Get(ctx, name, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "", nil
	})
	if err != nil {
		t.Fatalf("nobody took the lease cosched-system/%s: %v", name, err)
	}
}

// writeDeployedConfig extracts the config the Deployment mounts and points
// it at a kubeconfig for the cosched identity.
func writeDeployedConfig(t *testing.T, ctx context.Context, c *cluster, dir string) string {
	t.Helper()
	cm, err := c.cs.CoreV1().ConfigMaps("cosched-system").Get(ctx, "cosched-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "cosched.kubeconfig")
	writeKubeconfig(t, c.tc.KubeConfig, coschedToken, kubeconfig)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	conn, _ := cfg["clientConnection"].(map[string]any)
	if conn == nil {
		conn = map[string]any{}
	}
	conn["kubeconfig"] = kubeconfig
	cfg["clientConnection"] = conn
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeKubeconfig(t *testing.T, server *rest.Config, token, path string) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   server.Host,
		CertificateAuthorityData: server.TLSClientConfig.CAData,
		TLSServerName:            server.TLSClientConfig.ServerName,
	}
	cfg.AuthInfos["cosched"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["cosched"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "cosched"}
	cfg.CurrentContext = "cosched"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
}

// coschedBinary returns $COSCHED_BIN (make test sets it to bin/cosched) or
// builds the command into dir.
func coschedBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("COSCHED_BIN"); bin != "" {
		return bin
	}
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cosched")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/cosched")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cosched: %v\n%s", err, out)
	}
	return bin
}

// newScenarioWithoutScheduler is a scenario whose scheduler runs elsewhere.
func (c *cluster) newScenarioWithoutScheduler(t *testing.T, ns []*corev1.Node) *scenario {
	s := c.newStoppedScenario(t, ns)
	// The pods are for the external scheduler; wait until it has nodes.
	_ = wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := s.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == len(ns), nil
	})
	return s
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return testutil.Tail(strings.Join(out, "\n"), 20)
}
