package preemption

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"
	schedinformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"
)

// TestGangPreemptedEventReadsTheSharedInformer is R6: the GangPreempted
// event on a victim gang's PodGroup was preceded by a live GET of the
// PodGroup, an API call in the middle of an eviction. With the scheduler's
// shared PodGroup informer offered (CoschedGang does), it makes none.
func TestGangPreemptedEventReadsTheSharedInformer(t *testing.T) {
	tests := []struct {
		name     string
		shared   bool
		wantGets int
	}{
		{name: "the shared informer is offered: no API call", shared: true},
		{name: "no cosched plugin shares one: one GET", wantGets: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pg := &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g", UID: "pg-g"}, Spec: schedv1alpha1.PodGroupSpec{MinMember: 2}}
			pgClient := pgfake.NewSimpleClientset(pg) //nolint:staticcheck // the field-managed tracker lacks the PodGroup schema
			pgFactory := schedinformers.NewSharedInformerFactory(pgClient, 0)
			pgInformer := pgFactory.Scheduling().V1alpha1().PodGroups()
			if err := pgInformer.Informer().GetStore().Add(pg); err != nil {
				t.Fatal(err)
			}
			client := fake.NewClientset()
			factory := informers.NewSharedInformerFactory(client, 0)
			factoryOf := New
			if tc.shared {
				factoryOf = NewSharing(func(fwk.Handle) schedlisters.PodGroupLister { return pgInformer.Lister() })
			}
			recorder := events.NewFakeRecorder(10)
			var pl *CoschedPreemption
			_, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
				tf.RegisterQueueSortPlugin("PrioritySort", func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) { return &sortByName{}, nil }),
				tf.RegisterBindPlugin("Binder", func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) { return &sortByName{}, nil }),
				tf.RegisterPluginAsExtensions(Name, func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
					p, err := factoryOf(ctx, obj, h)
					if err == nil {
						pl = p.(*CoschedPreemption)
					}
					return p, err
				}, "PostFilter"),
			}, "test",
				frameworkruntime.WithClientSet(client),
				frameworkruntime.WithKubeConfig(&rest.Config{Host: "http://127.0.0.1:1"}),
				frameworkruntime.WithInformerFactory(factory),
				frameworkruntime.WithEventRecorder(recorder),
			)
			if err != nil {
				t.Fatal(err)
			}
			pl.pgClient = pgClient
			pgClient.ClearActions()

			victims := []*v1.Pod{gangPod("g-0", "g", 1).Obj(), gangPod("g-1", "g", 1).Obj()}
			preemptor := &testPreemptor{pod: pod("hi", 10).Obj()}
			c := &testCandidate{name: "n1", victims: &extenderv1.Victims{Pods: victims}}
			for _, v := range victims {
				pl.recordGangPreempted(ctx, c, preemptor, v)
			}
			gets := 0
			for _, a := range pgClient.Actions() {
				if a.GetVerb() == "get" {
					gets++
				}
			}
			if gets != tc.wantGets {
				t.Errorf("GETs of the PodGroup: %d, want %d", gets, tc.wantGets)
			}
			select {
			case ev := <-recorder.Events:
				if want := "Warning GangPreempted all 2 placed member(s) preempted as a unit by pod ns/hi (priority 10)"; !strings.HasPrefix(ev, want) {
					t.Errorf("event %q, want one starting %q", ev, want)
				}
			default:
				t.Errorf("no GangPreempted event")
			}
		})
	}
}

type testCandidate struct {
	name    string
	victims *extenderv1.Victims
}

func (c *testCandidate) Victims() *extenderv1.Victims { return c.victims }
func (c *testCandidate) Name() string                 { return c.name }
func (c *testCandidate) NumPodGroupDisruptions() int  { return 0 }

type testPreemptor struct{ pod *v1.Pod }

func (p *testPreemptor) GetName() string          { return p.pod.Name }
func (p *testPreemptor) GetNamespace() string     { return p.pod.Namespace }
func (p *testPreemptor) UID() types.UID           { return p.pod.UID }
func (p *testPreemptor) SchedulerName() string    { return p.pod.Spec.SchedulerName }
func (p *testPreemptor) Obj() runtime.Object      { return p.pod }
func (p *testPreemptor) Pods() map[string]*v1.Pod { return map[string]*v1.Pod{p.pod.Name: p.pod} }
func (p *testPreemptor) Priority() int32          { return *p.pod.Spec.Priority }
func (p *testPreemptor) Type() string             { return "pod" }
