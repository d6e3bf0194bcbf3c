package integration

import (
	"testing"

	"github.com/cosched/cosched/test/testutil"
)

// TestOperatorPodGroups replays the PodGroup shapes that job controllers
// create today, so users moving from scheduler-plugins see the same result.
func TestOperatorPodGroups(t *testing.T) {
	c := startCluster(t)

	t.Run("Kubeflow training-operator PyTorchJob: master plus workers, minResources", func(t *testing.T) {
		s := c.newScenario(t, nodes("pytorch", 2, "4", "16Gi"), nil)
		// The operator names the group after the job; minMember counts every
		// replica and minResources sums their requests.
		s.createGroup(testutil.WithMinResources(testutil.PodGroup(s.ns, "pytorch-mnist", 4), "4", "8Gi"))
		pods := []string{"pytorch-mnist-master-0", "pytorch-mnist-worker-0", "pytorch-mnist-worker-1", "pytorch-mnist-worker-2"}
		for _, name := range pods {
			s.createPods(testutil.Pod(s.ns, name, "pytorch-mnist", "1", "2Gi"))
		}
		s.expectAllBound(pods, bindTimeout)
	})

	t.Run("Kubeflow Trainer TrainJob: coscheduling policy with its default timeout", func(t *testing.T) {
		s := c.newScenario(t, nodes("trainer", 2, "4", "16Gi"), nil)
		s.createGroup(testutil.WithTimeout(testutil.WithMinResources(testutil.PodGroup(s.ns, "fine-tune", 2), "4", "8Gi"), 60))
		names := s.createPods(testutil.Pod(s.ns, "fine-tune-node-0-0", "fine-tune", "2", "4Gi"), testutil.Pod(s.ns, "fine-tune-node-0-1", "fine-tune", "2", "4Gi"))
		s.expectAllBound(names, bindTimeout)
	})

	t.Run("MPI Operator: launcher plus workers", func(t *testing.T) {
		s := c.newScenario(t, nodes("mpi", 2, "4", "16Gi"), nil)
		s.createGroup(testutil.WithTimeout(testutil.WithMinResources(testutil.PodGroup(s.ns, "pi", 3), "2500m", "3Gi"), 120))
		names := s.createPods(
			testutil.Pod(s.ns, "pi-launcher", "pi", "500m", "1Gi"),
			testutil.Pod(s.ns, "pi-worker-0", "pi", "1", "1Gi"),
			testutil.Pod(s.ns, "pi-worker-1", "pi", "1", "1Gi"),
		)
		s.expectAllBound(names, bindTimeout)
	})

	t.Run("Spark Operator: minMember 1 gated by minResources of driver and executors", func(t *testing.T) {
		s := c.newScenario(t, nodes("spark", 2, "4", "16Gi"), nil)
		// Room for the whole application: the driver starts, then executors.
		s.createGroup(testutil.WithMinResources(testutil.PodGroup(s.ns, "spark-pi-pg", 1), "3", "6Gi"))
		driver := s.createPods(testutil.Pod(s.ns, "spark-pi-driver", "spark-pi-pg", "1", "2Gi"))
		s.expectAllBound(driver, bindTimeout)
		executors := s.createPods(testutil.Pod(s.ns, "spark-pi-exec-1", "spark-pi-pg", "1", "2Gi"), testutil.Pod(s.ns, "spark-pi-exec-2", "spark-pi-pg", "1", "2Gi"))
		s.expectAllBound(executors, bindTimeout)

		// An application whose executors could never fit: its driver must
		// not start and hold room it cannot use.
		s.createGroup(testutil.WithMinResources(testutil.PodGroup(s.ns, "spark-huge-pg", 1), "64", "6Gi"))
		huge := s.createPods(testutil.Pod(s.ns, "spark-huge-driver", "spark-huge-pg", "1", "2Gi"))
		s.expectEvent("spark-huge-pg", "minResources needs cpu 64", bindTimeout)
		s.expectNoneBound(huge, holdFor)
	})

	t.Run("KubeRay RayCluster: the scheduler name it hard-codes", func(t *testing.T) {
		s := c.newScenario(t, nodes("ray", 2, "4", "16Gi"), nil)
		s.createGroup(testutil.WithMinResources(testutil.PodGroup(s.ns, "ray-cluster-0", 3), "3", "6Gi"))
		pods := []string{"ray-cluster-0-head", "ray-cluster-0-worker-a", "ray-cluster-0-worker-b"}
		for _, name := range pods {
			p := testutil.Pod(s.ns, name, "ray-cluster-0", "1", "2Gi")
			p.Spec.SchedulerName = "scheduler-plugins-scheduler"
			s.createPods(p)
		}
		s.expectAllBound(pods, bindTimeout)
	})
}
