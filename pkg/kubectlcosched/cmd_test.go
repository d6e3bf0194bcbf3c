package kubectlcosched

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"

	"github.com/cosched/cosched/pkg/podgroup"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var t0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

func at(s float64) metav1.Time {
	return metav1.NewTime(t0.Add(time.Duration(s * float64(time.Second))))
}

// cluster is two namespaces: in shop an atomic pair bound on node-b, in
// training four workers rejected as a whole because they do not fit, and a
// group still short of pods.
func cluster() (kube []runtime.Object, groups []runtime.Object) {
	pg := func(ns, name string, minMember int32, created float64, phase schedv1alpha1.PodGroupPhase) *schedv1alpha1.PodGroup {
		return &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("pg-" + name), CreationTimestamp: at(created)},
			Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember},
			Status:     schedv1alpha1.PodGroupStatus{Phase: phase},
		}
	}
	pod := func(group *schedv1alpha1.PodGroup, name, node string, created float64) *v1.Pod {
		p := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: group.Namespace, Name: name, UID: types.UID("pod-" + name), CreationTimestamp: at(created),
				Labels: map[string]string{podgroup.Label: group.Name}},
			Spec: v1.PodSpec{SchedulerName: "cosched", NodeName: node, Containers: []v1.Container{{Name: "main",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}}},
			Status: v1.PodStatus{Phase: v1.PodPending},
		}
		if node != "" {
			p.Status.Phase = v1.PodRunning
			p.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: at(created + 1)}}
		}
		return p
	}
	event := func(kind, ns, name, reason, note string, first float64, n int32, last float64) *eventsv1.Event {
		e := &eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "." + strings.ToLower(reason), CreationTimestamp: at(first)},
			EventTime:  metav1.NewMicroTime(at(first).Time),
			Regarding:  v1.ObjectReference{Kind: kind, Namespace: ns, Name: name},
			Reason:     reason,
			Note:       note,
			Type:       v1.EventTypeNormal,
		}
		if n > 1 {
			e.Series = &eventsv1.EventSeries{Count: n, LastObservedTime: metav1.NewMicroTime(at(last).Time)}
		}
		return e
	}

	app := pg("shop", "app-with-logs", 2, 0, schedv1alpha1.PodGroupRunning)
	app.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: v1.LabelHostname}
	train := pg("training", "train", 4, 10, schedv1alpha1.PodGroupScheduling)
	short := pg("training", "short", 3, 200, schedv1alpha1.PodGroupPending)
	groups = []runtime.Object{app, train, short}

	kube = append(kube,
		&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{v1.LabelHostname: "node-a"}}},
		&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b", Labels: map[string]string{v1.LabelHostname: "node-b"}}},
		pod(app, "app", "node-b", 0.5),
		pod(app, "log-collector", "node-b", 0.5),
		event("Pod", "shop", "app", "Scheduled", "Successfully assigned shop/app to node-b", 1.5, 1, 0),
		event("Pod", "shop", "log-collector", "Scheduled", "Successfully assigned shop/log-collector to node-b", 1.5, 1, 0),
		event("PodGroup", "shop", "app-with-logs", "Running", "2/2 members running, 0 succeeded, quorum is 2", 2, 1, 0),
		pod(short, "short-0", "", 200),
		// Not a member of anything.
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "training", Name: "loner"}},
	)
	// Pods recreated by their operator after it deleted their PodGroup.
	gone := pg("training", "gone", 2, 100, "")
	for _, name := range []string{"gone-master-0", "gone-worker-0"} {
		kube = append(kube, pod(gone, name, "", 150))
	}
	kube = append(kube, event("Pod", "training", "gone-master-0", "FailedScheduling",
		"0/2 nodes are available: PodGroup training/gone does not exist: create it, or remove the pod's scheduling.x-k8s.io/pod-group label; the pod waits for it.", 151, 3, 250))
	for _, name := range []string{"train-0", "train-1", "train-2", "train-3"} {
		kube = append(kube, pod(train, name, "", 10))
	}
	kube = append(kube,
		event("PodGroup", "training", "train", "GangRejected", "3/4 members fit (0 placed, 3 more fit of 4 needed); member needs cpu 2, best node has 1", 11, 9, 280),
		event("Pod", "training", "train-0", "FailedScheduling", "0/2 nodes are available: PodGroup training/train cannot fit as a whole: 3/4 members fit (0 placed, 3 more fit of 4 needed); member needs cpu 2, best node has 1. PodGroup training/train was turned away before filtering.", 11, 9, 280),
	)
	return kube, groups
}

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		// namespace is the kubeconfig's.
		namespace string
		// forbid makes the API server refuse these verbs on resources.
		forbid  []string
		wantErr string
	}{
		{name: "get-all-namespaces", args: []string{"get", "-A"}},
		{name: "get-namespace-wide", args: []string{"get", "-o", "wide"}, namespace: "training"},
		{name: "get-named-json", args: []string{"get", "train", "-n", "training", "-o", "json"}},
		{name: "get-empty-namespace", args: []string{"get", "-n", "nothing-here"}},
		{name: "describe-atomic", args: []string{"describe", "-n", "shop", "app-with-logs"}},
		{name: "describe-no-fit-yaml", args: []string{"describe", "train", "-o", "yaml"}, namespace: "training"},
		{name: "describe-without-event-and-node-access", args: []string{"describe", "-n", "shop", "app-with-logs"},
			forbid: []string{"list/events", "get/nodes"}},
		{name: "describe-deleted-group", args: []string{"describe", "-n", "training", "gone"}},
		{name: "describe-missing", args: []string{"describe", "-n", "shop", "nope"}, wantErr: `podgroups.scheduling.x-k8s.io "nope" not found`},
		{name: "get-bad-output", args: []string{"get", "-o", "name"}, wantErr: `unknown output format "name"`},
		{name: "get-named-all-namespaces", args: []string{"get", "-A", "train"}, wantErr: "cannot be named across all namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kubeObjs, pgObjs := cluster()
			kube := kubefake.NewClientset(kubeObjs...)
			for _, f := range tc.forbid {
				verb, res, _ := strings.Cut(f, "/")
				kube.PrependReactor(verb, res, func(a clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: res}, "", errors.New("RBAC: access denied"))
				})
			}
			pgs := pgfake.NewSimpleClientset(pgObjs...)
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			ns := tc.namespace
			if ns == "" {
				ns = "default"
			}
			o := &Options{IOStreams: streams, Now: func() time.Time { return at(300).Time }}
			cmd := NewCommandWithOptions(o)
			// -n is the kubeconfig flags' in the real command; here it sets
			// the namespace the fake connection returns.
			var nsFlag string
			cmd.PersistentFlags().StringVarP(&nsFlag, "namespace", "n", "", "")
			o.Connect = func() (Clients, string, error) {
				if nsFlag != "" {
					return Clients{Kube: kube, PodGroups: pgs}, nsFlag, nil
				}
				return Clients{Kube: kube, PodGroups: pgs}, ns, nil
			}
			cmd.SetArgs(tc.args)
			cmd.SetOut(out)
			cmd.SetErr(errOut)
			err := cmd.ExecuteContext(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("kubectl cosched %s: %v", strings.Join(tc.args, " "), err)
			}
			got := "$ kubectl cosched " + strings.Join(tc.args, " ") + "\n" + out.String()
			if errOut.Len() > 0 {
				got += "--- stderr\n" + errOut.String()
			}
			golden(t, filepath.Join("testdata", tc.name+".golden"), got)
		})
	}
}

// TestRealFlags checks that the command carries kubectl's connection flags
// and the output flags.
func TestRealFlags(t *testing.T) {
	cmd := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
	for _, name := range []string{"kubeconfig", "context", "namespace", "server", "token", "v"} {
		if cmd.PersistentFlags().Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
	for _, sub := range []string{"get", "describe"} {
		c, _, err := cmd.Find([]string{sub})
		if err != nil || c.Name() != sub {
			t.Fatalf("no %s subcommand: %v", sub, err)
		}
		if c.Flags().Lookup("output") == nil {
			t.Errorf("%s has no --output", sub)
		}
	}
	if c, _, _ := cmd.Find([]string{"get"}); c.Flags().ShorthandLookup("A") == nil {
		t.Error("get has no -A")
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/kubectlcosched/ -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", path, diff)
	}
}
