package simulation

import (
	"context"
	"os"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	internalqueue "k8s.io/kubernetes/pkg/scheduler/backend/queue"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	plfeature "k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/interpodaffinity"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
)

func TestMain(m *testing.M) {
	// The framework's instrumentation needs the scheduler's metrics.
	schedmetrics.Register()
	os.Exit(m.Run())
}

// newFramework runs resource fit and inter-pod affinity, the plugins whose
// cycle state follows added and removed pods, over a snapshot of pods and
// nodes.
func newFramework(t *testing.T, snapshot *internalcache.Snapshot) Framework {
	t.Helper()
	ctx := t.Context()
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	fit := func(ctx context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		return noderesources.NewFit(ctx, &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
			Type: schedconfig.LeastAllocated, Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}},
		}}, h, plfeature.Features{})
	}
	affinity := func(ctx context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		return interpodaffinity.New(ctx, &schedconfig.InterPodAffinityArgs{HardPodAffinityWeight: 1}, h, plfeature.Features{})
	}
	fw, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
		tf.RegisterPluginAsExtensions(noderesources.Name, fit, "PreFilter", "Filter"),
		tf.RegisterPluginAsExtensions(interpodaffinity.Name, affinity, "PreFilter", "Filter"),
	}, "simulation-test",
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithPodNominator(internalqueue.NewSchedulingQueue(nil, factory)),
	)
	if err != nil {
		t.Fatalf("building the framework: %v", err)
	}
	return fw
}

func node(name, cpu string) *v1.Node {
	return st.MakeNode().Name(name).Label(v1.LabelHostname, name).
		Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourcePods: "10"}).Obj()
}

func pod(name, app, cpu string) *st.PodWrapper {
	return st.MakePod().Namespace("ns").Name(name).UID(name).Label("app", app).Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu})
}

// avoiding is a pod that must not share a node with pods of app.
func avoiding(name, app, cpu string) *v1.Pod {
	return pod(name, "member", cpu).PodAntiAffinityIn("app", v1.LabelHostname, []string{app}, st.PodAntiAffinityWithRequiredReq).Obj()
}

func TestRevertUndoesEveryChange(t *testing.T) {
	type check func(m, n int, want bool)
	tests := []struct {
		name    string
		nodes   []*v1.Node
		placed  []*v1.Pod
		members []*v1.Pod
		run     func(s *Simulator, fits check)
	}{{
		name:    "a placed member holds its room until reverted",
		nodes:   []*v1.Node{node("n1", "2")},
		members: []*v1.Pod{pod("m0", "member", "2").Obj(), pod("m1", "member", "2").Obj()},
		run: func(s *Simulator, fits check) {
			start := s.Checkpoint()
			s.Place(0, 0)
			fits(1, 0, false)
			s.Revert(start)
			fits(1, 0, true)
		},
	}, {
		name:    "a removed pod's room is free until reverted",
		nodes:   []*v1.Node{node("n1", "2")},
		placed:  []*v1.Pod{pod("low", "low", "2").Node("n1").Obj()},
		members: []*v1.Pod{pod("m0", "member", "2").Obj()},
		run: func(s *Simulator, fits check) {
			fits(0, 0, false)
			start := s.Checkpoint()
			if !s.Remove(s.view[0].GetPods()[0].GetPod()) {
				t.Fatal("Remove failed")
			}
			fits(0, 0, true)
			s.Revert(start)
			fits(0, 0, false)
		},
	}, {
		name:    "anti-affinity to a removed pod is lifted until reverted",
		nodes:   []*v1.Node{node("n1", "4")},
		placed:  []*v1.Pod{pod("other", "x", "1").Node("n1").Obj()},
		members: []*v1.Pod{avoiding("m0", "x", "1")},
		run: func(s *Simulator, fits check) {
			fits(0, 0, false)
			start := s.Checkpoint()
			s.Remove(s.view[0].GetPods()[0].GetPod())
			fits(0, 0, true)
			s.Revert(start)
			fits(0, 0, false)
		},
	}, {
		name:    "anti-affinity to a placed member holds until reverted, in nested checkpoints",
		nodes:   []*v1.Node{node("n1", "4"), node("n2", "4")},
		members: []*v1.Pod{pod("m0", "x", "1").Obj(), avoiding("m1", "x", "1")},
		run: func(s *Simulator, fits check) {
			outer := s.Checkpoint()
			s.Place(0, 0)
			inner := s.Checkpoint()
			s.Place(0, 1)
			fits(1, 0, false)
			fits(1, 1, false)
			s.Revert(inner)
			fits(1, 0, false)
			fits(1, 1, true)
			s.Revert(outer)
			fits(1, 0, true)
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snapshot := internalcache.NewSnapshot(tc.placed, tc.nodes)
			nodes, err := snapshot.NodeInfos().List()
			if err != nil {
				t.Fatal(err)
			}
			generations := make([]int64, len(nodes))
			for i, ni := range nodes {
				generations[i] = ni.GetGeneration()
			}
			s := New(t.Context(), newFramework(t, snapshot), tc.members, nodes)
			if p, why := s.Unfit(); p != nil {
				t.Fatalf("member %s unfit: %s", p.Name, why)
			}
			tc.run(s, func(m, n int, want bool) {
				t.Helper()
				if got := s.Fits(m, n); got != want {
					t.Errorf("Fits(%s, %s) = %v, want %v", tc.members[m].Name, tc.nodes[n].Name, got, want)
				}
			})
			for i, ni := range nodes {
				if ni.GetGeneration() != generations[i] {
					t.Errorf("the snapshot's node %s was changed", ni.Node().Name)
				}
			}
		})
	}
}

func TestShapes(t *testing.T) {
	members := []*v1.Pod{
		pod("a", "r0", "1").Obj(), pod("b", "r1", "1").Obj(), // labels differ only
		pod("c", "r0", "2").Obj(),
		avoiding("d", "x", "1"),
		pod("e", "r2", "1").Obj(),
	}
	reps, memberShape := shapesOf(members)
	if len(reps) != 3 {
		t.Errorf("%d shapes, want 3", len(reps))
	}
	want := []int{0, 0, 1, 2, 0}
	for i, s := range memberShape {
		if s != want[i] {
			t.Errorf("member %s has shape %d, want %d", members[i].Name, s, want[i])
		}
	}
}
