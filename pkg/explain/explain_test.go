package explain

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var now = at(300)

// TestGolden renders every fixture the ways kubectl-cosched does (get, get
// -o wide, describe, describe -o json) and compares with testdata.
func TestGolden(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			var b bytes.Buffer
			s := Summarize(f.in, now)
			b.WriteString("== get -A\n")
			if err := PrintTable(&b, []Summary{s}, now, TableOptions{WithNamespace: true}); err != nil {
				t.Fatal(err)
			}
			b.WriteString("== get -o wide\n")
			if err := PrintTable(&b, []Summary{s}, now, TableOptions{Wide: true}); err != nil {
				t.Fatal(err)
			}
			d := Describe(f.in, now)
			b.WriteString("== describe\n")
			if err := PrintDetail(&b, d, now); err != nil {
				t.Fatal(err)
			}
			b.WriteString("== describe -o json\n")
			data, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
			b.WriteString("\n")
			golden(t, filepath.Join("testdata", f.name+".golden"), b.String())
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/explain/ -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", path, diff)
	}
}

// TestSummary checks the numbers and the reason each situation gets,
// independently of the golden files.
func TestSummary(t *testing.T) {
	want := map[string]struct {
		bound, placed, pending int
		waiting                bool
		reason                 string
		domains                string
	}{
		"atomic-bound":     {bound: 2, placed: 2, pending: 0, domains: "node-b"},
		"no-fit":           {pending: 4, waiting: true, reason: "2/4 fit; member needs cpu 2500m, best node has 1"},
		"waiting-for-pods": {pending: 3, waiting: true, reason: "waiting for pods: 3/4 exist"},
		"placed-waiting":   {placed: 2, pending: 1, waiting: true, reason: "2/3 placed, waiting for the rest"},
		"preempted": {pending: 2, waiting: true,
			reason: "no topology.cosched.dev/rack: no domain has room for 2 members (cpu 6); the roomiest, rack-0, has cpu 4 free"},
		"preempting":      {bound: 2, placed: 2, domains: "rack-1"},
		"other-scheduler": {pending: 3, waiting: true, reason: `pre-filter plugin "Coscheduling" rejects the pod`},
	}
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			w, ok := want[f.name]
			if !ok {
				t.Fatalf("no expectation for fixture %s", f.name)
			}
			s := Summarize(f.in, now)
			if s.Bound != w.bound || s.Placed != w.placed || s.Pending != w.pending {
				t.Errorf("bound/placed/pending = %d/%d/%d, want %d/%d/%d", s.Bound, s.Placed, s.Pending, w.bound, w.placed, w.pending)
			}
			if (s.WaitingSince != nil) != w.waiting {
				t.Errorf("waiting = %v, want %v", s.WaitingSince != nil, w.waiting)
			}
			if s.Reason != w.reason {
				t.Errorf("reason = %q, want %q", s.Reason, w.reason)
			}
			if f.name == "no-fit" && s.ReasonFrom != "GangRejected event on podgroup train-e" {
				// The newer FailedScheduling of a member only repeats the
				// rejection while the group backs off.
				t.Errorf("reason from %q, want the GangRejected event", s.ReasonFrom)
			}
			if got := strings.Join(s.Domains, ","); got != w.domains {
				t.Errorf("domains = %q, want %q", got, w.domains)
			}
		})
	}
}

// TestWaitingSinceQuorumLost: a group that ran waits again from the moment
// it lost its quorum, not from its creation.
func TestWaitingSinceQuorumLost(t *testing.T) {
	for _, f := range fixtures() {
		if f.name != "preempted" {
			continue
		}
		s := Summarize(f.in, now)
		if s.WaitingSince == nil || !s.WaitingSince.Time.Equal(at(118.5)) {
			t.Errorf("waiting since %v, want %v (the Unknown phase after the preemption)", s.WaitingSince, at(118.5))
		}
		return
	}
	t.Fatal("fixture preempted is missing")
}

func TestShort(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string
	}{{
		name: "cosched prefilter rejection with preemption note",
		msg:  "0/6 nodes are available: PodGroup ns/g cannot fit as a whole: 3/4 members fit (1 placed, 2 more fit of 3 needed); member needs cpu 2, best node has 1. PodGroup ns/g was turned away before filtering; preemption cannot help: no.",
		want: "3/4 fit; member needs cpu 2, best node has 1",
	}, {
		name: "GangRejected note",
		msg:  "2/3 members fit (0 placed, 2 more fit of 3 needed); member needs cpu 1, best node has 500m; released 2 waiting member(s)",
		want: "2/3 fit; member needs cpu 1, best node has 500m",
	}, {
		name: "backoff carries the reason",
		msg:  "0/2 nodes are available: PodGroup ns/g is backing off for 4.2s after it was rejected: timed out after 30s waiting for quorum with 2 member(s) reserved.",
		want: "timed out after 30s waiting for quorum with 2 member(s) reserved",
	}, {
		name: "rejected at Permit",
		msg:  "PodGroup ns/g was rejected as a whole: member ns/g-1 failed after reserving node n1",
		want: "member ns/g-1 failed after reserving node n1",
	}, {
		name: "quorum message of another group is left alone",
		msg:  "0/2 nodes are available: waiting for quorum: 2/3 pods of PodGroup ns/other exist.",
		want: "waiting for quorum: 2/3 pods of PodGroup ns/other exist",
	}, {
		name: "kube-scheduler filter histogram",
		msg:  "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
		want: "1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector",
	}, {
		name: "decimals are not sentence ends",
		msg:  "minResources needs cpu 2.5, the cluster has 1.5 free",
		want: "minResources needs cpu 2.5, the cluster has 1.5 free",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Short(tc.msg, "ns", "g"); got != tc.want {
				t.Errorf("Short(%q) = %q, want %q", tc.msg, got, tc.want)
			}
		})
	}
}

func TestNaturalCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"w-2", "w-10", -1},
		{"w-10", "w-2", 1},
		{"w-02", "w-2", 0},
		{"a", "b", -1},
		{"worker", "worker-0", -1},
		{"", "", 0},
	} {
		if got := naturalCompare(tc.a, tc.b); got != tc.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestWaitingForPreemptedPods: members nominated by their group's
// preemption count as placed, and the reason says what they wait for
// (victims going), not that they bind.
func TestWaitingForPreemptedPods(t *testing.T) {
	pg := newGroup("ns", "high", 2, 0)
	pods := []*v1.Pod{nominated(member(pg, "high-0", 1), "node-0"), nominated(member(pg, "high-1", 1), "node-1")}
	note := "0/3 nodes are available: PodGroup ns/high waits for 2 preempted pod(s) to terminate; its members hold their nominated nodes."
	events := []eventsv1.Event{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "high-1.failed", CreationTimestamp: mt(5)},
		EventTime:  metav1.NewMicroTime(at(5)),
		Regarding:  v1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "high-1"},
		Reason:     "FailedScheduling", Note: note, Type: v1.EventTypeWarning,
	}}
	s := Summarize(Input{Group: pg, Pods: pods, Events: events}, now)
	if s.Placed != 2 || s.Bound != 0 {
		t.Errorf("placed/bound = %d/%d, want 2/0", s.Placed, s.Bound)
	}
	if want := "2/2 placed, waiting for preempted pods to go"; s.Reason != want || s.Message != note {
		t.Errorf("reason %q (message %q), want %q (message %q)", s.Reason, s.Message, want, note)
	}
}
