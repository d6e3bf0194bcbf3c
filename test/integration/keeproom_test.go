package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/test/testutil"
)

// The shipped backoff: the defects these tests guard showed with it, not
// with the harness's 1 s.
const shippedBackoffSeconds = 5

func shippedBackoff(a *config.CoschedGangArgs) {
	a.PodGroupBackoffSeconds = ptr.To[int64](shippedBackoffSeconds)
}

// TestPreemptorKeepsItsRoom: a high-priority gang evicts a running
// low-priority gang whose controller recreates its pods the moment they go
// (as training-operator does). The room the preemption freed is held for
// the preemptor: it binds whole, the recreated victims wait whole, and every
// member the preemption placed shows its nominated node while it waits.
func TestPreemptorKeepsItsRoom(t *testing.T) {
	c := startCluster(t)
	s := c.newScenario(t, nodes("keep", 3, "4", "16Gi"), shippedBackoff)

	s.createGroup(testutil.PodGroup(s.ns, "lowp", 2))
	low := s.members("lowp", 2, "3", "1Gi")
	for _, p := range low {
		testutil.WithPriorityClass(p, testutil.LowPriority)
	}
	lowNames := s.createPods(low...)
	s.expectAllBound(lowNames, bindTimeout)
	recreated := s.recreateOnDelete(low)

	s.createGroup(testutil.PodGroup(s.ns, "highp", 3))
	high := s.members("highp", 3, "3", "1Gi")
	for _, p := range high {
		testutil.WithPriorityClass(p, testutil.HighPriority)
		// Victims take a moment to go: the members wait for them.
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	}
	highNames := s.createPods(high...)

	// The preemptor binds whole, quickly: it is not sent into a backoff by
	// its own preemption, and the recreated victims cannot take its room.
	start := time.Now()
	s.expectAllBound(highNames, 20*time.Second)
	t.Logf("high gang bound %s after it was created; victims recreated %d times", time.Since(start).Round(100*time.Millisecond), recreated())
	if recreated() == 0 {
		t.Fatal("the low gang was never evicted: the test did not exercise preemption")
	}
	// The recreated low gang waits, whole, and says why.
	s.expectNeverPartial(lowNames, 3*time.Second)
	s.expectNoneBound(lowNames, time.Second)
	s.expectEvent("highp", "Preempting: preempting PodGroup "+s.ns+"/lowp", bindTimeout)
	s.expectEvent("lowp", "GangRejected", bindTimeout)
}

// recreateOnDelete plays the victims' controller: every pod of pods that is
// deleted is created again at once, with the same name and spec. It returns
// how many pods it has recreated.
func (s *scenario) recreateOnDelete(pods []*v1.Pod) func() int {
	s.t.Helper()
	specs := map[string]*v1.Pod{}
	for _, p := range pods {
		fresh := p.DeepCopy()
		fresh.ResourceVersion, fresh.UID, fresh.Spec.NodeName = "", "", ""
		specs[p.Name] = fresh
	}
	ctx, cancel := context.WithCancel(s.ctx)
	w, err := s.cs.CoreV1().Pods(s.ns).Watch(ctx, metav1.ListOptions{LabelSelector: podgroup.Label + "=" + podgroup.NameOf(pods[0])})
	if err != nil {
		s.t.Fatal(err)
	}
	var mu sync.Mutex
	count := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Pod)
			if !ok || ev.Type != watch.Deleted || specs[p.Name] == nil {
				continue
			}
			// The controller sees the deletion and creates the pod again.
			for range 50 {
				_, err := s.cs.CoreV1().Pods(s.ns).Create(ctx, specs[p.Name].DeepCopy(), metav1.CreateOptions{})
				if err == nil || !apierrors.IsAlreadyExists(err) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			mu.Lock()
			count++
			mu.Unlock()
		}
	}()
	s.t.Cleanup(func() {
		cancel()
		w.Stop()
		<-done
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return count
	}
}

// TestMixedSizesBindFirstTime: a gang of mixed sizes that fits the cluster
// exactly, on a cluster where nothing else competes, binds on its first
// attempt: no rejection on its PodGroup. (Placed one by one in queue order,
// small members spread by scoring took the room the big ones needed.)
func TestMixedSizesBindFirstTime(t *testing.T) {
	c := startCluster(t)
	shapes := []struct {
		name  string
		nodes []*v1.Node
		// sizes are the members' CPU requests.
		sizes []string
	}{
		{name: "head, 9 small and 3 big workers on 4 nodes of 4", nodes: nodes("mix-a", 4, "4", "16Gi"),
			sizes: []string{"1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "2", "2", "2"}},
		{name: "head, 3 small and 2 big workers on 4 nodes of 2", nodes: nodes("mix-b", 4, "2", "16Gi"),
			sizes: []string{"1", "1", "1", "1", "2", "2"}},
		{name: "3 big and 3 small on 3 nodes of 4", nodes: nodes("mix-c", 3, "4", "16Gi"),
			sizes: []string{"1", "1", "1", "3", "3", "3"}},
		{name: "halves and wholes on unequal nodes", nodes: append(nodes("mix-d", 2, "4", "16Gi"), testutil.Node("mix-d-small", "2", "16Gi", nil)),
			sizes: []string{"3", "3", "1", "1", "1500m", "500m"}},
	}
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			s := c.newScenario(t, shape.nodes, shippedBackoff)
			s.createGroup(testutil.PodGroup(s.ns, "mixed", int32(len(shape.sizes))))
			var pods []*v1.Pod
			for i, cpu := range shape.sizes {
				pods = append(pods, testutil.Pod(s.ns, fmt.Sprintf("mixed-%02d", i), "mixed", cpu, "100Mi"))
			}
			names := s.createPods(pods...)
			s.expectAllBound(names, 10*time.Second)
			evs, err := testutil.EventsFor(s.ctx, s.cs, s.ns, "PodGroup", "mixed")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if strings.Contains(e, "GangRejected") {
					t.Errorf("the group was rejected before it bound: %s", e)
				}
			}
		})
	}
}

// TestRoomWakesWaitingGang: a gang backing off because it does not fit
// binds within seconds of room appearing (a node added), not when its
// escalated backoff ends.
func TestRoomWakesWaitingGang(t *testing.T) {
	c := startCluster(t)
	s := c.newScenario(t, nodes("wake", 1, "4", "16Gi"), shippedBackoff)
	s.createGroup(testutil.PodGroup(s.ns, "job", 3))
	names := s.createPods(s.members("job", 3, "2", "1Gi")...)
	s.expectEvent("job", "GangRejected", bindTimeout)
	// Past the first backoff: the group has been turned away twice and now
	// backs off twice as long.
	time.Sleep(time.Duration(shippedBackoffSeconds)*time.Second + 1500*time.Millisecond)
	s.expectNoneBound(names, 0)
	added := time.Now()
	s.addNodes(testutil.Node("wake-1", "4", "16Gi", nil))
	s.expectAllBound(names, 4*time.Second)
	t.Logf("gang bound %s after the node was added", time.Since(added).Round(100*time.Millisecond))
}
