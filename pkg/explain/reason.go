package explain

import (
	"regexp"
	"strings"
)

var (
	// kube-scheduler's FitError: "0/6 nodes are available: <PreFilter
	// message>. <PostFilter message>".
	nodesAvailable = regexp.MustCompile(`^\d+/\d+ nodes are available: `)
	// cosched's packing check: "3/4 members fit (1 placed, 2 more fit of 3
	// needed)" says "3/4 fit" in short.
	membersFit = regexp.MustCompile(`(\d+)/(\d+) members fit \(\d+ placed, \d+ more fit of \d+ needed\)`)
	// What a rejection note adds after the reason.
	released = regexp.MustCompile(`; released \d+ waiting member\(s\)$`)
	// A backoff message carries the reason that started it.
	backingOff = regexp.MustCompile(`^is backing off for [^ ]+ after it was rejected: `)
)

// Short returns the gist of a scheduler's message about a member or the
// group ns/name: the reason in numbers, without the scheduler's framing
// ("0/6 nodes are available: PodGroup ns/name cannot fit as a whole: ...")
// and without what it says about preemption.
func Short(msg, ns, name string) string {
	s := strings.TrimSpace(msg)
	s = nodesAvailable.ReplaceAllString(s, "")
	if preFilter, _, ok := strings.Cut(s, ". "); ok {
		// The PostFilter part (preemption) follows the first sentence.
		s = preFilter
	}
	s = strings.TrimSuffix(s, ".")
	prefix := "PodGroup " + ns + "/" + name
	if rest, ok := strings.CutPrefix(s, prefix); ok {
		rest = strings.TrimLeft(rest, " :")
		for _, framing := range []string{"cannot fit as a whole: ", "was rejected as a whole: "} {
			rest = strings.TrimPrefix(rest, framing)
		}
		rest = backingOff.ReplaceAllString(rest, "")
		s = rest
	}
	s = released.ReplaceAllString(s, "")
	s = membersFit.ReplaceAllString(s, "$1/$2 fit")
	return s
}
