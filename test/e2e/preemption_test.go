package e2e

import (
	"testing"

	"github.com/cosched/cosched/test/testutil"
)

// TestGangPreemptsAsUnit: a high-priority gang that fits only in the room of
// a running low-priority gang takes it whole: every member of the low gang
// goes, not just the ones in the way, and the high gang binds whole. One of
// the gang essentials make test-compat runs against each API server release.
func TestGangPreemptsAsUnit(t *testing.T) {
	s := newSuite(t)
	if err := testutil.CreatePriorityClasses(s.ctx, s.cs); err != nil {
		t.Fatal(err)
	}
	s.nodes(sameNodes(2, "4", "8Gi"))

	s.group(testutil.PodGroup(s.ns, "low", 2))
	low := s.members("low", 2, "3", "1Gi")
	for _, p := range low {
		testutil.WithPriorityClass(p, testutil.LowPriority)
	}
	lowNames := s.create(low...)
	s.allBound(lowNames)

	s.group(testutil.PodGroup(s.ns, "high", 2))
	high := s.members("high", 2, "3", "1Gi")
	for _, p := range high {
		testutil.WithPriorityClass(p, testutil.HighPriority)
	}
	s.allBound(s.create(high...))

	left, err := testutil.BoundNodes(s.ctx, s.cs, s.ns, lowNames)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CountBound(left); n != 0 {
		t.Errorf("%d of the low gang's 2 members still bound after the high gang took its room: %s", n, testutil.Describe(left))
	}
}
