package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/explain"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// kubectlCoschedBinary returns the plugin binary: $KUBECTL_COSCHED when set
// (a release), else one built from this tree so the
// test never runs a stale bin/.
func kubectlCoschedBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("KUBECTL_COSCHED"); bin != "" {
		return bin
	}
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kubectl-cosched")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/kubectl-cosched")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-cosched: %v\n%s", err, out)
	}
	return bin
}

// TestKubectlCosched runs the plugin against the cluster with the admin
// kubeconfig: a gang that binds (atomic, on one node) and one that cannot
// fit, as users see them with get and describe.
func TestKubectlCosched(t *testing.T) {
	s := newSuite(t)
	bin := kubectlCoschedBinary(t)
	kubeconfig := os.Getenv("KUBECONFIG")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--kubeconfig", kubeconfig)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl-cosched %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// Two nodes of 4 CPU. "fits" (2 x 1 CPU) must share a node; "huge"
	// (3 x 3 CPU) cannot fit: one member fits the empty node, none the rest.
	nodes := s.nodes(sameNodes(2, "4", "8Gi"))
	fits := testutil.PodGroup(s.ns, "fits", 2)
	fits.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: v1.LabelHostname}
	s.group(fits)
	fitNames := s.create(s.members("fits", 2, "1", "1Gi")...)
	placed := s.allBound(fitNames)
	s.running(fitNames)
	s.phase("fits", schedv1alpha1.PodGroupRunning)
	node := placed[fitNames[0]]
	if placed[fitNames[1]] != node {
		t.Fatalf("the atomic pair was split: %v", placed)
	}

	s.group(testutil.PodGroup(s.ns, "huge", 3))
	hugeNames := s.create(s.members("huge", 3, "3", "1Gi")...)
	if err := wait.PollUntilContextTimeout(s.ctx, 500*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		notes, err := testutil.EventsFor(ctx, s.cs, s.ns, "PodGroup", "huge")
		if err != nil {
			return false, nil
		}
		for _, n := range notes {
			if strings.HasPrefix(n, "GangRejected: ") {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("huge was never rejected as a whole: %v", err)
	}

	// get: one line per group, with the numbers.
	out := run("get", "-n", s.ns)
	t.Logf("kubectl cosched get -n %s:\n%s", s.ns, out)
	rows := table(t, out)
	wantHeader := []string{"NAME", "PHASE", "MIN", "BOUND", "PLACED", "PENDING", "AGE", "WAITING", "REASON"}
	if got := rows[0]; strings.Join(got, " ") != strings.Join(wantHeader, " ") {
		t.Errorf("header = %v, want %v", got, wantHeader)
	}
	byName := map[string][]string{}
	for _, r := range rows[1:] {
		byName[r[0]] = r
	}
	if r := byName["fits"]; len(r) < 9 || r[1] != "Running" || r[2] != "2" || r[3] != "2" || r[4] != "2" || r[5] != "0" || r[7] != "-" {
		t.Errorf("fits line = %v, want Running, min 2, 2 bound, 2 placed, 0 pending, not waiting", r)
	}
	reason := regexp.MustCompile(`^[0-2]/3 fit; member needs cpu 3, best node has `)
	if r := byName["huge"]; len(r) < 9 || r[2] != "3" || r[3] != "0" || r[4] != "0" || r[5] != "3" || r[7] == "-" ||
		!reason.MatchString(strings.Join(r[8:], " ")) {
		t.Errorf("huge line = %v, want min 3, 0 bound, 0 placed, 3 pending, waiting, reason matching %s", r, reason)
	}

	// get -A lists the groups with their namespace.
	all := run("get", "-A")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s.ns) + `\s+fits\s+Running\s`).MatchString(all) {
		t.Errorf("get -A has no line for %s/fits:\n%s", s.ns, all)
	}

	// -o wide names the domain; -o json carries the same numbers.
	wide := run("get", "-n", s.ns, "-o", "wide")
	if !strings.Contains(wide, v1.LabelHostname+"="+node) {
		t.Errorf("get -o wide does not name the domain %s=%s:\n%s", v1.LabelHostname, node, wide)
	}
	var list struct {
		Items []explain.Summary `json:"items"`
	}
	if err := json.Unmarshal([]byte(run("get", "-n", s.ns, "-o", "json")), &list); err != nil {
		t.Fatalf("get -o json: %v", err)
	}
	for _, g := range list.Items {
		switch g.Name {
		case "fits":
			if g.Bound != 2 || g.WaitingSince != nil || strings.Join(g.Domains, ",") != node {
				t.Errorf("fits in json: %+v", g)
			}
		case "huge":
			if g.Rejections < 1 || g.WaitingSince == nil || g.ReasonFrom == "" || !reason.MatchString(g.Reason) {
				t.Errorf("huge in json: %+v", g)
			}
		}
	}

	// describe: members with their node, the domain, the timeline.
	d := run("describe", "-n", s.ns, "fits")
	t.Logf("kubectl cosched describe fits:\n%s", d)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Phase:\s+Running$`),
		regexp.MustCompile(`(?m)^  Domain:\s+` + regexp.QuoteMeta(v1.LabelHostname+"="+node) + ` `),
		regexp.MustCompile(`(?m)^  ` + fitNames[0] + `\s+Bound\s+` + node + `\s+Running\s`),
		regexp.MustCompile(`(?m)^  ` + fitNames[1] + `\s+Bound\s+` + node + `\s+Running\s`),
		regexp.MustCompile(`(?m)^  \S+\s+Created\s`),
		regexp.MustCompile(`(?m)^  \S+\s+Admitted\s`),
		regexp.MustCompile(`(?m)^  \S+\s+Bound\s+-\s+2/2 members bound$`),
	} {
		if !want.MatchString(d) {
			t.Errorf("describe fits lacks %s", want)
		}
	}
	d = run("describe", "-n", s.ns, "huge")
	t.Logf("kubectl cosched describe huge:\n%s", d)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Waiting:\s+for `),
		regexp.MustCompile(`(?m)^Reason:\s+[0-2]/3 fit; member needs cpu 3, best node has `),
		// The rejection, or a member's failed attempt that repeats it.
		regexp.MustCompile(`(?m)^  From:\s+(GangRejected event on podgroup huge|FailedScheduling event on pod huge-\d)`),
		regexp.MustCompile(`(?m)^  ` + hugeNames[0] + `\s+Pending\s+<none>\s`),
		regexp.MustCompile(`(?m)^  \S+( \(x\d+ over \S+\))?\s+Rejected\s+-\s+[0-2]/3 fit`),
	} {
		if !want.MatchString(d) {
			t.Errorf("describe huge lacks %s", want)
		}
	}
	if strings.Contains(d, nodes[0]) || strings.Contains(d, nodes[1]) {
		t.Errorf("describe huge names a node although nothing of it is placed:\n%s", d)
	}

	// Read access is enough: a user bound to the documented ClusterRole
	// sees the same, and a user without it is refused.
	objs, err := testutil.ReadManifest("docs/kubectl-cosched-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.Apply(s.ctx, s.cs, objs...); err != nil {
		t.Fatalf("applying docs/kubectl-cosched-rbac.yaml: %v", err)
	}
	viewer := "e2e-viewer-" + s.id
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: viewer},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cosched-viewer"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: viewer}},
	}
	if err := testutil.Apply(s.ctx, s.cs, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), viewer, metav1.DeleteOptions{})
	})
	// RBAC takes effect when the authorizer's cache has the binding.
	var asViewer string
	if err := wait.PollUntilContextTimeout(s.ctx, 500*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		out, err := exec.Command(bin, "describe", "-n", s.ns, "fits", "--as", viewer, "--kubeconfig", kubeconfig).CombinedOutput()
		asViewer = string(out)
		return err == nil && !strings.Contains(asViewer, "Warning"), nil
	}); err != nil {
		t.Fatalf("describe as %s (bound to cosched-viewer) failed or warned:\n%s", viewer, asViewer)
	}
	if !regexp.MustCompile(`(?m)^  Domain:\s+` + regexp.QuoteMeta(v1.LabelHostname+"="+node) + ` `).MatchString(asViewer) {
		t.Errorf("describe as %s does not name the domain:\n%s", viewer, asViewer)
	}
	if out := run("get", "-A", "--as", viewer); !strings.Contains(out, s.ns) {
		t.Errorf("get -A as %s lacks %s:\n%s", viewer, s.ns, out)
	}
	if out, err := exec.Command(bin, "get", "-n", s.ns, "--as", "e2e-nobody-"+s.id, "--kubeconfig", kubeconfig).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "forbidden") {
		t.Errorf("get as a user without the role: err %v, want forbidden:\n%s", err, out)
	}

	// As a kubectl plugin: kubectl finds kubectl-cosched on PATH.
	if kubectl := os.Getenv("KUBECTL"); kubectl != "" {
		cmd := exec.Command(kubectl, "cosched", "get", "-n", s.ns)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil || !regexp.MustCompile(`(?m)^fits\s+Running\s`).Match(out) {
			t.Errorf("kubectl cosched get -n %s: %v\n%s", s.ns, err, out)
		}
	}
}

// table splits a table into rows of whitespace-separated fields.
func table(t *testing.T, out string) [][]string {
	t.Helper()
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	if len(rows) == 0 {
		t.Fatal("empty output")
	}
	return rows
}
