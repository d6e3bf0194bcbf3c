// Package manifests checks, without a cluster, that what cosched ships is
// locked down: the RBAC in manifests/cosched/rbac.yaml grants exactly the
// reviewed permissions, the Deployment runs the container as non-root on a
// read-only root filesystem, and the image's final stage is a non-root
// distroless one. test/integration's TestCoschedBinary and
// TestSecurityReadOnlyNonRoot prove at run time that cosched works within
// these limits.
package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
	"sigs.k8s.io/yaml"
)

const (
	namespace      = "cosched-system"
	serviceAccount = "cosched"
	repoRoot       = "../.."
)

// reviewedRules is every permission cosched's own Roles and ClusterRoles may
// grant. A rule added to rbac.yaml fails TestRBACGrantsOnlyReviewedRules
// until it is added here too, with the reason cosched needs it.
var reviewedRules = map[string][]rbacv1.PolicyRule{
	"ClusterRole cosched:podgroups": {
		// Informer on PodGroups; patch records the scheduled-members
		// annotation on the PodGroup.
		{APIGroups: []string{"scheduling.x-k8s.io"}, Resources: []string{"podgroups"}, Verbs: []string{"get", "list", "watch", "patch"}},
		// The scheduler-plugins-compatible status.
		{APIGroups: []string{"scheduling.x-k8s.io"}, Resources: []string{"podgroups/status"}, Verbs: []string{"get", "patch", "update"}},
		// Gang-aware preemption evicts victims through the Eviction API so
		// that PodDisruptionBudgets hold.
		{APIGroups: []string{""}, Resources: []string{"pods/eviction"}, Verbs: []string{"create"}},
	},
	"Role cosched-system/cosched:leader-election": {
		// The first replica creates the Leases (create cannot be limited
		// by name).
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		// The scheduler's Lease and the PodGroup status updater's Lease.
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"cosched", "cosched-podgroup-status"}, Verbs: []string{"get", "update", "patch"}},
	},
}

// reviewedBindings is every role the cosched ServiceAccount may be bound to,
// as "<binding kind> [<namespace>] -> <role kind> <role name>".
var reviewedBindings = []string{
	// Everything the upstream kube-scheduler needs, maintained by the API
	// server for its own Kubernetes version.
	"ClusterRoleBinding -> ClusterRole system:kube-scheduler",
	"ClusterRoleBinding -> ClusterRole system:volume-scheduler",
	// Delegated authentication of the secure port reads the client CA.
	"RoleBinding kube-system -> Role extension-apiserver-authentication-reader",
	// cosched's own additions (reviewedRules).
	"ClusterRoleBinding -> ClusterRole cosched:podgroups",
	"RoleBinding cosched-system -> Role cosched:leader-election",
}

// forbiddenVerbs let a subject grant itself (or act as) more than it holds.
var forbiddenVerbs = []string{"*", "escalate", "bind", "impersonate"}

// forbiddenResources are readable credentials or ways into other workloads,
// by API group; "*" stands for every resource of the group. Wildcard groups
// and resources are forbidden as well.
var forbiddenResources = map[string][]string{
	"": {"secrets", "serviceaccounts/token", "pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "nodes/proxy", "services/proxy"},
	// RBAC objects, admission webhooks and certificate signing are ways to
	// give oneself more than one was granted.
	"rbac.authorization.k8s.io":    {"*"},
	"admissionregistration.k8s.io": {"*"},
	"certificates.k8s.io":          {"*"},
}

// rbacManifest is rbac.yaml, decoded into typed objects.
type rbacManifest struct {
	serviceAccounts     []*corev1.ServiceAccount
	clusterRoles        []*rbacv1.ClusterRole
	roles               []*rbacv1.Role
	clusterRoleBindings []*rbacv1.ClusterRoleBinding
	roleBindings        []*rbacv1.RoleBinding
}

func loadRBAC(t *testing.T) *rbacManifest {
	t.Helper()
	m := &rbacManifest{}
	for _, doc := range readDocuments(t, "manifests/cosched/rbac.yaml") {
		switch kind := documentKind(t, doc); kind {
		case "v1/ServiceAccount":
			m.serviceAccounts = append(m.serviceAccounts, decodeStrict[corev1.ServiceAccount](t, doc))
		case "rbac.authorization.k8s.io/v1/ClusterRole":
			m.clusterRoles = append(m.clusterRoles, decodeStrict[rbacv1.ClusterRole](t, doc))
		case "rbac.authorization.k8s.io/v1/Role":
			m.roles = append(m.roles, decodeStrict[rbacv1.Role](t, doc))
		case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
			m.clusterRoleBindings = append(m.clusterRoleBindings, decodeStrict[rbacv1.ClusterRoleBinding](t, doc))
		case "rbac.authorization.k8s.io/v1/RoleBinding":
			m.roleBindings = append(m.roleBindings, decodeStrict[rbacv1.RoleBinding](t, doc))
		default:
			t.Fatalf("rbac.yaml holds a %s; this test only knows ServiceAccounts, Roles, ClusterRoles and their bindings", kind)
		}
	}
	return m
}

// TestRBACGrantsOnlyReviewedRules: cosched's own Roles and ClusterRoles grant
// exactly reviewedRules, nothing dangerous, and nothing by aggregation.
func TestRBACGrantsOnlyReviewedRules(t *testing.T) {
	m := loadRBAC(t)
	got := map[string][]rbacv1.PolicyRule{}
	for _, cr := range m.clusterRoles {
		if cr.AggregationRule != nil {
			t.Errorf("ClusterRole %s aggregates other roles (%v): its permissions would not be reviewable here", cr.Name, cr.AggregationRule.ClusterRoleSelectors)
		}
		got["ClusterRole "+cr.Name] = cr.Rules
	}
	for _, r := range m.roles {
		if r.Namespace == "" {
			t.Errorf("Role %s has no namespace; it would land in whatever namespace kubectl defaults to", r.Name)
		}
		got["Role "+r.Namespace+"/"+r.Name] = r.Rules
	}
	for role, rules := range got {
		for _, p := range leastPrivilegeViolations(rules) {
			t.Errorf("%s: %s", role, p)
		}
	}

	granted, reviewed := expand(got), expand(reviewedRules)
	for _, g := range granted {
		if !slices.Contains(reviewed, g) {
			t.Errorf("rbac.yaml grants %s, which is not among the reviewed permissions: if cosched really needs it, add it to reviewedRules with the reason", g)
		}
	}
	for _, r := range reviewed {
		if !slices.Contains(granted, r) {
			t.Errorf("rbac.yaml no longer grants %s; remove it from reviewedRules", r)
		}
	}
}

// TestRBACBindsOnlyTheSchedulerServiceAccount: every binding names exactly the
// cosched ServiceAccount, and the set of roles bound is exactly
// reviewedBindings.
func TestRBACBindsOnlyTheSchedulerServiceAccount(t *testing.T) {
	m := loadRBAC(t)
	if len(m.serviceAccounts) != 1 || m.serviceAccounts[0].Namespace != namespace || m.serviceAccounts[0].Name != serviceAccount {
		t.Errorf("rbac.yaml should define exactly the ServiceAccount %s/%s, got %d ServiceAccounts", namespace, serviceAccount, len(m.serviceAccounts))
	}
	want := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: namespace}
	var bound []string
	check := func(binding string, subjects []rbacv1.Subject, ref rbacv1.RoleRef) {
		if len(subjects) != 1 || subjects[0] != want {
			t.Errorf("%s binds %+v; it must bind only the ServiceAccount %s/%s", binding, subjects, namespace, serviceAccount)
		}
		if ref.APIGroup != rbacv1.GroupName {
			t.Errorf("%s: roleRef.apiGroup is %q, want %q", binding, ref.APIGroup, rbacv1.GroupName)
		}
	}
	for _, b := range m.clusterRoleBindings {
		check("ClusterRoleBinding "+b.Name, b.Subjects, b.RoleRef)
		bound = append(bound, fmt.Sprintf("ClusterRoleBinding -> %s %s", b.RoleRef.Kind, b.RoleRef.Name))
	}
	for _, b := range m.roleBindings {
		check("RoleBinding "+b.Namespace+"/"+b.Name, b.Subjects, b.RoleRef)
		bound = append(bound, fmt.Sprintf("RoleBinding %s -> %s %s", b.Namespace, b.RoleRef.Kind, b.RoleRef.Name))
	}
	sort.Strings(bound)
	reviewed := slices.Sorted(slices.Values(reviewedBindings))
	for _, b := range bound {
		if !slices.Contains(reviewed, b) {
			t.Errorf("rbac.yaml binds %q, which is not among the reviewed bindings: if cosched really needs it, add it to reviewedBindings with the reason", b)
		}
	}
	for _, b := range reviewed {
		if !slices.Contains(bound, b) {
			t.Errorf("rbac.yaml no longer binds %q; remove it from reviewedBindings", b)
		}
	}
	if len(bound) != len(slices.Compact(slices.Clone(bound))) {
		t.Errorf("rbac.yaml binds the same role twice: %v", bound)
	}

	// Every role a binding names exists: either in rbac.yaml or among the
	// roles every API server maintains.
	own := map[string]bool{}
	for _, cr := range m.clusterRoles {
		own["ClusterRole "+cr.Name] = true
	}
	for _, r := range m.roles {
		own["Role "+r.Namespace+"/"+r.Name] = true
	}
	for _, b := range m.roleBindings {
		if b.RoleRef.Kind == "Role" && !own["Role "+b.Namespace+"/"+b.RoleRef.Name] && bootstrapRole(b.Namespace, b.RoleRef.Name) == nil {
			t.Errorf("RoleBinding %s/%s names Role %s, which neither rbac.yaml nor the API server defines in %s", b.Namespace, b.Name, b.RoleRef.Name, b.Namespace)
		}
	}
	for _, b := range m.clusterRoleBindings {
		if !own["ClusterRole "+b.RoleRef.Name] && bootstrapClusterRole(b.RoleRef.Name) == nil {
			t.Errorf("ClusterRoleBinding %s names ClusterRole %s, which neither rbac.yaml nor the API server defines", b.Name, b.RoleRef.Name)
		}
	}
}

// TestRBACBoundSystemRolesAreLeastPrivilege applies the same least-privilege
// checks to the API server's own roles that rbac.yaml binds
// (system:kube-scheduler and friends, as Kubernetes v1.37 defines them), so
// the ServiceAccount's effective permissions, not only cosched's additions,
// include no secrets, wildcards or escalation.
func TestRBACBoundSystemRolesAreLeastPrivilege(t *testing.T) {
	m := loadRBAC(t)
	checked := 0
	for _, b := range m.clusterRoleBindings {
		if cr := bootstrapClusterRole(b.RoleRef.Name); cr != nil {
			checked++
			if cr.AggregationRule != nil {
				t.Errorf("ClusterRole %s (bound by %s) aggregates other roles", cr.Name, b.Name)
			}
			for _, p := range leastPrivilegeViolations(cr.Rules) {
				t.Errorf("ClusterRole %s (bound by %s): %s", cr.Name, b.Name, p)
			}
		}
	}
	for _, b := range m.roleBindings {
		if b.RoleRef.Kind != "Role" {
			continue
		}
		if r := bootstrapRole(b.Namespace, b.RoleRef.Name); r != nil {
			checked++
			for _, p := range leastPrivilegeViolations(r.Rules) {
				t.Errorf("Role %s/%s (bound by %s): %s", r.Namespace, r.Name, b.Name, p)
			}
		}
	}
	if checked == 0 {
		t.Errorf("found none of the API server's roles among rbac.yaml's bindings; the bootstrap policy lookup is broken")
	}
}

// leastPrivilegeViolations lists what no role bound to cosched may grant.
func leastPrivilegeViolations(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			out = append(out, fmt.Sprintf("grants non-resource URLs %v", r.NonResourceURLs))
		}
		for _, v := range r.Verbs {
			if slices.Contains(forbiddenVerbs, v) {
				out = append(out, fmt.Sprintf("grants the verb %q on %v", v, append(slices.Clone(r.Resources), r.NonResourceURLs...)))
			}
		}
		if slices.Contains(r.ResourceNames, "*") {
			out = append(out, fmt.Sprintf("lists the resource name \"*\" for %v", r.Resources))
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if isForbidden(g, res) {
					out = append(out, fmt.Sprintf("grants %v on %s", r.Verbs, groupResource(g, res)))
				}
			}
		}
	}
	return out
}

func isForbidden(group, resource string) bool {
	if group == "*" || resource == "*" || strings.HasPrefix(resource, "*/") || strings.HasSuffix(resource, "/*") {
		return true
	}
	for _, f := range forbiddenResources[group] {
		if f == "*" || f == resource {
			return true
		}
	}
	return false
}

// expand turns rules into sorted one-line grants, one per role, API group,
// resource, resource name and verb, so the comparison does not depend on
// how rules are grouped or ordered.
func expand(roles map[string][]rbacv1.PolicyRule) []string {
	var out []string
	for role, rules := range roles {
		for _, r := range rules {
			names := r.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, n := range names {
						for _, v := range r.Verbs {
							grant := fmt.Sprintf("%s: %s %s", role, v, groupResource(g, res))
							if n != "" {
								grant += " named " + n
							}
							out = append(out, grant)
						}
					}
				}
			}
			for _, u := range r.NonResourceURLs {
				for _, v := range r.Verbs {
					out = append(out, fmt.Sprintf("%s: %s %s", role, v, u))
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func groupResource(group, resource string) string {
	if group == "" {
		return resource + " (core)"
	}
	return resource + "." + group
}

func bootstrapClusterRole(name string) *rbacv1.ClusterRole {
	for _, cr := range bootstrappolicy.ClusterRoles() {
		if cr.Name == name {
			return &cr
		}
	}
	return nil
}

func bootstrapRole(ns, name string) *rbacv1.Role {
	for _, r := range bootstrappolicy.NamespaceRoles()[ns] {
		if r.Name == name {
			r.Namespace = ns
			return &r
		}
	}
	return nil
}

// TestDeploymentIsHardened: every container of the Deployment runs as a
// non-root user without privileges, on a read-only root filesystem, under
// the runtime's default seccomp profile, with the ServiceAccount token it
// authenticates with.
func TestDeploymentIsHardened(t *testing.T) {
	var deployments []*appsv1.Deployment
	for _, doc := range readDocuments(t, "manifests/cosched/deployment.yaml") {
		if kind := documentKind(t, doc); kind != "apps/v1/Deployment" {
			t.Fatalf("deployment.yaml holds a %s; expected only the Deployment", kind)
		}
		deployments = append(deployments, decodeStrict[appsv1.Deployment](t, doc))
	}
	if len(deployments) != 1 {
		t.Fatalf("deployment.yaml holds %d Deployments, want 1", len(deployments))
	}
	d := deployments[0]
	spec := d.Spec.Template.Spec
	podSC := spec.SecurityContext
	if podSC == nil {
		podSC = &corev1.PodSecurityContext{}
	}

	if spec.ServiceAccountName != serviceAccount || d.Namespace != namespace {
		t.Errorf("the Deployment runs as ServiceAccount %s/%s; want %s/%s, the one rbac.yaml binds", d.Namespace, spec.ServiceAccountName, namespace, serviceAccount)
	}
	// cosched talks to the API server with the in-cluster config, so its
	// token must be mounted: neither the pod nor the ServiceAccount may
	// switch automounting off.
	if a := spec.AutomountServiceAccountToken; a != nil && !*a {
		t.Errorf("automountServiceAccountToken is false on the pod; cosched authenticates with the mounted ServiceAccount token")
	}
	for _, sa := range loadRBAC(t).serviceAccounts {
		if a := sa.AutomountServiceAccountToken; a != nil && !*a && spec.AutomountServiceAccountToken == nil {
			t.Errorf("ServiceAccount %s switches token automounting off and the pod does not switch it back on", sa.Name)
		}
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("the pod shares host namespaces (hostNetwork %v, hostPID %v, hostIPC %v)", spec.HostNetwork, spec.HostPID, spec.HostIPC)
	}
	if g := podSC.FSGroup; g != nil && *g == 0 {
		t.Errorf("fsGroup is 0 (root)")
	}
	if slices.Contains(podSC.SupplementalGroups, 0) {
		t.Errorf("supplementalGroups contain 0 (root)")
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		switch {
		case v.HostPath != nil:
			t.Errorf("volume %s is a hostPath", v.Name)
		case v.Secret != nil:
			t.Errorf("volume %s mounts Secret %s; cosched needs no Secret", v.Name, v.Secret.SecretName)
		}
	}

	containers := append(slices.Clone(spec.InitContainers), spec.Containers...)
	if len(spec.Containers) == 0 {
		t.Fatal("the Deployment has no containers")
	}
	for _, c := range containers {
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		// A container's own setting wins over the pod's.
		runAsNonRoot := firstSet(sc.RunAsNonRoot, podSC.RunAsNonRoot)
		runAsUser := firstSet(sc.RunAsUser, podSC.RunAsUser)
		runAsGroup := firstSet(sc.RunAsGroup, podSC.RunAsGroup)
		seccomp := firstSet(sc.SeccompProfile, podSC.SeccompProfile)

		if runAsNonRoot == nil || !*runAsNonRoot {
			t.Errorf("container %s: runAsNonRoot is not true", c.Name)
		}
		if runAsUser == nil || *runAsUser == 0 {
			t.Errorf("container %s: runAsUser is %s; want a non-zero UID", c.Name, show(runAsUser))
		}
		if runAsGroup != nil && *runAsGroup == 0 {
			t.Errorf("container %s: runAsGroup is 0 (root)", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is %s, want true", c.Name, show(sc.ReadOnlyRootFilesystem))
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is %s, want false", c.Name, show(sc.AllowPrivilegeEscalation))
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) {
			t.Errorf("container %s: capabilities do not drop ALL", c.Name)
		} else if len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s adds capabilities %v", c.Name, sc.Capabilities.Add)
		}
		if seccomp == nil {
			t.Errorf("container %s: seccompProfile is unset, want RuntimeDefault", c.Name)
		} else if seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s: seccompProfile is %s, want RuntimeDefault", c.Name, seccomp.Type)
		}
		if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
			t.Errorf("container %s: procMount is %s", c.Name, *sc.ProcMount)
		}
		// With a read-only root filesystem, what is writable is what is
		// mounted writable: only scratch space.
		for _, vm := range c.VolumeMounts {
			v, ok := volumes[vm.Name]
			if !ok {
				t.Errorf("container %s mounts volume %s, which the pod does not define", c.Name, vm.Name)
				continue
			}
			if !vm.ReadOnly && v.EmptyDir == nil {
				t.Errorf("container %s mounts volume %s writable at %s; only emptyDir scratch space may be writable", c.Name, vm.Name, vm.MountPath)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				t.Errorf("container %s reads env %s from a Secret", c.Name, e.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				t.Errorf("container %s reads env from Secret %s", c.Name, e.SecretRef.Name)
			}
		}
		// The endpoints stay as kube-scheduler serves them: health on the
		// secure port, /metrics only for those RBAC allows.
		for _, arg := range append(slices.Clone(c.Command), c.Args...) {
			if strings.HasPrefix(arg, "--authorization-always-allow-paths") && strings.Contains(arg, "/metrics") {
				t.Errorf("container %s serves /metrics without authorization (%s)", c.Name, arg)
			}
		}
		for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
				t.Errorf("container %s: the %s probe uses %s; kube-scheduler serves health only over HTTPS", c.Name, name, p.HTTPGet.Scheme)
			}
		}
	}
}

// TestImageRunsAsNonRootOnDistroless: the Dockerfile's final stage is a
// distroless static image and switches to a non-root user.
func TestImageRunsAsNonRootOnDistroless(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := dockerfileStages(string(data))
	if len(stages) == 0 {
		t.Fatal("the Dockerfile has no FROM")
	}
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.image, "gcr.io/distroless/static") {
		t.Errorf("the final stage is FROM %q; want gcr.io/distroless/static (no shell, no package manager)", final.image)
	}
	if final.user == "" {
		t.Fatalf("the final stage sets no USER; the image must not default to root")
	}
	user, group, _ := strings.Cut(final.user, ":")
	if !nonRootID(user) {
		t.Errorf("the final stage runs as USER %q; want a non-zero numeric UID or nonroot", final.user)
	}
	if group != "" && !nonRootID(group) {
		t.Errorf("the final stage runs with group %q; want a non-zero numeric GID or nonroot", group)
	}
}

// nonRootID accepts distroless's "nonroot" and any numeric ID but 0. Names
// other than nonroot are rejected: the kubelet cannot verify runAsNonRoot for
// them.
func nonRootID(id string) bool {
	if id == "nonroot" {
		return true
	}
	n, err := strconv.ParseUint(id, 10, 32)
	return err == nil && n != 0
}

type dockerStage struct {
	image string
	user  string // the last USER of the stage
}

// dockerfileStages reads the FROM and USER instructions of a Dockerfile,
// after joining continuation lines and dropping comments.
func dockerfileStages(src string) []dockerStage {
	var stages []dockerStage
	var instruction strings.Builder
	flush := func() {
		fields := strings.Fields(instruction.String())
		instruction.Reset()
		if len(fields) == 0 {
			return
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			image := ""
			for _, f := range fields[1:] {
				if !strings.HasPrefix(f, "--") {
					image = f
					break
				}
			}
			stages = append(stages, dockerStage{image: image})
		case "USER":
			if len(stages) > 0 && len(fields) > 1 {
				stages[len(stages)-1].user = fields[1]
			}
		}
	}
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			instruction.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		instruction.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

// readDocuments splits a multi-document YAML file under the repository root.
func readDocuments(t *testing.T, rel string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", rel, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s holds no objects", rel)
	}
	return docs
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func documentKind(t *testing.T, doc []byte) string {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatal(err)
	}
	return tm.APIVersion + "/" + tm.Kind
}

// decodeStrict fails on fields the type does not have, so a misspelt key
// (say "verb:") cannot silently drop a restriction.
func decodeStrict[T any](t *testing.T, doc []byte) *T {
	t.Helper()
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("decoding %T: %v\n%s", obj, err, doc)
	}
	return obj
}

func firstSet[T any](values ...*T) *T {
	for _, v := range values {
		if v != nil {
			return v
		}
	}
	return nil
}

func show[T any](v *T) string {
	if v == nil {
		return "unset"
	}
	return fmt.Sprintf("%v", *v)
}
