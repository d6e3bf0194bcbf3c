// Package chart checks the Helm chart charts/cosched without a cluster: with
// default values it renders exactly the objects of manifests/ (the files
// manifests/kustomization.yaml lists, i.e. what `kubectl apply -k manifests/`
// installs), and every value renders a configuration the scheduler accepts.
//
// The chart is rendered by the helm binary that hack/build-helm.sh builds into
// _output/bin/helm (or $HELM); make verify builds it and runs this package.
package chart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	schedvalidation "k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	"sigs.k8s.io/yaml"

	gangconfig "github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/gang"
	"github.com/cosched/cosched/test/testutil"
)

const (
	chartDir    = "charts/cosched"
	releaseName = "cosched"
	// keepAnnotation is the one thing the chart adds to manifests/: Helm must
	// not delete the CRD (and every PodGroup with it) on uninstall.
	keepAnnotation = "helm.sh/resource-policy"
	// configMapKey holds the KubeSchedulerConfiguration in the ConfigMap.
	configMapKey = "config.yaml"
)

// object is one decoded manifest.
type object = map[string]interface{}

// helm returns the helm binary: $HELM, else _output/bin/helm.
func helm(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	root := repoRoot(t)
	h := filepath.Join(root, "_output", "bin", "helm")
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("helm not found at %s (and HELM is not set): build it with hack/build-helm.sh", h)
	}
	return h
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// render runs helm template on the chart with extra arguments (--set ...,
// --namespace ...) and returns its objects, or helm's error output.
func render(t *testing.T, args ...string) ([]object, error) {
	t.Helper()
	root := repoRoot(t)
	cmdArgs := append([]string{"template", releaseName, filepath.Join(root, chartDir)}, args...)
	cmd := exec.Command(helm(t), cmdArgs...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %v: %s", strings.Join(cmdArgs, " "), err, stderr.String())
	}
	return decodeAll(stdout.Bytes())
}

func mustRender(t *testing.T, args ...string) []object {
	t.Helper()
	objs, err := render(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// decodeAll decodes a multi-document YAML stream, skipping empty documents.
func decodeAll(data []byte) ([]object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []object
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var obj object
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("decoding %q: %w", doc, err)
		}
		if len(obj) > 0 {
			out = append(out, obj)
		}
	}
}

// manifestObjects returns the objects of the files manifests/kustomization.yaml
// lists, the same set `kubectl kustomize manifests/` prints.
func manifestObjects(t *testing.T) []object {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "manifests")
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	var raw map[string]interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	// Anything that would make kustomize change the objects (patches,
	// namePrefix, labels, ...) fails this test until it and the chart handle it.
	for key := range raw {
		if key != "apiVersion" && key != "kind" && key != "resources" {
			t.Fatalf("manifests/kustomization.yaml uses %q: this test only understands plain resources; teach it (and the chart)", key)
		}
	}
	if len(k.Resources) == 0 {
		t.Fatal("manifests/kustomization.yaml lists no resources")
	}
	var out []object
	for _, res := range k.Resources {
		b, err := os.ReadFile(filepath.Join(dir, res))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(b)
		if err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		out = append(out, objs...)
	}
	return out
}

func str(o object, path ...string) string {
	var cur interface{} = o
	for _, p := range path {
		m, ok := cur.(map[string]interface{})
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

// key names an object the way kubectl does: kind, namespace and name.
func key(o object) string {
	k := str(o, "apiVersion") + " " + str(o, "kind") + " "
	if ns := str(o, "metadata", "namespace"); ns != "" {
		k += ns + "/"
	}
	return k + str(o, "metadata", "name")
}

func byKey(t *testing.T, objs []object) map[string]object {
	t.Helper()
	m := map[string]object{}
	for _, o := range objs {
		k := key(o)
		if _, dup := m[k]; dup {
			t.Fatalf("%s appears twice", k)
		}
		m[k] = o
	}
	return m
}

func sortedKeys(m map[string]object) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseConfigData replaces a ConfigMap's config.yaml string by its parsed
// YAML, so that comments and formatting do not count but every field does.
func parseConfigData(t *testing.T, o object) {
	t.Helper()
	data, _ := o["data"].(map[string]interface{})
	s, ok := data[configMapKey].(string)
	if !ok {
		return
	}
	var parsed interface{}
	if err := yaml.Unmarshal([]byte(s), &parsed); err != nil {
		t.Fatalf("%s: data[%s] is not YAML: %v", key(o), configMapKey, err)
	}
	data[configMapKey] = parsed
}

// TestDefaultsRenderManifests is the drift check: with default values the
// chart renders the objects of manifests/, field for field. The only
// difference allowed is the CRD's helm.sh/resource-policy: keep annotation
// (and the ConfigMap's scheduler configuration is compared as parsed YAML, so
// only comments may differ).
func TestDefaultsRenderManifests(t *testing.T) {
	want := byKey(t, manifestObjects(t))
	got := byKey(t, mustRender(t))

	if diff := cmp.Diff(sortedKeys(want), sortedKeys(got)); diff != "" {
		t.Fatalf("objects (-manifests/ +chart):\n%s", diff)
	}
	sawKeep := false
	for k, g := range got {
		w := want[k]
		if str(g, "kind") == "CustomResourceDefinition" {
			ann, _ := g["metadata"].(map[string]interface{})["annotations"].(map[string]interface{})
			if ann[keepAnnotation] != "keep" {
				t.Errorf("%s: annotation %s=%v, want keep", k, keepAnnotation, ann[keepAnnotation])
			}
			delete(ann, keepAnnotation)
			sawKeep = true
		}
		if str(g, "kind") == "Deployment" {
			// The chart's pods carry a checksum of their ConfigMap so that
			// helm upgrade rolls them out; kubectl apply -k has no such
			// step (TestConfigChangeRollsOutPods).
			path := []string{"spec", "template", "metadata", "annotations"}
			if str(g, append(path, configChecksum)...) == "" {
				t.Errorf("%s: the pod template has no %s annotation", k, configChecksum)
			}
			unstructured.RemoveNestedField(g, append(path, configChecksum)...)
			if ann, _, _ := unstructured.NestedMap(g, path...); len(ann) == 0 {
				unstructured.RemoveNestedField(g, path...)
			}
		}
		if str(g, "kind") == "ConfigMap" {
			parseConfigData(t, g)
			parseConfigData(t, w)
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("%s differs (-manifests/ +chart):\n%s", k, diff)
		}
	}
	if !sawKeep {
		t.Error("the chart renders no CRD with default values")
	}
}

// configChecksum is the pod-template annotation that changes with the
// scheduler's ConfigMap.
const configChecksum = "checksum/config"

// TestConfigChangeRollsOutPods: kube-scheduler reads its configuration only
// at start, so a helm upgrade that changes the ConfigMap must change the pod
// template too (or the running pods would keep the old configuration), and
// one that does not change it must not restart the scheduler.
func TestConfigChangeRollsOutPods(t *testing.T) {
	checksum := func(args ...string) string {
		t.Helper()
		for _, o := range mustRender(t, args...) {
			if str(o, "kind") == "Deployment" {
				return str(o, "spec", "template", "metadata", "annotations", configChecksum)
			}
		}
		t.Fatalf("no Deployment rendered with %v", args)
		return ""
	}
	base := checksum()
	if base == "" {
		t.Fatalf("the pod template has no %s annotation", configChecksum)
	}
	cases := []struct {
		name     string
		args     []string
		wantRoll bool
	}{
		{name: "a gang argument", args: []string{"--set", "gangArgs.podGroupBackoffSeconds=7"}, wantRoll: true},
		{name: "client QPS", args: []string{"--set", "clientConnection.qps=300"}, wantRoll: true},
		{name: "a profile turned off", args: []string{"--set", "profiles.memberByMember.enabled=false"}, wantRoll: true},
		{name: "the image tag only", args: []string{"--set", "image.tag=v2"}},
		{name: "a pod annotation of the user's", args: []string{"--set", "podAnnotations.team=ml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checksum(tc.args...)
			if rolled := got != base; rolled != tc.wantRoll {
				t.Errorf("%s changed = %v, want %v (%s -> %s)", configChecksum, rolled, tc.wantRoll, base, got)
			}
		})
	}
}

// TestChartCRDFileIsManifests: the chart's copy of the CRD is byte for byte
// manifests/crds/ (hack/update-crds.sh writes both).
func TestChartCRDFileIsManifests(t *testing.T) {
	root := repoRoot(t)
	const name = "scheduling.x-k8s.io_podgroups.yaml"
	want, err := os.ReadFile(filepath.Join(root, "manifests", "crds", name))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, chartDir, "files", name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s/files/%s differs from manifests/crds/%s; run hack/update-crds.sh", chartDir, name, name)
	}
}

// rendered is the chart output of one case, indexed for the checks.
type rendered struct {
	objs []object
	cfg  *schedconfig.KubeSchedulerConfiguration
	// gangArgs per scheduler name, decoded, defaulted and validated as the
	// CoschedGang plugin does.
	gangArgs map[string]*gangconfig.CoschedGangArgs
}

func (r *rendered) find(kind, namespace, name string) object {
	for _, o := range r.objs {
		if str(o, "kind") == kind && str(o, "metadata", "namespace") == namespace && str(o, "metadata", "name") == name {
			return o
		}
	}
	return nil
}

func (r *rendered) kinds(kind string) []string {
	var out []string
	for _, o := range r.objs {
		if str(o, "kind") == kind {
			out = append(out, strings.TrimPrefix(str(o, "metadata", "namespace")+"/", "/")+str(o, "metadata", "name"))
		}
	}
	sort.Strings(out)
	return out
}

func (r *rendered) profiles() []string {
	var out []string
	for _, p := range r.cfg.Profiles {
		out = append(out, p.SchedulerName)
	}
	return out
}

// container returns the Deployment's one container.
func (r *rendered) container(t *testing.T, namespace, name string) map[string]interface{} {
	t.Helper()
	d := r.find("Deployment", namespace, name)
	if d == nil {
		t.Fatalf("no Deployment %s/%s; have %v", namespace, name, r.kinds("Deployment"))
	}
	cs := d["spec"].(map[string]interface{})["template"].(map[string]interface{})["spec"].(map[string]interface{})["containers"].([]interface{})
	if len(cs) != 1 {
		t.Fatalf("Deployment %s/%s has %d containers", namespace, name, len(cs))
	}
	return cs[0].(map[string]interface{})
}

// decodeConfig decodes the ConfigMap's configuration the way kube-scheduler
// does (strictly, with defaults), validates it, and decodes every profile's
// CoschedGang args the way the plugin does.
func decodeConfig(t *testing.T, r *rendered, namespace, name string) {
	t.Helper()
	cm := r.find("ConfigMap", namespace, name+"-config")
	if cm == nil {
		t.Fatalf("no ConfigMap %s/%s-config; have %v", namespace, name, r.kinds("ConfigMap"))
	}
	data := str(cm, "data", configMapKey)
	obj, _, err := schedscheme.Codecs.UniversalDecoder().Decode([]byte(data), nil, nil)
	if err != nil {
		t.Fatalf("kube-scheduler cannot decode the rendered configuration: %v\n%s", err, data)
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok {
		t.Fatalf("the rendered configuration is a %T", obj)
	}
	if err := schedvalidation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatalf("kube-scheduler rejects the rendered configuration: %v\n%s", err, data)
	}
	r.cfg = cfg
	r.gangArgs = map[string]*gangconfig.CoschedGangArgs{}
	// The status Lease namespace defaults from POD_NAMESPACE, which the
	// Deployment sets to its own namespace.
	t.Setenv("POD_NAMESPACE", namespace)
	for i, p := range cfg.Profiles {
		for j, pc := range p.PluginConfig {
			if pc.Name != gang.Name {
				continue
			}
			args, err := gangconfig.Decode(pc.Args, field.NewPath("profiles").Index(i).Child("pluginConfig").Index(j).Child("args"))
			if err != nil {
				t.Fatalf("CoschedGang rejects the args of profile %s: %v", p.SchedulerName, err)
			}
			r.gangArgs[p.SchedulerName] = args
		}
		if _, ok := r.gangArgs[p.SchedulerName]; !ok {
			t.Fatalf("profile %s has no CoschedGang pluginConfig", p.SchedulerName)
		}
	}
}

func defaultedArgs(namespace string, mutate func(*gangconfig.CoschedGangArgs)) *gangconfig.CoschedGangArgs {
	a := &gangconfig.CoschedGangArgs{StatusLeaseNamespace: namespace}
	gangconfig.SetDefaults(a)
	if mutate != nil {
		mutate(a)
	}
	return a
}

func ptrTo[T any](v T) *T { return &v }

// TestValues renders the chart with the values users set and checks the
// objects and the scheduler configuration that result; every case's
// configuration must be one kube-scheduler and CoschedGang accept.
func TestValues(t *testing.T) {
	const ns = "cosched-system"
	rbacObjects := []string{
		"ClusterRole:cosched:podgroups",
		"ClusterRoleBinding:cosched:kube-scheduler",
		"ClusterRoleBinding:cosched:podgroups",
		"ClusterRoleBinding:cosched:volume-scheduler",
		"Role:cosched-system/cosched:leader-election",
		"RoleBinding:cosched-system/cosched:leader-election",
		"RoleBinding:kube-system/cosched:extension-apiserver-authentication-reader",
	}
	rbacOf := func(r *rendered) []string {
		var out []string
		for _, kind := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
			for _, n := range r.kinds(kind) {
				out = append(out, kind+":"+n)
			}
		}
		return out
	}
	cases := []struct {
		name string
		args []string
		// namespace and name of the scheduler's ConfigMap and Deployment.
		ns, objName string
		check       func(t *testing.T, r *rendered)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, r *rendered) {
				if diff := cmp.Diff([]string{"cosched", "scheduler-plugins-scheduler", "cosched-member-by-member"}, r.profiles()); diff != "" {
					t.Errorf("profiles (-want +got):\n%s", diff)
				}
				want := map[string]*gangconfig.CoschedGangArgs{
					"cosched":                     defaultedArgs(ns, nil),
					"scheduler-plugins-scheduler": defaultedArgs(ns, nil),
					"cosched-member-by-member": defaultedArgs(ns, func(a *gangconfig.CoschedGangArgs) {
						a.PlacementStrategy = gangconfig.PlacementMemberByMember
					}),
				}
				if diff := cmp.Diff(want, r.gangArgs); diff != "" {
					t.Errorf("gang args (-want +got):\n%s", diff)
				}
				if !r.cfg.LeaderElection.LeaderElect || r.cfg.LeaderElection.ResourceNamespace != ns || r.cfg.LeaderElection.ResourceName != "cosched" {
					t.Errorf("leader election %+v, want on with the Lease %s/cosched", r.cfg.LeaderElection, ns)
				}
				if diff := cmp.Diff(rbacObjects, rbacOf(r)); diff != "" {
					t.Errorf("RBAC objects (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "KubeRay alias off",
			args: []string{"--set", "profiles.kuberay.enabled=false"},
			check: func(t *testing.T, r *rendered) {
				if diff := cmp.Diff([]string{"cosched", "cosched-member-by-member"}, r.profiles()); diff != "" {
					t.Errorf("profiles (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "only the KubeRay alias, renamed profiles",
			args: []string{"--set", "profiles.cosched.enabled=false,profiles.memberByMember.enabled=false",
				"--set", "profiles.kuberay.schedulerName=ray-gangs"},
			check: func(t *testing.T, r *rendered) {
				if diff := cmp.Diff([]string{"ray-gangs"}, r.profiles()); diff != "" {
					t.Errorf("profiles (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "every CoschedGang argument, and a per-profile override",
			args: []string{"--set", "gangArgs.permitWaitingTimeSeconds=300,gangArgs.podGroupBackoffSeconds=0,gangArgs.managePodGroupStatus=false",
				"--set", "gangArgs.statusLeaseNamespace=kube-system,gangArgs.gangPreemption=false,gangArgs.placementStrategy=MemberByMember",
				"--set", "profiles.kuberay.gangArgs.placementStrategy=Atomic,profiles.kuberay.gangArgs.permitWaitingTimeSeconds=900"},
			check: func(t *testing.T, r *rendered) {
				all := func(a *gangconfig.CoschedGangArgs) {
					a.PermitWaitingTimeSeconds = ptrTo[int64](300)
					a.PodGroupBackoffSeconds = ptrTo[int64](0)
					a.ManagePodGroupStatus = ptrTo(false)
					a.StatusLeaseNamespace = "kube-system"
					a.GangPreemption = ptrTo(false)
					a.PlacementStrategy = gangconfig.PlacementMemberByMember
				}
				want := map[string]*gangconfig.CoschedGangArgs{
					"cosched": defaultedArgs(ns, all),
					"scheduler-plugins-scheduler": defaultedArgs(ns, func(a *gangconfig.CoschedGangArgs) {
						all(a)
						a.PlacementStrategy = gangconfig.PlacementAtomic
						a.PermitWaitingTimeSeconds = ptrTo[int64](900)
					}),
					"cosched-member-by-member": defaultedArgs(ns, all),
				}
				if diff := cmp.Diff(want, r.gangArgs); diff != "" {
					t.Errorf("gang args (-want +got):\n%s", diff)
				}
				// The status writer's Lease moved: it gets a Role there.
				role := r.find("Role", "kube-system", "cosched:podgroup-status-lease")
				if role == nil || r.find("RoleBinding", "kube-system", "cosched:podgroup-status-lease") == nil {
					t.Fatalf("no Role/RoleBinding for the status Lease in kube-system; roles %v", r.kinds("Role"))
				}
				if got := fmt.Sprint(role["rules"]); !strings.Contains(got, "cosched-podgroup-status") {
					t.Errorf("status Lease Role rules %s do not name cosched-podgroup-status", got)
				}
			},
		},
		{
			name: "a profile's 0 and false win over the global value",
			args: []string{"--set", "gangArgs.gangPreemption=true,profiles.memberByMember.gangArgs.podGroupBackoffSeconds=0,profiles.memberByMember.gangArgs.gangPreemption=false"},
			check: func(t *testing.T, r *rendered) {
				want := map[string]*gangconfig.CoschedGangArgs{
					"cosched":                     defaultedArgs(ns, nil),
					"scheduler-plugins-scheduler": defaultedArgs(ns, nil),
					"cosched-member-by-member": defaultedArgs(ns, func(a *gangconfig.CoschedGangArgs) {
						a.PlacementStrategy = gangconfig.PlacementMemberByMember
						a.PodGroupBackoffSeconds = ptrTo[int64](0)
						a.GangPreemption = ptrTo(false)
					}),
				}
				if diff := cmp.Diff(want, r.gangArgs); diff != "" {
					t.Errorf("gang args (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "arguments left empty take the scheduler's defaults",
			args: []string{"--set", "gangArgs.permitWaitingTimeSeconds=null,gangArgs.podGroupBackoffSeconds=null"},
			check: func(t *testing.T, r *rendered) {
				if got := r.gangArgs["cosched"]; *got.PermitWaitingTimeSeconds != gangconfig.DefaultPermitWaitingTimeSeconds ||
					*got.PodGroupBackoffSeconds != gangconfig.DefaultPodGroupBackoffSeconds {
					t.Errorf("args %+v, want the defaults", got)
				}
				if strings.Contains(str(r.find("ConfigMap", ns, "cosched-config"), "data", configMapKey), "permitWaitingTimeSeconds") {
					t.Error("an argument set to null is still written into the configuration")
				}
			},
		},
		{
			name: "CRD skipped when scheduler-plugins installed it",
			args: []string{"--set", "crd.install=false"},
			check: func(t *testing.T, r *rendered) {
				if got := r.kinds("CustomResourceDefinition"); len(got) != 0 {
					t.Errorf("CRDs %v rendered with crd.install=false", got)
				}
			},
		},
		{
			name: "CRD without the keep policy",
			args: []string{"--set", "crd.keep=false"},
			check: func(t *testing.T, r *rendered) {
				crd := r.find("CustomResourceDefinition", "", "podgroups.scheduling.x-k8s.io")
				if crd == nil {
					t.Fatal("no CRD")
				}
				if str(crd, "metadata", "annotations", keepAnnotation) != "" {
					t.Errorf("crd.keep=false still renders %s", keepAnnotation)
				}
			},
		},
		{
			name: "one replica without leader election",
			args: []string{"--set", "replicas=1,leaderElection.enabled=false"},
			check: func(t *testing.T, r *rendered) {
				if r.cfg.LeaderElection.LeaderElect {
					t.Error("leaderElect is on")
				}
				d := r.find("Deployment", ns, "cosched")
				if got := d["spec"].(map[string]interface{})["replicas"]; got != float64(1) {
					t.Errorf("replicas %v, want 1", got)
				}
			},
		},
		{
			name: "leader election timing and client connection",
			args: []string{"--set", "leaderElection.leaseDuration=60s,leaderElection.renewDeadline=45s,leaderElection.retryPeriod=10s,leaderElection.resourceName=sched-lease",
				"--set", "clientConnection.qps=20,clientConnection.burst=40"},
			check: func(t *testing.T, r *rendered) {
				le := r.cfg.LeaderElection
				if le.LeaseDuration.Duration.String() != "1m0s" || le.RenewDeadline.Duration.String() != "45s" || le.RetryPeriod.Duration.String() != "10s" || le.ResourceName != "sched-lease" {
					t.Errorf("leader election %+v", le)
				}
				if r.cfg.ClientConnection.QPS != 20 || r.cfg.ClientConnection.Burst != 40 {
					t.Errorf("client connection %+v", r.cfg.ClientConnection)
				}
				role := r.find("Role", ns, "cosched:leader-election")
				if got := fmt.Sprint(role["rules"]); !strings.Contains(got, "sched-lease") || strings.Contains(got, "[cosched ") {
					t.Errorf("leader-election Role rules %s do not follow the Lease name", got)
				}
			},
		},
		{
			name:    "second installation: other name, other namespace",
			args:    []string{"--set", "name=gangs,namespace.name=gangs-system,crd.install=false,profiles.cosched.schedulerName=gangs"},
			ns:      "gangs-system",
			objName: "gangs",
			check: func(t *testing.T, r *rendered) {
				for _, o := range r.objs {
					n := str(o, "metadata", "name")
					if strings.HasPrefix(n, "cosched") {
						t.Errorf("%s still has the default name", key(o))
					}
					if ns := str(o, "metadata", "namespace"); ns != "" && ns != "gangs-system" && ns != "kube-system" {
						t.Errorf("%s is in namespace %s", key(o), ns)
					}
					if str(o, "metadata", "labels", "app.kubernetes.io/name") != "gangs" {
						t.Errorf("%s: label app.kubernetes.io/name is not gangs", key(o))
					}
					for _, s := range subjects(o) {
						if s != "ServiceAccount gangs-system/gangs" {
							t.Errorf("%s binds %s", key(o), s)
						}
					}
				}
				if r.cfg.LeaderElection.ResourceName != "gangs" || r.cfg.LeaderElection.ResourceNamespace != "gangs-system" {
					t.Errorf("Lease %s/%s, want gangs-system/gangs", r.cfg.LeaderElection.ResourceNamespace, r.cfg.LeaderElection.ResourceName)
				}
				if r.find("Namespace", "", "gangs-system") == nil {
					t.Error("no Namespace gangs-system")
				}
				if diff := cmp.Diff([]string{"gangs", "scheduler-plugins-scheduler", "cosched-member-by-member"}, r.profiles()); diff != "" {
					t.Errorf("profiles (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:    "release namespace, created by helm",
			args:    []string{"--namespace", "sched", "--set", "namespace.name=,namespace.create=false"},
			ns:      "sched",
			objName: "cosched",
			check: func(t *testing.T, r *rendered) {
				if got := r.kinds("Namespace"); len(got) != 0 {
					t.Errorf("Namespaces %v rendered with namespace.create=false", got)
				}
				if r.cfg.LeaderElection.ResourceNamespace != "sched" {
					t.Errorf("Lease namespace %s, want sched", r.cfg.LeaderElection.ResourceNamespace)
				}
				if r.find("Role", "sched", "cosched:leader-election") == nil {
					t.Errorf("no leader-election Role in sched; roles %v", r.kinds("Role"))
				}
			},
		},
		{
			name: "metrics port and Service, image, resources, verbosity",
			args: []string{"--set", "metrics.port=10300,metrics.service.enabled=true,image.repository=registry.example/cosched,image.tag=v1.2.3",
				"--set", "resources.limits.memory=1Gi,verbosity=4,extraArgs[0]=--kube-api-qps=50"},
			check: func(t *testing.T, r *rendered) {
				svc := r.find("Service", ns, "cosched-metrics")
				if svc == nil {
					t.Fatalf("no Service; have %v", r.kinds("Service"))
				}
				if got := fmt.Sprint(svc["spec"].(map[string]interface{})["ports"]); !strings.Contains(got, "port:10300") {
					t.Errorf("Service ports %s, want 10300", got)
				}
				c := r.container(t, ns, "cosched")
				if c["image"] != "registry.example/cosched:v1.2.3" {
					t.Errorf("image %v", c["image"])
				}
				wantCmd := []interface{}{"/cosched", "--config=/etc/cosched/config.yaml", "--secure-port=10300", "--v=4", "--kube-api-qps=50"}
				if diff := cmp.Diff(wantCmd, c["command"]); diff != "" {
					t.Errorf("command (-want +got):\n%s", diff)
				}
				for _, probe := range []string{"livenessProbe", "readinessProbe"} {
					if got := c[probe].(map[string]interface{})["httpGet"].(map[string]interface{})["port"]; got != float64(10300) {
						t.Errorf("%s port %v, want 10300", probe, got)
					}
				}
				if got := fmt.Sprint(c["resources"]); !strings.Contains(got, "limits:map[memory:1Gi]") || !strings.Contains(got, "cpu:100m") {
					t.Errorf("resources %s", got)
				}
			},
		},
		{
			name: "no RBAC, no ServiceAccount: bring your own",
			args: []string{"--set", "rbac.create=false,serviceAccount.create=false,serviceAccount.name=mine"},
			check: func(t *testing.T, r *rendered) {
				if got := rbacOf(r); len(got) != 0 {
					t.Errorf("RBAC objects %v rendered with rbac.create=false", got)
				}
				if got := r.kinds("ServiceAccount"); len(got) != 0 {
					t.Errorf("ServiceAccounts %v rendered with serviceAccount.create=false", got)
				}
				d := r.find("Deployment", ns, "cosched")
				if got := d["spec"].(map[string]interface{})["template"].(map[string]interface{})["spec"].(map[string]interface{})["serviceAccountName"]; got != "mine" {
					t.Errorf("serviceAccountName %v, want mine", got)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &rendered{objs: mustRender(t, tc.args...)}
			byKey(t, r.objs) // no object twice
			objNS, objName := tc.ns, tc.objName
			if objNS == "" {
				objNS, objName = ns, "cosched"
			}
			decodeConfig(t, r, objNS, objName)
			// Whatever the values, the Deployment mounts the ConfigMap the
			// chart renders and runs as the ServiceAccount the RBAC binds.
			d := r.find("Deployment", objNS, objName)
			podSpec := d["spec"].(map[string]interface{})["template"].(map[string]interface{})["spec"].(map[string]interface{})
			if got := fmt.Sprint(podSpec["volumes"]); !strings.Contains(got, "name:"+objName+"-config") {
				t.Errorf("volumes %s do not mount %s-config", got, objName)
			}
			sa, _ := podSpec["serviceAccountName"].(string)
			for _, o := range r.objs {
				for _, s := range subjects(o) {
					if s != "ServiceAccount "+objNS+"/"+sa {
						t.Errorf("%s binds %s, the Deployment runs as %s/%s", key(o), s, objNS, sa)
					}
				}
			}
			tc.check(t, r)
		})
	}
}

// subjects lists a binding's subjects as "Kind namespace/name".
func subjects(o object) []string {
	ss, _ := o["subjects"].([]interface{})
	var out []string
	for _, s := range ss {
		m := s.(map[string]interface{})
		out = append(out, fmt.Sprintf("%v %v/%v", m["kind"], m["namespace"], m["name"]))
	}
	return out
}

// TestInvalidValues: values the scheduler would refuse at start (or that
// would run it wrongly) fail at helm template/install time, naming the value.
func TestInvalidValues(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string // substrings of helm's error
	}{
		{"no profile", []string{"--set", "profiles.cosched.enabled=false,profiles.kuberay.enabled=false,profiles.memberByMember.enabled=false"},
			[]string{"enable at least one"}},
		{"replicas without leader election", []string{"--set", "leaderElection.enabled=false"},
			[]string{"2 replicas need leaderElection.enabled"}},
		{"unknown placement strategy", []string{"--set", "gangArgs.placementStrategy=Random"},
			[]string{"placementStrategy"}},
		{"unknown placement strategy in a profile", []string{"--set", "profiles.kuberay.gangArgs.placementStrategy=Random"},
			[]string{"placementStrategy"}},
		{"Permit wait beyond the framework's cap", []string{"--set", "gangArgs.permitWaitingTimeSeconds=901"},
			[]string{"permitWaitingTimeSeconds"}},
		{"zero Permit wait", []string{"--set", "gangArgs.permitWaitingTimeSeconds=0"},
			[]string{"permitWaitingTimeSeconds"}},
		{"negative backoff", []string{"--set", "gangArgs.podGroupBackoffSeconds=-1"},
			[]string{"podGroupBackoffSeconds"}},
		{"misspelt argument", []string{"--set", "gangArgs.permitWaitingTime=5"},
			[]string{"permitWaitingTime"}},
		{"misspelt argument in a profile", []string{"--set", "profiles.cosched.gangArgs.gangPremption=false"},
			[]string{"gangPremption"}},
		{"unknown top-level value", []string{"--set", "replica=3"},
			[]string{"replica"}},
		{"empty scheduler name", []string{"--set", "profiles.cosched.schedulerName="},
			[]string{"schedulerName"}},
		{"bad duration", []string{"--set", "leaderElection.leaseDuration=30"},
			[]string{"leaseDuration"}},
		{"namespace to create without a name", []string{"--set", "namespace.name="},
			[]string{"namespace.create needs namespace.name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want an error mentioning %q", tc.args, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
