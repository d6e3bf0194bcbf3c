package testutil

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/cosched/cosched/pkg/podgroup"
)

// failures stands in for the test the watch reports to, so that a test can
// see what the watch would have failed.
type failures struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (f *failures) Helper() {}

func (f *failures) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *failures) all() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errors, "\n")
}

// watchedCluster is a fake API server with one namespace whose pods a
// GangWatch follows.
type watchedCluster struct {
	t   *testing.T
	ctx context.Context
	cs  *fake.Clientset
	rec *failures
	w   *GangWatch
}

const watchNS = "w"

func newWatchedCluster(t *testing.T, grace time.Duration) *watchedCluster {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &watchedCluster{t: t, ctx: ctx, cs: fake.NewClientset(), rec: &failures{TB: t}}
	c.w = WatchGangs(ctx, c.rec, c.cs, watchNS, grace)
	return c
}

func (c *watchedCluster) create(group string, i int) *v1.Pod {
	c.t.Helper()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: watchNS, Name: fmt.Sprintf("%s-%d", group, i), UID: types.UID(fmt.Sprintf("%s-%d-uid", group, i)),
		Labels: map[string]string{podgroup.Label: group},
	}}
	pod, err := c.cs.CoreV1().Pods(watchNS).Create(c.ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return pod
}

func (c *watchedCluster) bind(pod *v1.Pod, node string) {
	c.t.Helper()
	pod = pod.DeepCopy()
	pod.Spec.NodeName = node
	if _, err := c.cs.CoreV1().Pods(watchNS).Update(c.ctx, pod, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// deleteBound deletes a bound member, telling the watch first if byTest,
// once the watch has seen n members bound.
func (c *watchedCluster) deleteBound(pod *v1.Pod, n int, byTest bool) {
	c.t.Helper()
	c.waitBound(n)
	if byTest {
		c.w.DeletingPod(pod, "the test's cleanup")
	}
	if err := c.cs.CoreV1().Pods(watchNS).Delete(c.ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// TestGangWatchJudges is the watch's own positive control: each case
// drives a fake API server through the states a scheduler could leave, and
// the watch must fail exactly the ones that break all-or-nothing.
func TestGangWatchJudges(t *testing.T) {
	const grace = 300 * time.Millisecond
	zones := map[string]string{"n0": "a", "n1": "a", "n2": "b"}
	type deletion int
	const (
		keep deletion = iota
		deletedByTest
		deletedByOther
	)
	whole := []string{"n0", "n0", "n0"}
	twoOfThree := []string{"n0", "n1", ""}
	acrossZones := []string{"n0", "n1", "n2"}
	cases := []struct {
		name string
		gang Gang
		// nodes binds the group's three members in turn ("" leaves one
		// pending); then the last is deleted if deleted says so, and the
		// watch is checked settle later.
		nodes   []string
		deleted deletion
		settle  time.Duration
		want    string // a part of the failure, "" for none
	}{
		{name: "whole gang bound within the grace", gang: Gang{Name: "g", MinMember: 3}, nodes: whole},
		{name: "nothing bound", gang: Gang{Name: "g", MinMember: 3}, nodes: []string{"", "", ""}},
		{name: "two of three bound past the grace", gang: Gang{Name: "g", MinMember: 3}, nodes: twoOfThree, settle: 3 * grace, want: "stayed partly bound"},
		{name: "two of three bound when checked at once", gang: Gang{Name: "g", MinMember: 3}, nodes: twoOfThree, want: "partly bound"},
		{name: "quorum of two met by two of three", gang: Gang{Name: "g", MinMember: 2}, nodes: twoOfThree, settle: 3 * grace},
		{name: "a bound member deleted by the test is excused", gang: Gang{Name: "g", MinMember: 3}, nodes: whole, deleted: deletedByTest, settle: 3 * grace},
		{name: "a bound member deleted by someone else is not", gang: Gang{Name: "g", MinMember: 3}, nodes: whole, deleted: deletedByOther, settle: 3 * grace, want: "stayed partly bound"},
		// Beyond the quorum a member may go elsewhere.
		{name: "topology gang inside one zone", gang: Gang{Name: "g", MinMember: 2, Topology: "zone"}, nodes: acrossZones, settle: domainSettle + time.Second},
		{name: "topology gang across zones", gang: Gang{Name: "g", MinMember: 3, Topology: "zone"}, nodes: acrossZones, settle: domainSettle + time.Second, want: "no domain holds its quorum"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newWatchedCluster(t, grace)
			for node, zone := range zones {
				c.w.AddNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"zone": zone}}})
			}
			c.w.TrackGang(tc.gang)
			var pods []*v1.Pod
			for i := range 3 {
				pods = append(pods, c.create(tc.gang.Name, i))
			}
			for i, node := range tc.nodes {
				if node != "" {
					c.bind(pods[i], node)
				}
			}
			if tc.deleted != keep {
				c.deleteBound(pods[2], 3, tc.deleted == deletedByTest)
			}
			time.Sleep(tc.settle)
			c.w.Check()
			got := c.rec.all()
			switch {
			case tc.want == "" && got != "":
				t.Errorf("the watch failed a run that kept all-or-nothing:\n%s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("the watch did not fail the run with %q; it reported:\n%s", tc.want, got)
			}
		})
	}
}

// waitBound waits until the API server holds n bound pods, so that the
// watch has seen them bound before the case goes on.
func (c *watchedCluster) waitBound(n int) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		bound, _, err := BoundByGroup(c.ctx, c.cs, watchNS, "")
		if err == nil && bound["g"] == n && c.w.Snapshot("g") == fmt.Sprintf("g: %d bound of %d members, minMember 3, bare", n, n) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("want %d bound; the watch sees %s", n, c.w.Snapshot("g"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
