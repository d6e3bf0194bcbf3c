package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/test/testutil"
)

// The user the image runs as (USER 65532:65532, distroless's nonroot; the
// Deployment's runAsUser/runAsGroup).
const nonRootID = 65532

// Other identities of TestSecurityReadOnlyNonRoot, authenticated by static
// tokens: a monitoring client RBAC allows to read /metrics, and an
// authenticated user nothing allows.
const (
	metricsReaderToken = "cosched-metrics-reader-token"
	metricsReaderUser  = "cosched-test:metrics-reader"
	strangerToken      = "cosched-stranger-token"
	strangerUser       = "cosched-test:stranger"
	bogusToken         = "cosched-token-nobody-issued"
)

// readOnlyLauncher runs a command in a private mount namespace in which every
// mount is read-only, then drops to uid/gid 65532 with no supplementary
// groups, no capabilities and no_new_privs: the container's
// readOnlyRootFilesystem, runAsUser/runAsGroup, capabilities drop ALL and
// allowPrivilegeEscalation false, without a container runtime. Every step
// execs, so the command keeps the launcher's pid.
const readOnlyLauncher = `set -e
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
	mount -o remount,bind,ro "$m"
done
exec setpriv --reuid=65532 --regid=65532 --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"`

// writeProbe prints each of its arguments that it can create a file in.
const writeProbe = `for d; do
	if (: > "$d/.cosched-write-probe") 2>/dev/null; then rm -f "$d/.cosched-write-probe"; echo "$d"; fi
done`

// sandbox is where the restricted cosched runs: its files, readable by
// uid 65532 and writable by nobody but root, and how to start a process in it.
type sandbox struct {
	readOnlyMounts bool   // every mount read-only; otherwise only non-root
	etc            string // config and kubeconfig, as the ConfigMap and token mounts would be
	cwd, tmp, home string // working directory, TMPDIR and HOME: none writable
	logs           string // root-only; the process writes its log through an inherited fd
}

// command starts argv inside the sandbox, as uid 65532.
func (sb *sandbox) command(argv ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if sb.readOnlyMounts {
		cmd = exec.Command("/bin/sh", append([]string{"-c", readOnlyLauncher, "sh"}, argv...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nonRootID, Gid: nonRootID, Groups: []uint32{}}}
	}
	cmd.Dir = sb.cwd
	// A container's environment, not the test's: nothing inherited.
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + sb.home,
		"TMPDIR=" + sb.tmp,
		"POD_NAMESPACE=cosched-system",
	}
	return cmd
}

// newSandbox lays out the directories (root-owned, 0555 where the process
// must read) and finds out whether read-only mount namespaces work here.
func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	base := t.TempDir()
	// t.TempDir's folders are 0700: let uid 65532 through.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sb := &sandbox{
		etc:  filepath.Join(base, "etc"),
		cwd:  filepath.Join(base, "work"),
		tmp:  filepath.Join(base, "tmp"),
		home: filepath.Join(base, "home-that-does-not-exist"),
		logs: filepath.Join(base, "logs"),
	}
	for _, d := range []string{sb.etc, sb.cwd, sb.tmp} {
		if err := os.Mkdir(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(sb.logs, 0o700); err != nil {
		t.Fatal(err)
	}

	probeDirs := []string{sb.cwd, sb.tmp, "/", "/tmp", "/var/tmp", "/dev/shm", os.TempDir()}
	sb.readOnlyMounts = true
	out, err := sb.command(append([]string{"/bin/sh", "-c", writeProbe, "sh"}, probeDirs...)...).CombinedOutput()
	if err != nil {
		t.Logf("no read-only mount namespace here (%v: %s); running cosched as uid %d with unwritable working directory, HOME and TMPDIR only", err, strings.TrimSpace(string(out)), nonRootID)
		sb.readOnlyMounts = false
		out, err = sb.command(append([]string{"/bin/sh", "-c", writeProbe, "sh"}, probeDirs...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("running a probe as uid %d: %v: %s", nonRootID, err, out)
		}
	}
	writable := strings.Fields(string(out))
	for _, d := range []string{sb.cwd, sb.tmp, "/"} {
		if slices.Contains(writable, d) {
			t.Fatalf("uid %d can write to %s in the sandbox", nonRootID, d)
		}
	}
	if sb.readOnlyMounts && len(writable) > 0 {
		t.Fatalf("uid %d can write to %v in the read-only mount namespace", nonRootID, writable)
	}
	if _, err := os.Stat(sb.home); !os.IsNotExist(err) {
		t.Fatalf("HOME %s should not exist: %v", sb.home, err)
	}
	return sb
}

// TestSecurityReadOnlyNonRoot runs bin/cosched as the image and Deployment
// run it: as uid/gid 65532 without capabilities, with the manifests' RBAC
// only, on a filesystem it cannot write (every mount read-only where the
// kernel allows a private mount namespace, and always an unwritable working
// directory, TMPDIR and HOME), with delegated authentication and
// authorization on its secure port as in a cluster. It must schedule a gang,
// serve /healthz to anyone and /metrics only to a client RBAC allows, and
// never log a credential.
func TestSecurityReadOnlyNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("switching to uid %d needs root", nonRootID)
	}
	started := time.Now()
	sb := newSandbox(t)

	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	var lines strings.Builder
	for _, tok := range [][3]string{
		{coschedToken, coschedUser, "system:serviceaccounts,system:serviceaccounts:cosched-system,system:authenticated"},
		{metricsReaderToken, metricsReaderUser, "system:authenticated"},
		{strangerToken, strangerUser, "system:authenticated"},
	} {
		fmt.Fprintf(&lines, "%s,%s,%s-uid,\"%s\"\n", tok[0], tok[1], tok[1], tok[2])
	}
	if err := os.WriteFile(tokens, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, "--token-auth-file="+tokens)
	ctx := c.tc.Ctx
	for _, rel := range []string{"manifests/cosched/namespace.yaml", "manifests/cosched/rbac.yaml", "manifests/cosched/config.yaml"} {
		objs, err := testutil.ReadManifest(rel)
		if err != nil {
			t.Fatal(err)
		}
		if err := testutil.Apply(ctx, c.cs, objs...); err != nil {
			t.Fatalf("applying %s: %v", rel, err)
		}
	}
	// The monitoring side's RBAC (not cosched's): one user may read /metrics.
	if err := testutil.Apply(ctx, c.cs,
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: metricsReaderUser},
			Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: metricsReaderUser},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: metricsReaderUser},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: metricsReaderUser}},
		},
	); err != nil {
		t.Fatal(err)
	}

	// The ConfigMap's config and the identity's kubeconfig, laid out as the
	// pod's read-only mounts: config world-readable, the credential
	// readable only by the process's user (as the kubelet mounts a projected
	// token for a pod with runAsUser).
	if err := os.Chmod(sb.etc, 0o755); err != nil {
		t.Fatal(err)
	}
	configPath := writeDeployedConfig(t, ctx, c, sb.etc)
	kubeconfig := filepath.Join(sb.etc, "cosched.kubeconfig")
	for _, f := range []struct {
		path  string
		owner int
		mode  os.FileMode
	}{{configPath, 0, 0o444}, {kubeconfig, nonRootID, 0o400}, {sb.etc, 0, 0o555}} {
		if err := os.Chown(f.path, f.owner, f.owner); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	bin := reachableBinary(t, coschedBinary(t, dir), filepath.Join(filepath.Dir(sb.etc), "bin"))

	port := testutil.FreePort(t)
	p := &coschedProcess{port: port, Process: &testutil.Process{Name: "restricted", Log: filepath.Join(sb.logs, "cosched.log")}}
	p.Cmd = sb.command(bin,
		"--config="+configPath,
		"--secure-port="+port,
		"--bind-address=127.0.0.1",
		// In a pod these default to the in-cluster config, i.e. the same
		// ServiceAccount; outside one they must be named, or the secure
		// port would have no TokenReview/SubjectAccessReview backend.
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		// The most verbose level that must still keep credentials out of
		// the log: at 7 client-go logs request headers, with bearer
		// tokens masked. From 8 on it logs request bodies, and TokenReview
		// bodies carry the bearer tokens of the clients of /metrics.
		"-v=7",
	)
	p.Start(t)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	base := "https://127.0.0.1:" + port
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("cosched exited: %v", p.Cmd.ProcessState)
		}
		code, _, err := get(client, base+"/healthz", "")
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("cosched never served /healthz: %v", err)
	}

	checkProcess(t, p.Cmd.Process.Pid, bin, sb)

	waitLease(t, c, "cosched")
	s := c.newScenarioWithoutScheduler(t, nodes("secure", 3, "4", "8Gi"))
	s.createGroup(testutil.PodGroup(s.ns, "gang", 3))
	names := s.createPods(s.members("gang", 3, "1", "1Gi")...)
	s.expectAllBound(names, 60*time.Second)
	s.expectPodGroup("gang", bindTimeout, phaseIs(schedv1alpha1.PodGroupScheduling))

	// Health for anyone; metrics only for whom the API server's RBAC
	// allows, asked through TokenReview and SubjectAccessReview.
	for _, probe := range []struct {
		path, token, who string
		want             []int
	}{
		{"/healthz", "", "anonymous", []int{http.StatusOK}},
		{"/livez", "", "anonymous", []int{http.StatusOK}},
		{"/metrics", "", "anonymous", []int{http.StatusUnauthorized, http.StatusForbidden}},
		{"/metrics", bogusToken, "an unknown token", []int{http.StatusUnauthorized}},
		{"/metrics", strangerToken, "an authenticated user without RBAC", []int{http.StatusForbidden}},
		{"/metrics", metricsReaderToken, "a user RBAC allows", []int{http.StatusOK}},
	} {
		code, body, err := get(client, base+probe.path, probe.token)
		if err != nil {
			t.Errorf("GET %s as %s: %v", probe.path, probe.who, err)
			continue
		}
		if !slices.Contains(probe.want, code) {
			t.Errorf("GET %s as %s = %d, want %v: %s", probe.path, probe.who, code, probe.want, firstLine(body))
		}
		if probe.path == "/metrics" && code == http.StatusOK {
			admitted := regexp.MustCompile(`(?m)^cosched_gang_admitted_total ([0-9.e+]+)$`).FindStringSubmatch(body)
			if admitted == nil {
				t.Errorf("/metrics has no cosched_gang_admitted_total; cosched_gang_ lines:\n%s", grepLines(body, "cosched_gang_"))
			} else if n, _ := strconv.ParseFloat(admitted[1], 64); n < 1 {
				t.Errorf("cosched_gang_admitted_total = %s after a gang was bound, want >= 1", admitted[1])
			}
		}
	}

	checkNoWritableFiles(t, p.Cmd.Process.Pid)
	if p.Exited() {
		t.Fatalf("cosched exited: %v", p.Cmd.ProcessState)
	}
	p.Kill()

	out, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	log := string(out)
	for _, secret := range []string{coschedToken, metricsReaderToken, strangerToken, bogusToken, "PRIVATE KEY"} {
		if strings.Contains(log, secret) {
			t.Errorf("cosched's log contains %q:\n%s", secret, grepLines(log, secret))
		}
	}
	// A write that failed, or a permission the manifests lack, shows in the
	// log even when cosched carries on.
	for _, symptom := range []string{"read-only file system", "permission denied", "is forbidden"} {
		if strings.Contains(strings.ToLower(log), symptom) {
			t.Errorf("cosched's log mentions %q:\n%s", symptom, grepLines(strings.ToLower(log), symptom))
		}
	}
	checkNothingCreated(t, started)
}

// checkProcess reads from /proc that the scheduler runs as uid/gid 65532,
// without capabilities, where the sandbox put it.
func checkProcess(t *testing.T, pid int, bin string, sb *sandbox) {
	t.Helper()
	proc := func(name string) string { return filepath.Join("/proc", strconv.Itoa(pid), name) }
	if exe, err := os.Readlink(proc("exe")); err != nil || exe != bin {
		t.Errorf("pid %d runs %q (%v), want %s", pid, exe, err, bin)
	}
	if cwd, err := os.Readlink(proc("cwd")); err != nil || cwd != sb.cwd {
		t.Errorf("pid %d works in %q (%v), want %s", pid, cwd, err, sb.cwd)
	}
	data, err := os.ReadFile(proc("status"))
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			status[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	id := strconv.Itoa(nonRootID)
	want := map[string]string{
		// real, effective, saved and filesystem IDs
		"Uid":    strings.Repeat(id+" ", 3) + id,
		"Gid":    strings.Repeat(id+" ", 3) + id,
		"CapPrm": "0000000000000000",
		"CapEff": "0000000000000000",
		"CapAmb": "0000000000000000",
	}
	if sb.readOnlyMounts {
		want["CapBnd"] = "0000000000000000"
		want["NoNewPrivs"] = "1"
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("/proc/%d/status %s: %q, want %q", pid, k, status[k], v)
		}
	}
	if g := status["Groups"]; g != "" && g != id {
		t.Errorf("/proc/%d/status Groups: %q, want none but %s", pid, g, id)
	}
	if !sb.readOnlyMounts {
		return
	}
	mounts, err := os.ReadFile(proc("mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	// A later mount on the same mount point hides the earlier one; what
	// the process can reach is the last mount listed for each point.
	options := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(mounts)), "\n") {
		if f := strings.Fields(line); len(f) >= 6 {
			options[f[4]] = f[5]
		}
	}
	if len(options) == 0 {
		t.Errorf("pid %d has no mounts in /proc/%d/mountinfo", pid, pid)
	}
	for point, opts := range options {
		if !slices.Contains(strings.Split(opts, ","), "ro") {
			t.Errorf("pid %d sees %s mounted %s, want ro", pid, point, opts)
		}
	}
}

// checkNoWritableFiles fails if the scheduler holds a file open for writing
// (beyond the stdout and stderr it was given).
func checkNoWritableFiles(t *testing.T, pid int) {
	t.Helper()
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fd, _ := strconv.Atoi(e.Name())
		if fd <= 2 {
			continue
		}
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "/dev/") || strings.HasPrefix(target, "/proc/") {
			continue // sockets, pipes, anon inodes, devices
		}
		info, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "fdinfo", e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				flags, _ := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
				if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
					t.Errorf("pid %d holds %s open for writing (fd %d, flags %o)", pid, target, fd, flags)
				}
			}
		}
	}
}

// checkNothingCreated fails if uid 65532 created anything in the
// world-writable folders since the test started (only possible without the
// read-only mount namespace).
func checkNothingCreated(t *testing.T, since time.Time) {
	t.Helper()
	for _, d := range []string{"/tmp", "/var/tmp", "/dev/shm", os.TempDir()} {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				continue
			}
			st, ok := info.Sys().(*syscall.Stat_t)
			if ok && st.Uid == nonRootID && !info.ModTime().Before(since) {
				t.Errorf("uid %d created %s during the test", nonRootID, filepath.Join(d, e.Name()))
			}
		}
	}
}

// reachableBinary returns bin if uid 65532 can execute it where it is,
// otherwise a copy of it in dir.
func reachableBinary(t *testing.T, bin, dir string) string {
	t.Helper()
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		t.Fatal(err)
	}
	reachable := true
	for p := bin; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil || info.Mode().Perm()&0o001 == 0 {
			reachable = false
			break
		}
		if p == "/" {
			break
		}
	}
	if reachable {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	copyPath := filepath.Join(dir, "cosched")
	dst, err := os.OpenFile(copyPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o555)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return copyPath
}

func get(client *http.Client, url, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
