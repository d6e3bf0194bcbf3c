package explain

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// TableOptions shape the get table.
type TableOptions struct {
	// WithNamespace adds the NAMESPACE column (-A).
	WithNamespace bool
	// Wide adds REJECTIONS, DOMAIN and SCHEDULER (-o wide).
	Wide bool
}

// newTabWriter aligns columns the way kubectl does.
func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
}

// PrintTable writes one line per group.
func PrintTable(w io.Writer, list []Summary, now time.Time, opts TableOptions) error {
	tw := newTabWriter(w)
	var head []string
	if opts.WithNamespace {
		head = append(head, "NAMESPACE")
	}
	head = append(head, "NAME", "PHASE", "MIN", "BOUND", "PLACED", "PENDING", "AGE", "WAITING")
	if opts.Wide {
		head = append(head, "REJECTIONS", "DOMAIN", "SCHEDULER")
	}
	head = append(head, "REASON")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, s := range list {
		var row []string
		if opts.WithNamespace {
			row = append(row, s.Namespace)
		}
		row = append(row, s.Name, orNone(s.Phase),
			minMemberColumn(s), fmt.Sprint(s.Bound), fmt.Sprint(s.Placed), fmt.Sprint(s.Pending),
			age(s.Created.Time, now), waiting(s, now))
		if opts.Wide {
			row = append(row, fmt.Sprint(s.Rejections), domainColumn(s), orDash(strings.Join(s.Schedulers, ",")))
		}
		row = append(row, orDash(s.Reason))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func waiting(s Summary, now time.Time) string {
	if s.WaitingSince == nil {
		return "-"
	}
	return age(s.WaitingSince.Time, now)
}

func domainColumn(s Summary) string {
	switch {
	case s.TopologyKey == "":
		return "-"
	case len(s.Domains) == 0:
		return s.TopologyKey + "=<none>"
	default:
		return s.TopologyKey + "=" + strings.Join(s.Domains, ",")
	}
}

// PrintDetail writes the describe view of a group.
func PrintDetail(w io.Writer, d Detail, now time.Time) error {
	tw := newTabWriter(w)
	field := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", name, fmt.Sprintf(format, args...))
	}
	field("Name", "%s", d.Name)
	field("Namespace", "%s", d.Namespace)
	field("Phase", "%s", orNone(d.Phase))
	field("Min Member", "%s", minMemberColumn(d.Summary))
	if d.ScheduleTimeoutSeconds != nil {
		field("Schedule Timeout", "%ds", *d.ScheduleTimeoutSeconds)
	} else {
		field("Schedule Timeout", "<scheduler default>")
	}
	if len(d.MinResources) > 0 {
		field("Min Resources", "%s", formatResources(d.MinResources))
	}
	field("Members", "%d pods: %d bound, %d placed, %d pending", d.Members, d.Bound, d.Placed, d.Pending)
	field("Scheduler", "%s", orNone(strings.Join(d.Schedulers, ", ")))
	field("Created", "%s ago (%s)", age(d.Created.Time, now), d.Created.UTC().Format(time.RFC3339))
	if d.WaitingSince != nil {
		field("Waiting", "for %s (since %s)", age(d.WaitingSince.Time, now), d.WaitingSince.UTC().Format(time.RFC3339))
	} else {
		field("Waiting", "no: %d/%d members bound", d.Bound, d.MinMember)
	}
	field("Rejections", "%d", d.Rejections)
	if d.Reason != "" {
		field("Reason", "%s", d.Reason)
		if d.Message != "" && d.Message != d.Reason {
			field("  Message", "%s", d.Message)
		}
		from := d.ReasonFrom
		if d.ReasonTime != nil {
			from += ", " + age(d.ReasonTime.Time, now) + " ago"
		}
		field("  From", "%s", from)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Placement:")
	tw = newTabWriter(w)
	if d.Placement.TopologyKey == "" {
		fmt.Fprintf(tw, "  %s\n", d.Placement.Note)
	} else {
		fmt.Fprintf(tw, "  Topology Key:\t%s (%s)\n", d.Placement.TopologyKey, d.Placement.KeyFrom)
		for _, dom := range d.Placement.Domains {
			fmt.Fprintf(tw, "  Domain:\t%s=%s (nodes %s)\n", d.Placement.TopologyKey, dom.Value, strings.Join(dom.Nodes, ", "))
		}
		if len(d.Placement.Domains) > 1 {
			fmt.Fprintf(tw, "  Note:\tthe placed members span %d domains\n", len(d.Placement.Domains))
		}
		if d.Placement.Note != "" {
			fmt.Fprintf(tw, "  Domain:\t<none>: %s\n", d.Placement.Note)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Member Pods:")
	tw = newTabWriter(w)
	if len(d.MemberPods) == 0 {
		fmt.Fprintln(tw, "  <none>")
	} else {
		fmt.Fprintln(tw, "  NAME\tSTATE\tNODE\tPHASE\tAGE\tREASON")
		for _, m := range d.MemberPods {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.State, orNone(m.Node), orNone(m.Phase), age(m.Created.Time, now), orDash(m.Reason))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	for _, section := range []struct {
		title   string
		entries []Entry
	}{{"Timeline", d.Timeline}, {"Preemptions", d.Preemptions}} {
		fmt.Fprintf(w, "%s:\n", section.title)
		tw = newTabWriter(w)
		if len(section.entries) == 0 {
			fmt.Fprintln(tw, "  <none>")
		} else {
			fmt.Fprintln(tw, "  AGE\tWHAT\tOBJECT\tDETAIL")
			for _, e := range section.entries {
				when := age(e.Time.Time, now)
				if e.Count > 1 && e.Last != nil {
					when = fmt.Sprintf("%s (x%d over %s)", age(e.Last.Time, now), e.Count, age(e.Time.Time, e.Last.Time))
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", when, e.What, orDash(e.Object), e.Detail)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// age is how long before now t was, as kubectl prints ages.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// minMemberColumn is "-" for a PodGroup that does not exist.
func minMemberColumn(s Summary) string {
	if s.Phase == PhaseMissing {
		return "-"
	}
	return fmt.Sprint(s.MinMember)
}
