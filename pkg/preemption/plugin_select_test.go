package preemption

import (
	"context"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	internalqueue "k8s.io/kubernetes/pkg/scheduler/backend/queue"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	plfeature "k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
)

// TestSelectVictimsOnNode runs the plugin's victim choice on one node of a
// real framework (NodeResourcesFit as the Filter).
func TestSelectVictimsOnNode(t *testing.T) {
	cpuNode := func(name, cpu string) *v1.Node {
		return st.MakeNode().Name(name).Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: "8Gi", v1.ResourcePods: "100"}).Obj()
	}
	running := func(name, group, node, cpu string, priority int32) *v1.Pod {
		w := st.MakePod().Namespace("ns").Name(name).UID(name).Node(node).Priority(priority).Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu})
		if group != "" {
			w = gangPod(name, group, priority).Node(node).Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu})
		}
		return w.Obj()
	}
	tests := []struct {
		name       string
		pods       []*v1.Pod
		preemptor  *v1.Pod
		wantVictim []string
		wantCode   fwk.Code
	}{
		{
			name:       "plain pods are enough: the gang is left alone",
			pods:       []*v1.Pod{running("p", "", "n1", "1", 1), running("g-0", "g", "n1", "1", 1), running("g-1", "g", "n2", "1", 1)},
			preemptor:  st.MakePod().Namespace("ns").Name("hi").UID("hi").Priority(10).Req(map[v1.ResourceName]string{v1.ResourceCPU: "1"}).Obj(),
			wantVictim: []string{"p"},
		},
		{
			name:       "a gang member is needed: its whole gang goes, on every node",
			pods:       []*v1.Pod{running("g-0", "g", "n1", "2", 1), running("g-1", "g", "n2", "1", 1)},
			preemptor:  st.MakePod().Namespace("ns").Name("hi").UID("hi").Priority(10).Req(map[v1.ResourceName]string{v1.ResourceCPU: "2"}).Obj(),
			wantVictim: []string{"g-0", "g-1"},
		},
		{
			name:      "a gang with a member of the preemptor's priority is never taken",
			pods:      []*v1.Pod{running("g-0", "g", "n1", "2", 1), running("g-1", "g", "n2", "1", 10)},
			preemptor: st.MakePod().Namespace("ns").Name("hi").UID("hi").Priority(10).Req(map[v1.ResourceName]string{v1.ResourceCPU: "2"}).Obj(),
			wantCode:  fwk.Unschedulable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			client := fake.NewClientset()
			factory := informers.NewSharedInformerFactory(client, 0)
			nodes := []*v1.Node{cpuNode("n1", "2"), cpuNode("n2", "2")}
			snapshot := internalcache.NewSnapshot(tc.pods, nodes)
			var pl *CoschedPreemption
			fh, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
				tf.RegisterQueueSortPlugin("PrioritySort", func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) { return &sortByName{}, nil }),
				tf.RegisterBindPlugin("Binder", func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) { return &sortByName{}, nil }),
				tf.RegisterPluginAsExtensions(noderesources.Name, func(ctx context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
					return noderesources.NewFit(ctx, &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
						Type: schedconfig.LeastAllocated, Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}},
					}}, h, plfeature.Features{})
				}, "PreFilter", "Filter"),
				tf.RegisterPluginAsExtensions(Name, func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
					p, err := New(ctx, obj, h)
					if err == nil {
						pl = p.(*CoschedPreemption)
					}
					return p, err
				}, "PostFilter"),
			}, "test",
				frameworkruntime.WithClientSet(client),
				frameworkruntime.WithKubeConfig(&rest.Config{Host: "http://127.0.0.1:1"}),
				frameworkruntime.WithInformerFactory(factory),
				frameworkruntime.WithSnapshotSharedLister(snapshot),
				frameworkruntime.WithMutableSnapshotLister(snapshot),
				frameworkruntime.WithPodNominator(internalqueue.NewSchedulingQueue(nil, factory)),
				frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
				frameworkruntime.WithPodsInPreBind(frameworkruntime.NewPodsInPreBindMap()),
			)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.pods {
				if err := pl.pods.Add(p); err != nil {
					t.Fatal(err)
				}
			}
			state := framework.NewCycleState()
			if _, s, _ := fh.RunPreFilterPlugins(ctx, state, tc.preemptor); !s.IsSuccess() {
				t.Fatalf("PreFilter: %v", s)
			}
			ni, err := snapshot.NodeInfos().Get("n1")
			if err != nil {
				t.Fatal(err)
			}
			all, err := pl.Evaluator.GetVictimsOnNode(ctx, ni)
			if err != nil {
				t.Fatal(err)
			}
			pods, _, s := pl.SelectVictimsOnNode(ctx, state, tc.preemptor, ni.Snapshot(), all, []*policyv1.PodDisruptionBudget{})
			if s.Code() != tc.wantCode {
				t.Fatalf("status %v, want %v", s, tc.wantCode)
			}
			var got []string
			for _, p := range pods {
				got = append(got, p.Name)
			}
			sort.Strings(got)
			if diff := cmp.Diff(tc.wantVictim, got); diff != "" {
				t.Errorf("victims (-want +got):\n%s", diff)
			}
		})
	}
}

// sortByName stands in for the queue sort and bind plugins a framework
// must have; neither is used here.
type sortByName struct{}

func (*sortByName) Name() string                                                      { return "PrioritySort" }
func (*sortByName) Less(fwk.QueuedEntityInfo, fwk.QueuedEntityInfo) bool              { return false }
func (*sortByName) Bind(context.Context, fwk.CycleState, *v1.Pod, string) *fwk.Status { return nil }
