package integration

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroupstatus"
	"github.com/cosched/cosched/test/testutil"
)

// TestPodGroupStatus checks what users see with kubectl: the phase and
// counters the scheduler writes, and the events on the PodGroup.
func TestPodGroupStatus(t *testing.T) {
	c := startCluster(t)
	s := c.newScenario(t, nodes("status", 2, "4", "8Gi"), nil)
	s.createGroup(testutil.PodGroup(s.ns, "job", 3))
	pods := s.members("job", 3, "1", "1Gi")

	s.createPods(pods[:2]...)
	s.expectPodGroup("job", bindTimeout, phaseIs(schedv1alpha1.PodGroupPending))

	s.createPods(pods[2])
	names := testutil.Names(pods)
	s.expectAllBound(names, bindTimeout)
	pg := s.expectPodGroup("job", bindTimeout, func(pg *schedv1alpha1.PodGroup) error {
		if got := pg.Annotations[podgroupstatus.ScheduledMembersAnnotation]; got != "3" {
			return fmt.Errorf("scheduled members annotation = %q, want 3", got)
		}
		return phaseIs(schedv1alpha1.PodGroupScheduling)(pg)
	})
	if pg.Status.ScheduleStartTime.IsZero() {
		t.Errorf("scheduleStartTime was not written")
	}

	for _, name := range names {
		s.setPodPhase(name, v1.PodRunning)
	}
	s.expectPodGroup("job", bindTimeout, func(pg *schedv1alpha1.PodGroup) error {
		if pg.Status.Running != 3 {
			return fmt.Errorf("running = %d, want 3", pg.Status.Running)
		}
		return phaseIs(schedv1alpha1.PodGroupRunning)(pg)
	})
	s.expectEvent("job", "Running", bindTimeout)

	for _, name := range names {
		s.setPodPhase(name, v1.PodSucceeded)
	}
	s.expectPodGroup("job", bindTimeout, func(pg *schedv1alpha1.PodGroup) error {
		if pg.Status.Succeeded != 3 || pg.Status.Running != 0 {
			return fmt.Errorf("succeeded/running = %d/%d, want 3/0", pg.Status.Succeeded, pg.Status.Running)
		}
		return phaseIs(schedv1alpha1.PodGroupFinished)(pg)
	})
}

func phaseIs(want schedv1alpha1.PodGroupPhase) func(*schedv1alpha1.PodGroup) error {
	return func(pg *schedv1alpha1.PodGroup) error {
		// A group nobody wrote a phase for yet is Pending.
		if pg.Status.Phase != want && (want != schedv1alpha1.PodGroupPending || pg.Status.Phase != "") {
			return fmt.Errorf("phase = %q, want %q", pg.Status.Phase, want)
		}
		return nil
	}
}
