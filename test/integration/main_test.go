// Package integration runs cosched's scheduler against a real API server
// (kube-apiserver in-process, etcd from hack/build-etcd.sh) and checks
// where members land, or that they do not land at all.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"k8s.io/kubernetes/test/integration/framework"
)

func TestMain(m *testing.M) {
	if err := locateAPIServerFixtures(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	framework.EtcdMain(m.Run)
}

// locateAPIServerFixtures lets kube-apiserver's test server find its serving
// certificate fixtures. It finds them through its own source path, which
// -trimpath (used for every build here, so one build cache serves all)
// turns into a module-relative path; the server then resolves that path
// against TEST_SRCDIR/TEST_WORKSPACE, which point it at the module cache.
func locateAPIServerFixtures() error {
	if os.Getenv("TEST_SRCDIR") != "" {
		return nil
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return fmt.Errorf("finding the module cache for kube-apiserver's test fixtures: %w", err)
	}
	if err := os.Setenv("TEST_SRCDIR", strings.TrimSpace(string(out))); err != nil {
		return err
	}
	return os.Setenv("TEST_WORKSPACE", ".")
}
