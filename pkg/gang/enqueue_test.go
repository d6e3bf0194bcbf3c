package gang

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

func TestPreEnqueue(t *testing.T) {
	m := func(name string) *v1.Pod { return member(name, testPG).Obj() }
	tests := []struct {
		name      string
		podGroups []*schedv1alpha1.PodGroup
		informer  []*v1.Pod
		pod       *v1.Pod
		wantCode  fwk.Code
		wantMsg   []string
	}{
		{
			name:     "pod outside any group passes",
			pod:      plain("p").Obj(),
			wantCode: fwk.Success,
		},
		{
			// PreFilter reports it, with an event and a condition.
			name:     "missing PodGroup passes",
			informer: []*v1.Pod{m("m1")},
			pod:      m("m1"),
			wantCode: fwk.Success,
		},
		{
			name:      "below quorum waits",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2")},
			pod:       m("m1"),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"waiting for quorum: 2/3 pods of PodGroup ns/pg exist"},
		},
		{
			name:      "quorum reached passes",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			pod:       m("m1"),
			wantCode:  fwk.Success,
		},
		{
			name:      "pods being deleted do not count",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2"), member("m3", testPG).Terminating().Obj()},
			pod:       m("m1"),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"waiting for quorum: 2/3 pods"},
		},
		{
			name:      "the pod itself counts before the informer lists it",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m2"), m("m3")},
			pod:       m("m1"),
			wantCode:  fwk.Success,
		},
		{
			name:      "the pod itself does not count when it is being deleted",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m2"), m("m3")},
			pod:       member("m1", testPG).Terminating().Obj(),
			wantCode:  fwk.UnschedulableAndUnresolvable,
			wantMsg:   []string{"waiting for quorum: 2/3 pods"},
		},
		{
			name:      "bound members count",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), member("m2", testPG).Node("node1").Obj(), member("m3", testPG).Node("node2").Obj()},
			pod:       m("m1"),
			wantCode:  fwk.Success,
		},
		{
			name:      "other groups and other namespaces do not count",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer: []*v1.Pod{
				m("m1"),
				member("o1", "other").Obj(),
				member("x1", testPG).Namespace("elsewhere").Obj(),
				plain("p1").Obj(),
			},
			pod:      m("m1"),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"waiting for quorum: 1/3 pods"},
		},
		{
			name:      "minMember 0 means 1",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 0)},
			pod:       m("m1"),
			wantCode:  fwk.Success,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(tt.podGroups...)
			e.addPods(tt.informer...)
			assertStatus(t, e.pl.PreEnqueue(e.ctx, tt.pod), tt.wantCode, tt.wantMsg...)
		})
	}
}

func TestEventsToRegister(t *testing.T) {
	e := newTestEnv(t)
	evs, err := e.pl.EventsToRegister(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := map[fwk.EventResource]bool{}
	for _, ev := range evs {
		found[ev.Event.Resource] = true
	}
	for _, r := range []fwk.EventResource{fwk.UnscheduledPod, fwk.AssignedPod, fwk.Node, podgroup.EventResource} {
		if !found[r] {
			t.Errorf("no event registered for %s", r)
		}
	}
}

func TestIsSchedulableAfterMemberAdded(t *testing.T) {
	m := func(name string) *v1.Pod { return member(name, testPG).Obj() }
	tests := []struct {
		name      string
		podGroups []*schedv1alpha1.PodGroup
		informer  []*v1.Pod
		pod       *v1.Pod
		added     any
		want      fwk.QueueingHint
		wantErr   bool
	}{
		{
			name:      "member of the same group completes the quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2"), m("m3")},
			pod:       m("m1"),
			added:     m("m3"),
			want:      fwk.Queue,
		},
		{
			name:      "bound member of the same group completes the quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2)},
			informer:  []*v1.Pod{m("m1"), member("m2", testPG).Node("node1").Obj()},
			pod:       m("m1"),
			added:     member("m2", testPG).Node("node1").Obj(),
			want:      fwk.Queue,
		},
		{
			name:      "member of the same group, still below quorum",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 3)},
			informer:  []*v1.Pod{m("m1"), m("m2")},
			pod:       m("m1"),
			added:     m("m2"),
			want:      fwk.QueueSkip,
		},
		{
			name:      "member of another group",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 2), makePG("other", 1)},
			informer:  []*v1.Pod{m("m1"), m("m2"), member("o1", "other").Obj()},
			pod:       m("m1"),
			added:     member("o1", "other").Obj(),
			want:      fwk.QueueSkip,
		},
		{
			name:      "same group name in another namespace",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 1)},
			informer:  []*v1.Pod{m("m1")},
			pod:       m("m1"),
			added:     member("x1", testPG).Namespace("elsewhere").Obj(),
			want:      fwk.QueueSkip,
		},
		{
			name:      "pod outside any group added",
			podGroups: []*schedv1alpha1.PodGroup{makePG(testPG, 1)},
			informer:  []*v1.Pod{m("m1")},
			pod:       m("m1"),
			added:     plain("p").Obj(),
			want:      fwk.QueueSkip,
		},
		{
			name:     "rejected pod outside any group",
			informer: []*v1.Pod{plain("p").Obj(), m("m1")},
			pod:      plain("p").Obj(),
			added:    m("m1"),
			want:     fwk.QueueSkip,
		},
		{
			name:     "PodGroup missing",
			informer: []*v1.Pod{m("m1"), m("m2")},
			pod:      m("m1"),
			added:    m("m2"),
			want:     fwk.QueueSkip,
		},
		{
			name:    "not a pod",
			pod:     m("m1"),
			added:   makePG(testPG, 1),
			want:    fwk.Queue,
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.addPodGroups(tt.podGroups...)
			e.addPods(tt.informer...)
			logger, _ := ktesting.NewTestContext(t)
			got, err := e.pl.isSchedulableAfterMemberAdded(logger, tt.pod, nil, tt.added)
			if (err != nil) != tt.wantErr {
				t.Errorf("error: got %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("hint: got %v, want %v", got, tt.want)
			}
			// The memo answers the same question for the group's other
			// rejected members without counting again.
			if again, _ := e.pl.isSchedulableAfterMemberAdded(logger, tt.pod, nil, tt.added); again != got {
				t.Errorf("second call for the same event: got %v, want %v", again, got)
			}
		})
	}
}

// TestIsSchedulableAfterMemberAddedMemoPerEvent checks the memo does not
// carry a verdict over to a later event.
func TestIsSchedulableAfterMemberAddedMemoPerEvent(t *testing.T) {
	e := newTestEnv(t)
	logger, _ := ktesting.NewTestContext(t)
	e.addPodGroups(makePG(testPG, 3))
	pods := members(3, "")
	e.addPods(pods[0], pods[1])
	if got, _ := e.pl.isSchedulableAfterMemberAdded(logger, pods[0], nil, pods[1]); got != fwk.QueueSkip {
		t.Fatalf("2/3 members: got %v, want QueueSkip", got)
	}
	e.addPods(pods[2])
	if got, _ := e.pl.isSchedulableAfterMemberAdded(logger, pods[0], nil, pods[2]); got != fwk.Queue {
		t.Errorf("3/3 members: got %v, want Queue", got)
	}
}

func TestIsSchedulableAfterRoomFreed(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		old  any
		want fwk.QueueingHint
	}{
		{
			name: "pod outside any group",
			pod:  plain("p").Obj(),
			old:  plain("q").Node("node1").Obj(),
			want: fwk.QueueSkip,
		},
		{
			name: "another pod's room can help the group fit",
			pod:  member("m1", testPG).Obj(),
			old:  plain("q").Node("node1").Obj(),
			want: fwk.Queue,
		},
		{
			name: "another group's bound member frees room",
			pod:  member("m1", testPG).Obj(),
			old:  member("o1", "other").Node("node1").Obj(),
			want: fwk.Queue,
		},
		{
			name: "a bound member of the same group frees room",
			pod:  member("m1", testPG).Obj(),
			old:  member("m2", testPG).Node("node1").Obj(),
			want: fwk.Queue,
		},
		{
			// It frees no room, but whatever made the group's member go
			// may let the group retry: the hint always queues members.
			name: "an unplaced member of the same group",
			pod:  member("m1", testPG).Obj(),
			old:  member("m2", testPG).Obj(),
			want: fwk.Queue,
		},
		{
			name: "a member of a missing PodGroup",
			pod:  member("g1", "gone").Obj(),
			old:  plain("q").Node("node1").Obj(),
			want: fwk.Queue,
		},
		{
			name: "unknown old object",
			pod:  member("m1", testPG).Obj(),
			old:  nil,
			want: fwk.Queue,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			logger, _ := ktesting.NewTestContext(t)
			got, err := e.pl.isSchedulableAfterRoomFreed(logger, tt.pod, tt.old, nil)
			if err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("hint: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsSchedulableAfterPodGroupChange(t *testing.T) {
	pg := func(min int32, opts ...pgOption) *schedv1alpha1.PodGroup { return makePG(testPG, min, opts...) }
	m1 := member("m1", testPG).Obj()
	tests := []struct {
		name     string
		pod      *v1.Pod
		old, new *schedv1alpha1.PodGroup
		want     fwk.QueueingHint
	}{
		{name: "created", pod: m1, new: pg(3), want: fwk.Queue},
		{name: "minMember lowered", pod: m1, old: pg(3), new: pg(2), want: fwk.Queue},
		{name: "minMember raised", pod: m1, old: pg(2), new: pg(3), want: fwk.QueueSkip},
		{name: "unchanged", pod: m1, old: pg(3), new: pg(3), want: fwk.QueueSkip},
		{
			name: "minResources changed",
			pod:  m1,
			old:  pg(3, withMinResources(map[v1.ResourceName]string{v1.ResourceCPU: "4"})),
			new:  pg(3, withMinResources(map[v1.ResourceName]string{v1.ResourceCPU: "3"})),
			want: fwk.Queue,
		},
		{
			name: "same minResources spelled differently",
			pod:  m1,
			old:  pg(3, withMinResources(map[v1.ResourceName]string{v1.ResourceCPU: "1"})),
			new:  pg(3, withMinResources(map[v1.ResourceName]string{v1.ResourceCPU: "1000m"})),
			want: fwk.QueueSkip,
		},
		{name: "scheduleTimeoutSeconds changed", pod: m1, old: pg(3, withTimeout(10)), new: pg(3, withTimeout(20)), want: fwk.Queue},
		{name: "other group created", pod: m1, new: makePG("other", 1), want: fwk.QueueSkip},
		{name: "other group's minMember lowered", pod: m1, old: makePG("other", 3), new: makePG("other", 1), want: fwk.QueueSkip},
		{name: "same name in another namespace", pod: m1, new: makePG(testPG, 1, inNamespace("elsewhere")), want: fwk.QueueSkip},
		{name: "pod outside any group", pod: plain("p").Obj(), new: pg(1), want: fwk.QueueSkip},
	}
	for _, tt := range tests {
		for _, form := range []string{"typed", "unstructured"} {
			t.Run(tt.name+"/"+form, func(t *testing.T) {
				e := newTestEnv(t)
				logger, _ := ktesting.NewTestContext(t)
				var oldObj, newObj any
				if form == "typed" {
					newObj = tt.new
					if tt.old != nil {
						oldObj = tt.old
					}
				} else {
					newObj = unstructuredPG(t, tt.new)
					if tt.old != nil {
						oldObj = unstructuredPG(t, tt.old)
					}
				}
				got, err := e.pl.isSchedulableAfterPodGroupChange(logger, tt.pod, oldObj, newObj)
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				if got != tt.want {
					t.Errorf("hint: got %v, want %v", got, tt.want)
				}
			})
		}
	}
}

func TestIsSchedulableAfterPodGroupChangeBadObjects(t *testing.T) {
	e := newTestEnv(t)
	logger, _ := ktesting.NewTestContext(t)
	m1 := member("m1", testPG).Obj()
	bad := unstructuredPG(t, makePG(testPG, 1))
	bad.Object["spec"] = map[string]any{"minMember": "many"}
	tests := []struct {
		name     string
		old, new any
		want     fwk.QueueingHint
		wantErr  bool
	}{
		{name: "not a PodGroup", new: m1, want: fwk.Queue, wantErr: true},
		{name: "undecodable", new: bad, want: fwk.Queue, wantErr: true},
		{name: "tombstone of the same group", new: cache.DeletedFinalStateUnknown{Key: testKey, Obj: makePG(testPG, 1)}, want: fwk.Queue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.pl.isSchedulableAfterPodGroupChange(logger, m1, tt.old, tt.new)
			if (err != nil) != tt.wantErr {
				t.Errorf("error: got %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("hint: got %v, want %v", got, tt.want)
			}
		})
	}
}
