package gang

import (
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
)

// cpuNode is a node with the given CPU and a rack label.
func cpuNode(name, cpu, rack string) *v1.Node {
	return st.MakeNode().Name(name).Label("rack", rack).
		Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: "8Gi", v1.ResourcePods: "100"}).Obj()
}

// running is a bound pod requesting cpu at priority; group may be "".
func running(name, group, node, cpu string, priority int32) *v1.Pod {
	w := st.MakePod().Namespace(testNS).Name(name).UID(name).Node(node).Priority(priority).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu}).Label("app", name)
	if group != "" {
		w = w.Label(podgroup.Label, group)
	}
	return w.Obj()
}

// pendingMember is a member of testPG requesting cpu at priority.
func pendingMember(name, cpu string, priority int32) *v1.Pod {
	return member(name, testPG).Priority(priority).Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu}).Obj()
}

// recordEvictions makes the fake API server accept evictions and remember
// them.
func (e *testEnv) recordEvictions() func() []string {
	var mu sync.Mutex
	var evicted []string
	e.client.PrependReactor("create", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		evicted = append(evicted, action.(clienttesting.CreateAction).GetObject().(*policyv1.Eviction).Name)
		return true, nil, nil
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := append([]string{}, evicted...)
		sort.Strings(out)
		return out
	}
}

func TestGangPreemption(t *testing.T) {
	tests := []struct {
		name    string
		pg      *schedv1alpha1.PodGroup
		nodes   []*v1.Node
		placed  []*v1.Pod
		pending []*v1.Pod
		pdbs    []*policyv1.PodDisruptionBudget
		args    func(*config.CoschedGangArgs)
		// wantEvicted empty: nothing may be evicted.
		wantEvicted []string
		wantCode    fwk.Code
		wantMsg     string
	}{
		{
			name:  "a low gang holding the only room is taken whole, across nodes",
			pg:    makePG(testPG, 2),
			nodes: []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "2", "r1")},
			placed: []*v1.Pod{
				running("low-0", "low", "n1", "2", 1), running("low-1", "low", "n2", "2", 1),
			},
			pending:     []*v1.Pod{pendingMember("m1", "2", 10), pendingMember("m2", "2", 10)},
			wantEvicted: []string{"low-0", "low-1"},
			wantCode:    fwk.Success,
			wantMsg:     "preempting PodGroup ns/low (2 pods, priority 1) to place 2 member(s) of PodGroup ns/pg (priority 10)",
		},
		{
			name:  "a gang whose one member is in the way still goes whole",
			pg:    makePG(testPG, 1),
			nodes: []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "1", "r1")},
			placed: []*v1.Pod{
				running("low-0", "low", "n1", "2", 1), running("low-1", "low", "n2", "1", 1),
			},
			pending:     []*v1.Pod{pendingMember("m1", "2", 10)},
			wantEvicted: []string{"low-0", "low-1"},
			wantCode:    fwk.Success,
		},
		{
			name:  "plain pods go before a gang of the same priority",
			pg:    makePG(testPG, 1),
			nodes: []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "2", "r1")},
			placed: []*v1.Pod{
				running("plain", "", "n1", "2", 1), running("low-0", "low", "n2", "1", 1), running("low-1", "low", "n2", "1", 1),
			},
			pending:     []*v1.Pod{pendingMember("m1", "2", 10)},
			wantEvicted: []string{"plain"},
			wantCode:    fwk.Success,
		},
		{
			name:  "lower priority goes first, gang or not",
			pg:    makePG(testPG, 1),
			nodes: []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "2", "r1")},
			placed: []*v1.Pod{
				running("plain", "", "n1", "2", 5), running("low-0", "low", "n2", "2", 1),
			},
			pending:     []*v1.Pod{pendingMember("m1", "2", 10)},
			wantEvicted: []string{"low-0"},
			wantCode:    fwk.Success,
		},
		{
			name:  "equal priority never preempts",
			pg:    makePG(testPG, 2),
			nodes: []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "2", "r1")},
			placed: []*v1.Pod{
				running("peer-0", "peer", "n1", "2", 10), running("peer-1", "peer", "n2", "2", 10),
			},
			pending:  []*v1.Pod{pendingMember("m1", "2", 10), pendingMember("m2", "2", 10)},
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  "preemption cannot help: no pods or gangs of priority below 10 that may be evicted",
		},
		{
			name:  "nothing is evicted for a group that would still not fit",
			pg:    makePG(testPG, 3),
			nodes: []*v1.Node{cpuNode("n1", "2", "r1"), cpuNode("n2", "2", "r1")},
			placed: []*v1.Pod{
				running("low-0", "low", "n1", "2", 1), running("low-1", "low", "n2", "2", 1),
			},
			pending:  []*v1.Pod{pendingMember("m1", "2", 10), pendingMember("m2", "2", 10), pendingMember("m3", "2", 10)},
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  "preemption cannot help: evicting lower-priority pods and gangs cannot make room for 3 member(s)",
		},
		{
			name: "one topology domain: the rack with the cheaper victims",
			pg: makePG(testPG, 2, func(pg *schedv1alpha1.PodGroup) {
				pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: "rack"}
			}),
			nodes: []*v1.Node{cpuNode("a1", "2", "ra"), cpuNode("a2", "2", "ra"), cpuNode("b1", "2", "rb"), cpuNode("b2", "2", "rb")},
			placed: []*v1.Pod{
				running("mid-0", "mid", "a1", "2", 5), running("mid-1", "mid", "a2", "2", 5),
				running("low-0", "low", "b1", "2", 1), running("low-1", "low", "b2", "2", 1),
			},
			pending:     []*v1.Pod{pendingMember("m1", "2", 10), pendingMember("m2", "2", 10)},
			wantEvicted: []string{"low-0", "low-1"},
			wantCode:    fwk.Success,
			wantMsg:     "in rack=rb",
		},
		{
			name: "a split across racks does not count: nothing evicted",
			pg: makePG(testPG, 2, func(pg *schedv1alpha1.PodGroup) {
				pg.Annotations = map[string]string{podgroup.TopologyKeyAnnotation: "rack"}
			}),
			nodes: []*v1.Node{cpuNode("a1", "2", "ra"), cpuNode("b1", "2", "rb")},
			placed: []*v1.Pod{
				running("low-0", "low", "a1", "2", 1), running("low-1", "low", "b1", "2", 1),
			},
			pending:  []*v1.Pod{pendingMember("m1", "2", 10), pendingMember("m2", "2", 10)},
			wantCode: fwk.UnschedulableAndUnresolvable,
		},
		{
			name:   "a PodDisruptionBudget that allows no disruption is honoured",
			pg:     makePG(testPG, 1),
			nodes:  []*v1.Node{cpuNode("n1", "2", "r1")},
			placed: []*v1.Pod{running("guarded", "", "n1", "2", 1)},
			pdbs: []*policyv1.PodDisruptionBudget{{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "guard"},
				Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guarded"}}},
			}},
			pending:  []*v1.Pod{pendingMember("m1", "2", 10)},
			wantCode: fwk.UnschedulableAndUnresolvable,
		},
		{
			name:   "preemptionPolicy Never does not preempt",
			pg:     makePG(testPG, 1),
			nodes:  []*v1.Node{cpuNode("n1", "2", "r1")},
			placed: []*v1.Pod{running("plain", "", "n1", "2", 1)},
			pending: []*v1.Pod{func() *v1.Pod {
				p := pendingMember("m1", "2", 10)
				p.Spec.PreemptionPolicy = ptr.To(v1.PreemptNever)
				return p
			}()},
			wantCode: fwk.UnschedulableAndUnresolvable,
		},
		{
			name:     "gangPreemption off does not preempt",
			pg:       makePG(testPG, 1),
			nodes:    []*v1.Node{cpuNode("n1", "2", "r1")},
			placed:   []*v1.Pod{running("plain", "", "n1", "2", 1)},
			pending:  []*v1.Pod{pendingMember("m1", "2", 10)},
			args:     func(a *config.CoschedGangArgs) { a.GangPreemption = ptr.To(false) },
			wantCode: fwk.UnschedulableAndUnresolvable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mutate []func(*config.CoschedGangArgs)
			if tc.args != nil {
				mutate = append(mutate, tc.args)
			}
			e := newTestEnv(t, mutate...)
			evicted := e.recordEvictions()
			e.addPodGroups(tc.pg)
			e.addPods(tc.placed...)
			e.addPods(tc.pending...)
			for _, pdb := range tc.pdbs {
				if err := e.informerFactory.Policy().V1().PodDisruptionBudgets().Informer().GetStore().Add(pdb); err != nil {
					t.Fatal(err)
				}
			}
			e.setCluster(tc.placed, tc.nodes)
			state := framework.NewCycleState()
			state.Write(preFilterRejectedKey, preFilterRejected{noFit: true})
			res, s := e.pl.PostFilter(e.ctx, state, tc.pending[0], framework.NewDefaultNodeToStatus())
			assertStatus(t, s, tc.wantCode, tc.wantMsg)
			got := evicted()
			if diff := cmp.Diff(tc.wantEvicted, got, cmpEmptyStrings); diff != "" {
				t.Errorf("evicted (-want +got):\n%s", diff)
			}
			if tc.wantCode != fwk.Success {
				return
			}
			if res == nil || res.NominatingInfo == nil || res.NominatingInfo.NominatedNodeName == "" {
				t.Errorf("PostFilterResult %+v: want the member nominated to a node", res)
			}
			var preempting []string
			for _, ev := range e.events() {
				if strings.Contains(ev, " Preempting ") {
					preempting = append(preempting, ev)
				}
			}
			if len(preempting) != 1 {
				t.Errorf("Preempting events on the PodGroup: %q, want one", preempting)
			}
			// While the victims are still there, the group waits instead of
			// choosing more.
			_, s = e.pl.PostFilter(e.ctx, state, tc.pending[0], framework.NewDefaultNodeToStatus())
			assertStatus(t, s, fwk.UnschedulableAndUnresolvable, "preempted pod(s) to terminate")
			if diff := cmp.Diff(tc.wantEvicted, evicted(), cmpEmptyStrings); diff != "" {
				t.Errorf("second PostFilter evicted more (-want +got):\n%s", diff)
			}
			// Once they are gone, the group may preempt again.
			for _, p := range tc.placed {
				e.deletePod(p)
			}
			if n := e.pl.groups.preemptionPending(testKey, e.clock.Now(), e.pl.victimPresent); n != 0 {
				t.Errorf("victims still pending after deletion: %d", n)
			}
		})
	}
}

var cmpEmptyStrings = cmp.Comparer(func(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return strings.Join(a, ",") == strings.Join(b, ",")
})
