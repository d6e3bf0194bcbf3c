package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cosched/cosched/test/testutil"
)

// The outage tests take the API server away while gangs are in flight and
// bring it back. They run a command from the environment:
//
//	COSCHED_APISERVER_RESTART_CMD  stops the API server, keeps it down for
//	                               $APISERVER_DOWN_SECONDS (set by the test)
//	                               and returns once it is ready again
//	                               (hack/restart-apiserver.sh)
//	COSCHED_PID_FILE               cosched's pid file, to tell whether the
//	                               process changed (optional: the Lease
//	                               cosched-system/cosched is compared too)
//	COSCHED_START_CMD              starts cosched when it is not running,
//	                               as its supervisor would (for the long
//	                               outage only)
//	COSCHED_LOG_FILE               cosched's log, read to tell why it exited
//
// hack/test-e2e.sh sets them for the local control plane.

// TestAPIServerOutage cuts the API server for COSCHED_OUTAGE_SECONDS
// (default 15: with the API server's start-up, 2-3 s here, the outage stays
// under the 25 s renew deadline of the shipped leader election) while gangs
// are bound, waiting at Permit and being placed. cosched must ride it out in
// the same process and every gang must end whole or empty.
func TestAPIServerOutage(t *testing.T) {
	restart := os.Getenv("COSCHED_APISERVER_RESTART_CMD")
	if restart == "" {
		t.Skip("COSCHED_APISERVER_RESTART_CMD is not set: no way to take this cluster's API server down (make test-e2e sets it)")
	}
	apiServerOutage(t, restart, envInt(t, "COSCHED_OUTAGE_SECONDS", 15), "")
}

// TestAPIServerOutageBeyondLease cuts the API server for longer than the
// leader-election lease allows (COSCHED_LONG_OUTAGE_SECONDS, default 35;
// the shipped renewDeadline is 25s).
// A kube-scheduler that cannot renew its Lease within the renew deadline
// exits on purpose ("Leaderelection lost") and relies on its supervisor to
// start it again; the test plays that supervisor with COSCHED_START_CMD. No
// gang may be left partly bound across the exit and the restart.
func TestAPIServerOutageBeyondLease(t *testing.T) {
	restart := os.Getenv("COSCHED_APISERVER_RESTART_CMD")
	start := os.Getenv("COSCHED_START_CMD")
	if restart == "" || start == "" {
		t.Skip("COSCHED_APISERVER_RESTART_CMD or COSCHED_START_CMD is not set: no way to take this cluster's API server down and start cosched again (make test-e2e sets them)")
	}
	apiServerOutage(t, restart, envInt(t, "COSCHED_LONG_OUTAGE_SECONDS", 35), start)
}

// apiServerOutage is the scenario of both tests. With start == "" cosched
// must survive in the same process; otherwise it may exit over a lost Lease
// and is started again with start.
func apiServerOutage(t *testing.T, restart string, downSeconds int, start string) {
	began := time.Now()
	s := newSuite(t)
	s.waitServiceAccount()
	// 3 x 8 CPU; the gangs and plain pods that fit need 19 CPU in all.
	s.nodes(sameNodes(3, "8", "16Gi"))
	// A gang released just before the cut may have members that could not
	// be bound; they are bound on a later attempt, after pod backoff.
	w := s.watchGangs(20 * time.Second)
	before := s.coschedIdentity()
	t.Logf("cosched before the outage: %s", before)

	fits := map[string][]string{} // group (or plain-*) -> pods that must end bound
	var unfit []string            // pods that must never be bound
	gang := func(g gangSpec) []string {
		t.Helper()
		w.track(g.name, g.minMember)
		names, err := s.createGang(s.ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	member := func(name string, minMember, members int) gangSpec {
		return gangSpec{name: name, minMember: minMember, members: members, cpu: "500m", mem: "256Mi"}
	}

	// Bound before the outage.
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("early-%d", i)
		fits[name] = gang(member(name, 4, 4))
		s.allBound(fits[name])
	}
	// Three members reserved and waiting at Permit for a fourth that a
	// scheduling gate holds back until after the outage.
	waitingSpec := member("waiting", 4, 4)
	waitingSpec.gateLast, waitingSpec.timeout = true, 600
	waiting := gang(waitingSpec)
	fits["waiting"] = waiting
	// Short of its quorum, and too big for any node: never placed.
	unfit = append(unfit, gang(member("short", 4, 3))...)
	tooBig := member("toobig", 2, 2)
	tooBig.cpu = "9"
	unfit = append(unfit, gang(tooBig)...)
	fits["plain-before"] = s.create(s.pod("plain-before-0", "", "250m", "128Mi"), s.pod("plain-before-1", "", "250m", "128Mi"))
	s.noneBound(waiting, 3*time.Second)

	// In flight at the cut: created right before it and not waited for.
	var burst []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("burst-%d", i)
		burst = append(burst, name)
		fits[name] = gang(member(name, 4, 4))
	}

	w.pause()
	t.Logf("at the cut (as the watch saw it): %s", w.snapshot(append(burst, "waiting")...))
	out, err := runCommand(s.ctx, restart, fmt.Sprintf("APISERVER_DOWN_SECONDS=%d", downSeconds))
	if err != nil {
		w.resume()
		t.Fatalf("taking the API server down and up (%s): %v\n%s", restart, err, out)
	}
	t.Logf("%s", lastLine(out))

	restarted := false
	if start != "" {
		// Give a process that is about to exit over its Lease the moment.
		time.Sleep(2 * time.Second)
	}
	if _, err := coschedPID(); err != nil && os.Getenv("COSCHED_PID_FILE") != "" {
		why := exitReason(t)
		if start == "" {
			t.Fatalf("cosched did not survive the outage (%s): %v. kube-scheduler exits when it cannot renew its "+
				"leader-election Lease within the renew deadline (25 s in the shipped config); a slow API server "+
				"start makes the outage longer than the down time. The end of its log:\n%s", lastLine(out), err, why)
		}
		t.Logf("cosched exited during the outage (%v)", err)
		if why != "" && !strings.Contains(why, "Leaderelection lost") {
			t.Errorf("cosched exited, and not because it lost its Lease; the end of its log:\n%s", why)
		}
		out, err := runCommand(s.ctx, start)
		if err != nil {
			t.Fatalf("starting cosched again (%s): %v\n%s", start, err, out)
		}
		restarted = true
		t.Logf("started cosched again: %s", s.coschedIdentity())
	} else if start != "" {
		t.Logf("cosched survived the outage: %s", s.coschedIdentity())
	}
	w.resume()
	// A gang released just before the cut can be split by it: some binds
	// made it, the rest failed. Those members are scheduled again.
	t.Logf("after the outage (listed afresh): %s", w.snapshot(append(burst, "waiting")...))

	// After the outage: the held member comes, more gangs and plain pods
	// arrive.
	s.ungate(waiting[len(waiting)-1])
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("late-%d", i)
		fits[name] = gang(member(name, 4, 4))
	}
	fits["plain-after"] = s.create(s.pod("plain-after-0", "", "250m", "128Mi"), s.pod("plain-after-1", "", "250m", "128Mi"))

	// Pod backoff (up to 10 s) and the group backoff (5 s) can delay members
	// whose attempt the outage broke, and cosched's informers reconnect with
	// client-go's watch backoff (up to a minute after repeated outages).
	for name, names := range fits {
		if _, err := testutil.WaitAllBound(s.ctx, s.cs, s.ns, names, 2*time.Minute); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	s.noneBound(unfit, 5*time.Second)

	after := s.coschedIdentity()
	t.Logf("cosched after the outage: %s", after)
	if start == "" {
		if before.pid > 0 && after.pid != before.pid {
			t.Errorf("cosched was restarted: pid %d before the outage, %d after", before.pid, after.pid)
		}
		if before.haveLease && (!after.haveLease || after.holder != before.holder ||
			!after.acquired.Equal(before.acquired) || after.transitions != before.transitions) {
			t.Errorf("cosched's Lease changed hands over the outage: before %s; after %s", before, after)
		}
	} else if restarted && before.pid > 0 && after.pid == before.pid {
		t.Errorf("cosched was started again but has the old pid %d", after.pid)
	}
	w.check()
	t.Logf("%s; %d pods bound in %d gangs and 2 plain pairs, %d pods never bound; %s in all",
		w.stats(), countNames(fits), len(fits)-2, len(unfit), time.Since(began).Round(time.Second))
}

// exitReason returns the last lines of COSCHED_LOG_FILE ("" when unset).
func exitReason(t *testing.T) string {
	t.Helper()
	file := os.Getenv("COSCHED_LOG_FILE")
	if file == "" {
		return ""
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Logf("reading %s: %v", file, err)
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

func countNames(m map[string][]string) int {
	n := 0
	for _, names := range m {
		n += len(names)
	}
	return n
}
