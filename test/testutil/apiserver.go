package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// LocateAPIServerFixtures lets kube-apiserver's in-process test server find
// its serving-certificate fixtures. It looks for them through its own source
// path, which -trimpath (used for every build here, so one build cache serves
// all) turns into a module-relative path; the server then resolves that path
// against TEST_SRCDIR/TEST_WORKSPACE, which this points at the module cache.
// Call it from TestMain, before any server starts.
func LocateAPIServerFixtures() error {
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
