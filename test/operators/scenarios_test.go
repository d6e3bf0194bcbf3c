package operators

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// Scenario 1: KubeRay creates the PodGroup of a RayCluster labelled
// ray.io/gang-scheduling-enabled (minMember = workers + 1, owned by the
// RayCluster) and stamps scheduler-plugins-scheduler on the pods; cosched
// binds the cluster whole. A cluster too big for its nodes holds nothing and
// its PodGroup says why; with nodes added it binds whole.
func TestRayClusterGang(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers int64
		// nodes at the start, and nodes added once the cluster was seen
		// holding nothing.
		nodes, addNodes int
	}{
		{name: "fits", workers: 2, nodes: 3},
		{name: "too big until nodes are added", workers: 4, nodes: 3, addNodes: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSuite(t)
			s.addNodes(tc.nodes)
			members := int(tc.workers) + 1
			s.watch.Track("ray", members)
			s.create(rayClusterGVR, s.rayCluster("ray", tc.workers))

			pg := s.podGroup("ray")
			s.checkPodGroup(pg, int32(members), nil, "RayCluster", false)
			pods := s.waitMembers("ray", members)
			if got := schedulerNames(pods); len(got) != 1 || got[0] != kuberaySchedulerName {
				t.Errorf("KubeRay's pods ask for schedulers %v, want [%s]", got, kuberaySchedulerName)
			}

			if tc.addNodes > 0 {
				s.holdsNothing("ray", 10*time.Second)
				t.Logf("PodGroup ray waits, holding nothing: %s", s.warningEvent("ray"))
				s.holdsNothing("ray", 2*time.Second)
				s.addNodes(tc.addNodes)
			}
			pods = s.waitBound("ray", members, members)
			s.watch.Check()
			t.Logf("RayCluster bound whole: %s; %s", describe(pods), s.watch.Stats())
		})
	}
}

// Scenario 2: a PyTorchJob with runPolicy.schedulingPolicy.minAvailable below
// its replica count and a scheduleTimeoutSeconds. training-operator writes
// them into the PodGroup; cosched binds the quorum while the last member has
// no room, and the last member once a node is added. When the job succeeds
// the operator deletes the PodGroup and cosched keeps nothing of it.
func TestPyTorchJobQuorumThenCleanup(t *testing.T) {
	s := newSuite(t)
	const workers, minAvailable, timeout = 3, 3, 30
	members := workers + 1
	s.addNodes(minAvailable)
	s.watch.Track("train", minAvailable)
	s.create(pytorchJobGVR, s.pytorchJob("train", workers, minAvailable, timeout))

	pg := s.podGroup("train")
	s.checkPodGroup(pg, minAvailable, ptr.To[int32](timeout), "PyTorchJob", true)
	pods := s.waitMembers("train", members)
	if got := schedulerNames(pods); len(got) != 1 || got[0] != "cosched" {
		t.Errorf("training-operator's pods ask for schedulers %v, want [cosched]", got)
	}
	// The quorum binds; the member beyond it has no room and stays pending
	// without holding the others back.
	s.waitBound("train", members, minAvailable)
	time.Sleep(5 * time.Second)
	s.waitBound("train", members, minAvailable)
	s.addNodes(1)
	pods = s.waitBound("train", members, members)
	s.watch.Check()
	t.Logf("PyTorchJob bound: %s; %s", describe(pods), s.watch.Stats())

	s.running("train")
	s.completeMembers("train")
	s.jobCondition(pytorchJobGVR, "train", "Succeeded")
	s.podGroupGone("train")
	s.expectGangGaugesIdle()
}

// expectGangGaugesIdle waits until cosched's per-group gauges are back to 0:
// it keeps no memory of finished groups.
func (s *suite) expectGangGaugesIdle() {
	s.t.Helper()
	last, err := s.coschedGauges(s.ctx, gangGauges...)
	if err != nil {
		s.t.Fatalf("reading cosched's metrics: %v", err)
	}
	var present []string
	for _, name := range gangGauges {
		if _, ok := last[name]; ok {
			present = append(present, name)
		} else {
			s.t.Logf("cosched does not export %s yet: not checked", name)
		}
	}
	if len(present) == 0 {
		return
	}
	err = wait.PollUntilContextTimeout(s.ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := s.coschedGauges(ctx, present...)
		if err != nil {
			return false, nil
		}
		last = got
		for _, name := range present {
			if got[name] != 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		s.t.Errorf("cosched's group gauges did not return to 0 after the job ended and its PodGroup was deleted: %v", last)
	}
}

// Scenario 3: a kubeflow.org/v1 MPIJob: training-operator creates the
// launcher at once, with the workers; launcher and workers bind as one gang.
func TestMPIJobGang(t *testing.T) {
	s := newSuite(t)
	const workers = 2
	members := workers + 1
	s.addNodes(members)
	s.watch.Track("mpi", members)
	s.create(mpiJobGVR, s.mpiJob("mpi", workers))

	pg := s.podGroup("mpi")
	s.checkPodGroup(pg, int32(members), nil, "MPIJob", true)
	pods := s.waitBound("mpi", members, members)
	s.watch.Check()
	t.Logf("MPIJob bound whole: %s; %s", describe(pods), s.watch.Stats())
}

// Scenario 4: a RayCluster and a PyTorchJob that each fit alone but not
// together: one runs whole, the other holds nothing and waits, and runs whole
// once the first is deleted.
func TestJobsCompete(t *testing.T) {
	s := newSuite(t)
	const members = 3
	s.addNodes(4)
	jobs := map[string]schema.GroupVersionResource{"ray": rayClusterGVR, "train": pytorchJobGVR}
	for group := range jobs {
		s.watch.Track(group, members)
	}
	s.create(rayClusterGVR, s.rayCluster("ray", members-1))
	s.create(pytorchJobGVR, s.pytorchJob("train", members-1, 0, 0))
	s.waitMembers("ray", members)
	s.waitMembers("train", members)

	var winner string
	err := wait.PollUntilContextTimeout(s.ctx, 200*time.Millisecond, bindTimeout, true, func(ctx context.Context) (bool, error) {
		for group := range jobs {
			pods, err := s.groupPods(ctx, group)
			if err != nil {
				return false, nil
			}
			if len(pods) == members && boundCount(pods) == members {
				winner = group
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("neither job was bound whole (%s): %v", s.watch.Snapshot("ray", "train"), err)
	}
	loser := "ray"
	if winner == "ray" {
		loser = "train"
	}
	s.holdsNothing(loser, 10*time.Second)
	s.waitBound(winner, members, members)
	t.Logf("%s runs whole, %s holds nothing: %s", winner, loser, s.warningEvent(loser))

	s.watch.Untrack(winner)
	s.delete(jobs[winner], winner)
	pods := s.waitBound(loser, members, members)
	s.watch.Check()
	t.Logf("after %s was deleted, %s bound whole: %s; %s", winner, loser, describe(pods), s.watch.Stats())
}

// Scenario 5: an operator killed with SIGKILL and started again while its
// job waits for room, and again once it runs: it creates no second set of
// pods, the PodGroup is the same object, nothing is bound twice or partly.
func TestOperatorRestartMidJob(t *testing.T) {
	for _, tc := range []struct {
		operator string
		gvr      schema.GroupVersionResource
		object   func(s *suite) *unstructured.Unstructured
	}{
		{
			operator: "kuberay-operator",
			gvr:      rayClusterGVR,
			object:   func(s *suite) *unstructured.Unstructured { return s.rayCluster("job", 2) },
		},
		{
			operator: "training-operator",
			gvr:      pytorchJobGVR,
			object:   func(s *suite) *unstructured.Unstructured { return s.pytorchJob("job", 2, 0, 0) },
		},
	} {
		t.Run(tc.operator, func(t *testing.T) {
			startCmd, pidDir := operatorControl(t)
			s := newSuite(t)
			const members = 3
			s.addNodes(members - 1)
			s.watch.Track("job", members)
			s.create(tc.gvr, tc.object(s))

			before := identities(s.waitMembers("job", members))
			uid := s.podGroupUID("job")
			s.holdsNothing("job", 5*time.Second)

			// Mid-job, while the gang waits for room.
			s.restartOperator(startCmd, pidDir, tc.operator)
			s.holdsNothing("job", 10*time.Second)
			if got := identities(s.waitMembers("job", members)); !sameMap(got, before) {
				t.Fatalf("after the restart the members are %v, want the same pods %v", got, before)
			}
			s.addNodes(1)
			bound := identities(s.waitBound("job", members, members))

			// Mid-job, while the gang runs.
			s.restartOperator(startCmd, pidDir, tc.operator)
			time.Sleep(10 * time.Second)
			if got := identities(s.waitBound("job", members, members)); !sameMap(got, bound) {
				t.Fatalf("after the second restart the members are %v, want the same pods on the same nodes %v", got, bound)
			}
			if got := s.podGroupUID("job"); got != uid {
				t.Errorf("the PodGroup was recreated (uid %s, was %s)", got, uid)
			}
			if peak, peakBound := s.watch.Peak("job"); peak != members || peakBound != members {
				t.Errorf("the watch saw up to %d members and %d bound at once, want %d and %d", peak, peakBound, members, members)
			}
			s.watch.Check()
			t.Logf("%s restarted twice; %s", tc.operator, s.watch.Stats())
		})
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
