package integration

import (
	"context"
	"fmt"
	"net"
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

	var objs []any
	for _, rel := range []string{"manifests/cosched/namespace.yaml", "manifests/cosched/rbac.yaml", "manifests/cosched/config.yaml"} {
		got, err := testutil.ReadManifest(rel)
		if err != nil {
			t.Fatal(err)
		}
		if err := testutil.Apply(ctx, c.cs, got...); err != nil {
			t.Fatalf("applying %s: %v", rel, err)
		}
		for _, o := range got {
			objs = append(objs, o)
		}
	}
	configPath := writeDeployedConfig(t, ctx, c, dir)
	bin := coschedBinary(t, dir)

	port := freePort(t)
	cmd := exec.Command(bin, "--config="+configPath, "--secure-port="+port, "--bind-address=127.0.0.1", "-v=2")
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=cosched-system")
	logFile, err := os.Create(filepath.Join(dir, "cosched.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(logFile.Name())
			t.Logf("cosched log:\n%s", tail(string(out), 80))
		}
	})

	s := c.newScenarioWithoutScheduler(t, nodes("binary", 2, "4", "8Gi"))
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
	out, _ := os.ReadFile(logFile.Name())
	for _, forbidden := range []string{"is forbidden", coschedToken} {
		if strings.Contains(string(out), forbidden) {
			t.Errorf("cosched log contains %q:\n%s", forbidden, grepLines(string(out), forbidden))
		}
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

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
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

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return tail(strings.Join(out, "\n"), 20)
}
