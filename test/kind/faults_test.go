package kind

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cosched/cosched/test/testutil"
)

// TestLeaderDeletedWhileGangWaits: two of a gang's three members wait at
// Permit in the leader's memory for the third (held by a scheduling gate)
// when the leader's pod is deleted. Nothing of the gang is bound; another
// replica takes the Lease (the standby, or the pod that replaces the deleted
// one), and once the third is let in the new leader binds all three.
func TestLeaderDeletedWhileGangWaits(t *testing.T) {
	c := newCluster(t)
	watch := testutil.WatchGangs(c.ctx, t, c.cs, c.ns, 10*time.Second)
	const group = "waits-through-failover"
	watch.Track(group, 3)
	// Long enough that the wait outlives the failover.
	c.createGroup(t, group, 3, 300)
	pods := c.members(group, 3, "100m", "-seconds", "5")
	names := testutil.Names(pods)
	// The third exists (cosched lets no member in before the quorum of pods
	// exists) but is held by a scheduling gate: the two others wait at Permit.
	hold(pods[2])
	if err := testutil.CreatePods(c.ctx, c.cs, pods...); err != nil {
		t.Fatal(err)
	}
	c.waitNominated(t, names[:2], time.Minute)

	old := c.leader(t)
	if err := c.cs.CoreV1().Pods(schedulerNamespace).Delete(c.ctx, old, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the leader %s: %v", old, err)
	}
	started := time.Now()
	now := c.waitNewLeader(t, old, 90*time.Second)
	t.Logf("deleted the leader %s; %s took the Lease after %s", old, now, time.Since(started).Round(time.Second))
	// The reservations died with the old leader; the new one places the two
	// members again and they wait again.
	if err := testutil.ExpectNoneBound(c.ctx, c.cs, c.ns, names[:2], 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.release(t, names[2])
	nodes, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, names, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bound by the new leader: %s", testutil.Describe(nodes))
	if phases, err := c.waitPhases(names, 2*time.Minute, v1.PodSucceeded); err != nil {
		t.Fatalf("the gang did not run to completion: %v", phases)
	}
	// The Deployment replaces the deleted replica.
	c.waitSchedulerRolledOut(t, 2*time.Minute)
	watch.Check()
}

// TestCrashLoopingRolloutLeavesGangsAlone: a helm upgrade whose
// configuration the scheduler refuses (a leader-election lease shorter than
// its renew deadline) gives new pods that exit at start, again and again.
// The upgrade fails visibly; the running replicas keep the Lease and keep
// scheduling; the running gang is untouched; a rollback heals the release.
func TestCrashLoopingRolloutLeavesGangsAlone(t *testing.T) {
	c := newCluster(t)
	o := c.operate(t)
	c.waitSchedulerRolledOut(t, 2*time.Minute)
	watch := testutil.WatchGangs(c.ctx, t, c.cs, c.ns, 10*time.Second)
	const steady = "steady"
	watch.Track(steady, 3)
	before := c.bindGang(t, steady, 3, "-seconds", "600")
	leader := c.leader(t)
	healthy := map[string]bool{}
	for _, p := range c.schedulerPods(t) {
		healthy[p.Name] = true
	}

	rev := o.revision(t)
	c.rollbackAfter(t, o, rev)
	out, err := o.helmCmd(c.ctx, "upgrade", schedulerName, o.chart, "--reuse-values",
		"--set", "leaderElection.leaseDuration=5s", "--wait", "--timeout", "75s")
	if err == nil {
		t.Fatalf("helm upgrade with a lease shorter than the renew deadline succeeded:\n%s", out)
	}
	t.Logf("helm upgrade failed, as it should: %v: %s", err, testutil.Tail(out, 3))

	// The new pods fail at start and say why.
	var crashing *v1.Pod
	for _, p := range c.schedulerPods(t) {
		if !healthy[p.Name] {
			crashing = &p
			break
		}
	}
	if crashing == nil {
		t.Fatalf("no new scheduler pod was started by the upgrade")
	}
	st := crashing.Status.ContainerStatuses
	if len(st) == 0 || (st[0].RestartCount == 0 && st[0].LastTerminationState.Terminated == nil && (st[0].State.Terminated == nil)) {
		t.Errorf("the new pod %s never exited: %+v", crashing.Name, st)
	} else {
		t.Logf("new pod %s: restarts %d, waiting %v", crashing.Name, st[0].RestartCount, st[0].State.Waiting)
	}
	logs, _ := c.cs.CoreV1().Pods(schedulerNamespace).GetLogs(crashing.Name, &v1.PodLogOptions{Previous: st[0].RestartCount > 0}).DoRaw(c.ctx)
	if !strings.Contains(string(logs), "leaseDuration") {
		t.Errorf("the crashing pod's log does not name the bad setting (leaseDuration):\n%s", testutil.Tail(string(logs), 10))
	}
	// The old replicas still run, ready, one of them the same leader.
	ready := 0
	for _, p := range c.schedulerPods(t) {
		if healthy[p.Name] && podReady(&p) {
			ready++
		}
	}
	if ready != len(healthy) {
		t.Errorf("%d of the %d replicas that ran before the upgrade are ready", ready, len(healthy))
	}
	if now := c.leader(t); now != leader {
		t.Errorf("the Lease moved from %s to %s during a failed rollout", leader, now)
	}
	// The running gang is untouched, and the old leader still places gangs.
	after := c.podsOf(t, steady)
	for name, p := range before {
		q, ok := after[name]
		if !ok || q.UID != p.UID || q.Spec.NodeName != p.Spec.NodeName || q.Status.Phase != v1.PodRunning {
			t.Errorf("member %s changed during the failed rollout: was %s on %s, now %+v", name, p.UID, p.Spec.NodeName, q.Status.Phase)
		}
	}
	const during = "during-bad-rollout"
	watch.Track(during, 3)
	c.bindGang(t, during, 3, "-seconds", "1")
	watch.Check()
}

// TestConfigUpgradeRollsOutWithoutPartialGang: a helm upgrade of a gang
// argument rolls the scheduler's pods out (the ConfigMap's checksum is in
// the pod template) while gangs keep arriving; every gang ends bound whole and
// none is ever partly bound at rest.
func TestConfigUpgradeRollsOutWithoutPartialGang(t *testing.T) {
	c := newCluster(t)
	o := c.operate(t)
	before := c.waitSchedulerRolledOut(t, 2*time.Minute)
	watch := testutil.WatchGangs(c.ctx, t, c.cs, c.ns, 15*time.Second)
	rev := o.revision(t)
	c.rollbackAfter(t, o, rev)
	old := map[string]bool{}
	for _, p := range c.schedulerPods(t) {
		old[p.Name] = true
	}

	// Gangs arrive every 2 s through the rollout and a while after it.
	stop := make(chan struct{})
	var mu sync.Mutex
	var gangs [][]string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			group := fmt.Sprintf("g%02d", i)
			watch.Track(group, 3)
			if _, err := c.pg.SchedulingV1alpha1().PodGroups(c.ns).Create(c.ctx, testutil.WithTimeout(testutil.PodGroup(c.ns, group, 3), 120), metav1.CreateOptions{}); err != nil {
				t.Errorf("creating PodGroup %s: %v", group, err)
				return
			}
			pods := c.members(group, 3, "20m", "-seconds", "2")
			if err := testutil.CreatePods(c.ctx, c.cs, pods...); err != nil {
				t.Errorf("creating %s: %v", group, err)
				return
			}
			mu.Lock()
			gangs = append(gangs, testutil.Names(pods))
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	out, err := o.helmCmd(c.ctx, "upgrade", schedulerName, o.chart, "--reuse-values",
		"--set", "gangArgs.podGroupBackoffSeconds=3", "--wait", "--timeout", "3m")
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("helm upgrade of podGroupBackoffSeconds: %v\n%s", err, out)
	}
	after := c.waitSchedulerRolledOut(t, 2*time.Minute)
	time.Sleep(10 * time.Second)
	close(stop)
	wg.Wait()

	if after.Spec.Template.Annotations["checksum/config"] == before.Spec.Template.Annotations["checksum/config"] {
		t.Errorf("the config checksum of the pod template did not change")
	}
	for _, p := range c.schedulerPods(t) {
		if old[p.Name] {
			t.Errorf("scheduler pod %s of before the upgrade still runs: the new configuration was not rolled out", p.Name)
		}
	}
	cm, err := c.cs.CoreV1().ConfigMaps(schedulerNamespace).Get(c.ctx, schedulerName+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !configHas(cm, "podGroupBackoffSeconds: 3") {
		t.Errorf("the ConfigMap does not carry the upgraded value: %v", cm.Data)
	}
	t.Logf("rolled out to %s while %d gangs arrived", c.leader(t), len(gangs))
	for _, names := range gangs {
		if _, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, names, 3*time.Minute); err != nil {
			t.Error(err)
		}
	}
	watch.Check()
}

// bindGang creates a PodGroup of n members running the workload with args,
// waits until all are bound and Running (or done), and returns them.
func (c *cluster) bindGang(t *testing.T, group string, n int, args ...string) map[string]v1.Pod {
	t.Helper()
	c.createGroup(t, group, int32(n), 120)
	pods := c.members(group, n, "50m", args...)
	names := testutil.Names(pods)
	if err := testutil.CreatePods(c.ctx, c.cs, pods...); err != nil {
		t.Fatal(err)
	}
	if _, err := testutil.WaitAllBound(c.ctx, c.cs, c.ns, names, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if phases, err := c.waitPhases(names, 2*time.Minute, v1.PodRunning, v1.PodSucceeded); err != nil {
		t.Fatalf("gang %s did not start: %v", group, phases)
	}
	return c.podsOf(t, group)
}

func podReady(p *v1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == v1.PodReady {
			return cond.Status == v1.ConditionTrue
		}
	}
	return false
}

func configHas(cm *v1.ConfigMap, s string) bool {
	for _, v := range cm.Data {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}
