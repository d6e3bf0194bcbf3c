// Package explain says, from API objects alone, where a scheduler-plugins
// PodGroup stands and why: how many members are bound, placed and pending
// against minMember, since when the group waits, the last reason the
// scheduler gave in numbers, the topology domain of an atomic group, its
// timeline and its preemptions.
//
// It reads what any user with read access sees: the PodGroup (status, and
// the annotations cosched writes), its member pods (node, nominated node,
// PodScheduled condition) and the events on both. It is pure: the caller
// fetches the objects (kubectl-cosched does, read-only) and passes the time.
package explain

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Event reasons cosched writes on PodGroups and pods (pkg/gang,
// pkg/preemption); kube-scheduler's own are Scheduled and FailedScheduling.
const (
	reasonRejected         = "GangRejected"
	reasonMembersDisagree  = "MembersDisagree"
	reasonPreempting       = "Preempting"
	reasonPreempted        = "Preempted"
	reasonGangPreempted    = "GangPreempted"
	reasonReleased         = "Released"
	reasonGangReleased     = "GangReleased"
	reasonGangBindFailed   = "GangBindFailed"
	reasonScheduled        = "Scheduled"
	reasonFailedScheduling = "FailedScheduling"
)

// Member states.
const (
	StateBound       = "Bound"
	StatePlaced      = "Placed"
	StatePending     = "Pending"
	StateGated       = "Gated"
	StateTerminating = "Terminating"
)

// Input is everything known about one group.
type Input struct {
	Group *schedv1alpha1.PodGroup
	// Missing: Group does not exist, and stands in (by name) for the
	// PodGroup that Pods name.
	Missing bool
	// Pods may hold any pods; only the group's members count.
	Pods []*v1.Pod
	// Events may hold any events of the group's namespace; only those
	// regarding the group or its members, or naming the group as the
	// related object, count.
	Events []eventsv1.Event
	// Nodes by name, for the topology domain; nil when unknown.
	Nodes map[string]*v1.Node
}

// Summary is one line of `kubectl cosched get`.
type Summary struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Phase is status.phase; Pending while nothing wrote it.
	Phase     string `json:"phase"`
	MinMember int32  `json:"minMember"`
	// Members counts the member pods that are not being deleted.
	Members int `json:"members"`
	// Bound members have a node (spec.nodeName).
	Bound int `json:"bound"`
	// Placed members are bound or hold a node the scheduler nominated
	// (waiting at Permit for the rest of the group, or for the victims of a
	// preemption to go). Placed includes Bound, as in cosched's messages.
	Placed int `json:"placed"`
	// Pending members have no node yet: Members - Placed.
	Pending int         `json:"pending"`
	Created metav1.Time `json:"created"`
	// WaitingSince is set while fewer than minMember members are bound:
	// since the group was created, or since it last lost its quorum.
	WaitingSince *metav1.Time `json:"waitingSince,omitempty"`
	// Reason is the last reason in short form ("3/4 fit; member needs cpu
	// 2, best node has 1"); Message is its full text and ReasonFrom where it
	// was read.
	Reason     string       `json:"reason,omitempty"`
	Message    string       `json:"message,omitempty"`
	ReasonFrom string       `json:"reasonFrom,omitempty"`
	ReasonTime *metav1.Time `json:"reasonTime,omitempty"`
	// Rejections counts whole-group rejections (GangRejected events).
	Rejections int32 `json:"rejections"`
	// Schedulers are the members' schedulerNames.
	Schedulers []string `json:"schedulers,omitempty"`
	// TopologyKey is the node label the group must share ("" when none):
	// such groups are placed atomically into one domain.
	TopologyKey string `json:"topologyKey,omitempty"`
	// Domains are the values of TopologyKey on the nodes of the placed
	// members (one, unless something split the group).
	Domains []string `json:"domains,omitempty"`
}

// Detail is `kubectl cosched describe`.
type Detail struct {
	Summary
	ScheduleTimeoutSeconds *int32          `json:"scheduleTimeoutSeconds,omitempty"`
	MinResources           v1.ResourceList `json:"minResources,omitempty"`
	MemberPods             []Member        `json:"memberPods"`
	Placement              Placement       `json:"placement"`
	Timeline               []Entry         `json:"timeline"`
	Preemptions            []Entry         `json:"preemptions"`
}

// Member is one member pod.
type Member struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Node is the bound node, or the nominated one of a placed member.
	Node    string      `json:"node,omitempty"`
	Phase   string      `json:"phase"`
	Created metav1.Time `json:"created"`
	// Reason is why a member without a node has none (its PodScheduled
	// condition), in short form.
	Reason string `json:"reason,omitempty"`
}

// Placement says where an atomic group is placed.
type Placement struct {
	// TopologyKey is "" for a group that need not share a domain.
	TopologyKey string `json:"topologyKey,omitempty"`
	// KeyFrom says where the key comes from.
	KeyFrom string `json:"keyFrom,omitempty"`
	// Domains are the key's values on the placed members' nodes, with the
	// nodes in each.
	Domains []Domain `json:"domains,omitempty"`
	// Note explains an empty Domains.
	Note string `json:"note,omitempty"`
}

// Domain is one topology domain the group occupies.
type Domain struct {
	Value string   `json:"value"`
	Nodes []string `json:"nodes"`
}

// Entry is one point of a timeline.
type Entry struct {
	Time metav1.Time `json:"time"`
	// Last and Count are set for a repeated event.
	Last  *metav1.Time `json:"last,omitempty"`
	Count int32        `json:"count,omitempty"`
	What  string       `json:"what"`
	// Object names what the entry is about when it is not the group.
	Object string `json:"object,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// group is the analysis shared by Summarize and Describe.
type group struct {
	in       Input
	pg       *schedv1alpha1.PodGroup
	members  []*v1.Pod // live and terminating, by name
	live     []*v1.Pod
	byName   map[string]*v1.Pod
	pgEvents []eventsv1.Event // regarding the group
	podEvts  []eventsv1.Event // regarding a member
	related  []eventsv1.Event // naming the group as related object
}

func analyze(in Input) *group {
	g := &group{in: in, pg: in.Group, byName: map[string]*v1.Pod{}}
	for _, p := range in.Pods {
		if p.Namespace != g.pg.Namespace || p.Labels[podgroup.Label] != g.pg.Name {
			continue
		}
		g.members = append(g.members, p)
		g.byName[p.Name] = p
		if p.DeletionTimestamp == nil {
			g.live = append(g.live, p)
		}
	}
	slices.SortFunc(g.members, func(a, b *v1.Pod) int { return naturalCompare(a.Name, b.Name) })
	slices.SortFunc(g.live, func(a, b *v1.Pod) int { return naturalCompare(a.Name, b.Name) })
	for _, e := range in.Events {
		switch {
		case g.isGroup(e.Regarding):
			g.pgEvents = append(g.pgEvents, e)
		case e.Regarding.Kind == "Pod" && e.Regarding.Namespace == g.pg.Namespace && g.isMember(e.Regarding):
			g.podEvts = append(g.podEvts, e)
		case e.Related != nil && g.isGroup(*e.Related):
			g.related = append(g.related, e)
		}
	}
	for _, evs := range [][]eventsv1.Event{g.pgEvents, g.podEvts, g.related} {
		slices.SortStableFunc(evs, func(a, b eventsv1.Event) int { return firstTime(a).Compare(firstTime(b)) })
	}
	return g
}

func (g *group) isGroup(ref v1.ObjectReference) bool {
	return ref.Kind == "PodGroup" && ref.Namespace == g.pg.Namespace && ref.Name == g.pg.Name &&
		(ref.UID == "" || g.pg.UID == "" || ref.UID == g.pg.UID)
}

// isMember matches by name only: a member recreated under its name (a
// StatefulSet's, or a Job's indexed pod) keeps the history of the pod it
// replaces, such as its preemption.
func (g *group) isMember(ref v1.ObjectReference) bool {
	_, ok := g.byName[ref.Name]
	return ok
}

// Summarize returns the get line of a group at time now.
func Summarize(in Input, now time.Time) Summary {
	return analyze(in).summary(now)
}

// phaseOf is the group's status.phase. The status writer leaves a new
// group's phase empty, which means Pending.
func phaseOf(pg *schedv1alpha1.PodGroup) string {
	if pg.Status.Phase == "" {
		return string(schedv1alpha1.PodGroupPending)
	}
	return string(pg.Status.Phase)
}

// PhaseMissing is the phase shown for a PodGroup that pods name but that
// does not exist.
const PhaseMissing = "Missing"

func (g *group) summary(now time.Time) Summary {
	phase := phaseOf(g.pg)
	if g.in.Missing {
		phase = PhaseMissing
	}
	s := Summary{
		Namespace: g.pg.Namespace,
		Name:      g.pg.Name,
		Phase:     phase,
		MinMember: g.minMember(),
		Members:   len(g.live),
		Created:   g.pg.CreationTimestamp,
	}
	schedulers := map[string]bool{}
	for _, p := range g.live {
		schedulers[p.Spec.SchedulerName] = true
		switch stateOf(p) {
		case StateBound:
			s.Bound++
			s.Placed++
		case StatePlaced:
			s.Placed++
		}
	}
	s.Pending = s.Members - s.Placed
	for name := range schedulers {
		s.Schedulers = append(s.Schedulers, name)
	}
	slices.Sort(s.Schedulers)
	for _, e := range g.pgEvents {
		if e.Reason == reasonRejected {
			s.Rejections += count(e)
		}
	}
	s.TopologyKey, _ = g.topologyKey()
	for _, d := range g.domains() {
		s.Domains = append(s.Domains, d.Value)
	}
	if g.in.Missing || s.Bound < int(s.MinMember) {
		since := g.pg.CreationTimestamp
		// A group that ran and lost its quorum waits again from then on.
		for _, e := range g.pgEvents {
			switch e.Reason {
			case reasonGangPreempted, reasonGangReleased, string(schedv1alpha1.PodGroupUnknown):
				if t := lastTime(e); t.After(since.Time) {
					since = metav1.NewTime(t)
				}
			}
		}
		s.WaitingSince = &since
		g.reason(&s)
	}
	return s
}

// reason fills in why a group that is not bound waits.
func (g *group) reason(s *Summary) {
	quorum := int(s.MinMember)
	switch {
	case g.in.Missing:
		s.Reason = "PodGroup does not exist"
		s.Message = fmt.Sprintf("%d pod(s) name PodGroup %s/%s, which does not exist (deleted by its owner, or not created yet): "+
			"the scheduler leaves them Pending until it exists; create it, or delete the pods or remove their %s label",
			s.Members, s.Namespace, s.Name, podgroup.Label)
		s.ReasonFrom = "pods"
		return
	case s.Members < quorum:
		s.Reason = fmt.Sprintf("waiting for pods: %d/%d exist", s.Members, quorum)
		s.Message = fmt.Sprintf("%d/%d member pods exist; the scheduler tries the group once minMember pods exist", s.Members, quorum)
		s.ReasonFrom = "pods"
		return
	case s.Placed >= quorum:
		s.Reason = fmt.Sprintf("binding: %d/%d placed, %d bound", s.Placed, quorum, s.Bound)
		s.Message = s.Reason
		s.ReasonFrom = "pods"
		if e := g.latestMemberFailure(); e != nil && strings.Contains(e.Note, preemptedPodsNote) {
			// Nominated by the group's preemption, not waiting at Permit.
			s.Reason = fmt.Sprintf("%d/%d placed, waiting for preempted pods to go", s.Placed, quorum)
			s.Message = e.Note
			s.ReasonFrom = fmt.Sprintf("%s event on %s", e.Reason, objectName(e.Regarding))
		}
		return
	}
	// The latest word of the scheduler: a whole-group rejection on the
	// PodGroup or a member's failed attempt.
	var latest, rejected *eventsv1.Event
	for i := range g.pgEvents {
		if e := &g.pgEvents[i]; e.Reason == reasonRejected && (rejected == nil || !lastTime(*e).Before(lastTime(*rejected))) {
			rejected = e
		}
	}
	latest = rejected
	if e := g.latestMemberFailure(); e != nil && (latest == nil || lastTime(*e).After(lastTime(*latest))) {
		latest = e
	}
	if rejected != nil && latest != rejected && Short(latest.Note, s.Namespace, s.Name) == Short(rejected.Note, s.Namespace, s.Name) {
		// A member's attempt that only repeats the rejection (a backoff):
		// the rejection on the PodGroup says it plainly.
		latest = rejected
	}
	if latest != nil {
		s.Message = latest.Note
		s.Reason = Short(latest.Note, s.Namespace, s.Name)
		s.ReasonFrom = fmt.Sprintf("%s event on %s", latest.Reason, objectName(latest.Regarding))
		t := metav1.NewTime(lastTime(*latest))
		s.ReasonTime = &t
	} else {
		// Events expire (an hour by default); the condition stays.
		for _, p := range g.live {
			if c := scheduledCondition(p); c != nil && c.Status == v1.ConditionFalse && c.Message != "" {
				s.Message = c.Message
				s.Reason = Short(c.Message, s.Namespace, s.Name)
				s.ReasonFrom = "PodScheduled condition of pod " + p.Name
				t := c.LastTransitionTime
				s.ReasonTime = &t
				break
			}
		}
	}
	if s.Placed > 0 {
		// Members wait at Permit for the rest right now.
		waiting := fmt.Sprintf("%d/%d placed, waiting for the rest", s.Placed, quorum)
		if s.Reason == "" {
			s.Reason, s.Message, s.ReasonFrom = waiting, waiting, "pods"
		} else {
			s.Reason = waiting + "; last: " + s.Reason
		}
	}
	if s.Reason == "" {
		s.Reason = "no scheduling attempt recorded"
		s.Message = fmt.Sprintf("no event or PodScheduled condition on any member: is the scheduler %s running?", strings.Join(s.Schedulers, ", "))
		s.ReasonFrom = "pods"
	}
}

// preemptedPodsNote is how cosched says a member waits for the victims of
// its group's preemption.
const preemptedPodsNote = "preempted pod(s) to terminate"

// latestMemberFailure is the newest FailedScheduling event of a live member
// that is not bound, or nil.
func (g *group) latestMemberFailure() *eventsv1.Event {
	var latest *eventsv1.Event
	for i := range g.podEvts {
		if e := &g.podEvts[i]; e.Reason == reasonFailedScheduling && (latest == nil || lastTime(*e).After(lastTime(*latest))) {
			if p := g.byName[e.Regarding.Name]; p != nil && p.DeletionTimestamp == nil && stateOf(p) != StateBound {
				latest = e
			}
		}
	}
	return latest
}

// stateOf classifies a member.
func stateOf(p *v1.Pod) string {
	switch {
	case p.DeletionTimestamp != nil:
		return StateTerminating
	case p.Spec.NodeName != "":
		return StateBound
	case p.Status.NominatedNodeName != "":
		return StatePlaced
	case len(p.Spec.SchedulingGates) > 0:
		return StateGated
	default:
		return StatePending
	}
}

func scheduledCondition(p *v1.Pod) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == v1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// topologyKey returns the label the group must share and where it is named.
func (g *group) topologyKey() (string, string) {
	var rep *v1.Pod
	if len(g.live) > 0 {
		rep = g.live[0]
	}
	key := podgroup.TopologyKey(g.pg, rep)
	if key == "" {
		return "", ""
	}
	if _, ok := g.pg.Annotations[podgroup.TopologyKeyAnnotation]; ok {
		return key, "annotation " + podgroup.TopologyKeyAnnotation + " on the PodGroup"
	}
	return key, "required podAffinity of the members to their own group"
}

// domains returns the topology domains of the placed members' nodes.
func (g *group) domains() []Domain {
	key, _ := g.topologyKey()
	if key == "" || g.in.Nodes == nil {
		return nil
	}
	nodes := map[string][]string{}
	for _, p := range g.live {
		name := nodeOf(p)
		if name == "" {
			continue
		}
		value := "<unknown>"
		if n, ok := g.in.Nodes[name]; ok {
			if v, ok := n.Labels[key]; ok {
				value = v
			} else {
				value = "<unlabeled>"
			}
		}
		if !slices.Contains(nodes[value], name) {
			nodes[value] = append(nodes[value], name)
		}
	}
	var out []Domain
	for value, names := range nodes {
		slices.SortFunc(names, naturalCompare)
		out = append(out, Domain{Value: value, Nodes: names})
	}
	slices.SortFunc(out, func(a, b Domain) int { return naturalCompare(a.Value, b.Value) })
	return out
}

// nodeOf is a member's bound node, else its nominated node.
func nodeOf(p *v1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	return p.Status.NominatedNodeName
}

// Describe returns the full account of a group at time now.
func Describe(in Input, now time.Time) Detail {
	g := analyze(in)
	d := Detail{
		Summary:                g.summary(now),
		ScheduleTimeoutSeconds: g.pg.Spec.ScheduleTimeoutSeconds,
		MinResources:           g.pg.Spec.MinResources,
		MemberPods:             []Member{},
		Timeline:               []Entry{},
		Preemptions:            []Entry{},
	}
	for _, p := range g.members {
		m := Member{Name: p.Name, State: stateOf(p), Node: nodeOf(p), Phase: string(p.Status.Phase), Created: p.CreationTimestamp}
		if m.Node == "" {
			if c := scheduledCondition(p); c != nil && c.Status == v1.ConditionFalse {
				m.Reason = Short(c.Message, g.pg.Namespace, g.pg.Name)
			}
		}
		d.MemberPods = append(d.MemberPods, m)
	}
	d.Placement = g.placement()
	d.Timeline = g.timeline()
	d.Preemptions = g.preemptions()
	return d
}

func (g *group) placement() Placement {
	key, from := g.topologyKey()
	if key == "" {
		return Placement{Note: "no shared topology domain: members go to any nodes that fit"}
	}
	p := Placement{TopologyKey: key, KeyFrom: from, Domains: g.domains()}
	switch {
	case len(p.Domains) > 0:
	case g.in.Nodes == nil:
		p.Note = "nodes could not be read: the domain is unknown"
	default:
		p.Note = "no member is placed yet"
		// A group that preempted names the domain it made room in.
		for i := len(g.pgEvents) - 1; i >= 0; i-- {
			e := g.pgEvents[i]
			if e.Reason != reasonPreempting {
				continue
			}
			if at := strings.Index(e.Note, " in "+key+"="); at >= 0 {
				value := e.Note[at+len(" in "+key+"="):]
				if end := strings.IndexAny(value, " ;,"); end >= 0 {
					value = value[:end]
				}
				p.Note = fmt.Sprintf("no member is placed yet; the group preempted to make room in %s=%s", key, value)
			}
			break
		}
	}
	return p
}

// minMember is the group's quorum; 0 for a PodGroup that does not exist.
func (g *group) minMember() int32 {
	if g.in.Missing {
		return 0
	}
	return int32(podgroup.MinMember(g.pg))
}

func (g *group) timeline() []Entry {
	var out []Entry
	if g.in.Missing {
		out = append(out, Entry{Time: g.pg.CreationTimestamp, What: "FirstPod", Detail: "the oldest pod naming this PodGroup, which does not exist"})
	} else {
		spec := fmt.Sprintf("minMember %d", podgroup.MinMember(g.pg))
		if t := g.pg.Spec.ScheduleTimeoutSeconds; t != nil {
			spec += fmt.Sprintf(", scheduleTimeoutSeconds %d", *t)
		}
		if len(g.pg.Spec.MinResources) > 0 {
			spec += ", minResources " + formatResources(g.pg.Spec.MinResources)
		}
		out = append(out, Entry{Time: g.pg.CreationTimestamp, What: "Created", Detail: spec})
	}
	if t := g.pg.Status.ScheduleStartTime; !t.IsZero() {
		out = append(out, Entry{Time: t, What: "MembersExist", Detail: "minMember member pods exist (status.scheduleStartTime)"})
	}

	// The first attempt: the earliest verdict of a scheduler on the group
	// or a member.
	var first *Entry
	consider := func(t time.Time, object, detail string) {
		if t.IsZero() || (first != nil && !t.Before(first.Time.Time)) {
			return
		}
		first = &Entry{Time: metav1.NewTime(t), What: "FirstAttempt", Object: object, Detail: detail}
	}
	for _, e := range g.pgEvents {
		switch e.Reason {
		case reasonRejected, reasonMembersDisagree, reasonPreempting:
			consider(firstTime(e), "", e.Reason+": "+Short(e.Note, g.pg.Namespace, g.pg.Name))
		}
	}
	for _, e := range g.podEvts {
		switch e.Reason {
		case reasonFailedScheduling:
			consider(firstTime(e), "pod "+e.Regarding.Name, "not placed: "+Short(e.Note, g.pg.Namespace, g.pg.Name))
		case reasonScheduled:
			consider(firstTime(e), "pod "+e.Regarding.Name, "bound")
		}
	}
	for _, p := range g.live {
		if c := scheduledCondition(p); c != nil && !c.LastTransitionTime.IsZero() {
			detail := "bound"
			if c.Status != v1.ConditionTrue {
				detail = "not placed: " + Short(c.Message, g.pg.Namespace, g.pg.Name)
			}
			consider(c.LastTransitionTime.Time, "pod "+p.Name, detail)
		}
	}
	if first != nil {
		out = append(out, *first)
	}

	for _, e := range g.pgEvents {
		switch e.Reason {
		case reasonPreempting, reasonGangPreempted:
			// In Preemptions.
			continue
		case reasonRejected:
			out = append(out, eventEntry(e, "Rejected", "", Short(e.Note, g.pg.Namespace, g.pg.Name)))
		default:
			// Phase transitions (Pending, Scheduling, Running, ...) and the
			// other words of the scheduler.
			out = append(out, eventEntry(e, e.Reason, "", e.Note))
		}
	}

	// Admission and binding, from the bind times of the members that hold
	// the quorum now.
	var binds []time.Time
	for _, p := range g.live {
		if t := g.boundAt(p); !t.IsZero() {
			binds = append(binds, t)
		}
	}
	slices.SortFunc(binds, func(a, b time.Time) int { return a.Compare(b) })
	quorum := podgroup.MinMember(g.pg)
	if len(binds) >= quorum {
		out = append(out, Entry{Time: metav1.NewTime(binds[0]), What: "Admitted",
			Detail: fmt.Sprintf("the quorum had places; the first of %d members bound", quorum)})
		out = append(out, Entry{Time: metav1.NewTime(binds[quorum-1]), What: "Bound",
			Detail: fmt.Sprintf("%d/%d members bound", quorum, quorum)})
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return a.Time.Compare(b.Time.Time) })
	return out
}

// boundAt is when a bound member was bound: its Scheduled event, else its
// PodScheduled condition.
func (g *group) boundAt(p *v1.Pod) time.Time {
	if p.Spec.NodeName == "" {
		return time.Time{}
	}
	var at time.Time
	for _, e := range g.podEvts {
		if e.Reason == reasonScheduled && e.Regarding.Name == p.Name {
			at = lastTime(e)
		}
	}
	if at.IsZero() {
		if c := scheduledCondition(p); c != nil && c.Status == v1.ConditionTrue {
			at = c.LastTransitionTime.Time
		}
	}
	return at
}

func (g *group) preemptions() []Entry {
	out := []Entry{}
	for _, e := range g.pgEvents {
		switch e.Reason {
		case reasonPreempting:
			out = append(out, eventEntry(e, "Preempting", "", e.Note))
		case reasonGangPreempted:
			out = append(out, eventEntry(e, "GangPreempted", "", e.Note))
		}
	}
	for _, e := range g.podEvts {
		switch e.Reason {
		case reasonPreempted, reasonReleased:
			out = append(out, eventEntry(e, e.Reason, "pod "+e.Regarding.Name, e.Note))
		}
	}
	// The pods this group took, named on their own events.
	for _, e := range g.related {
		if e.Reason == reasonPreempted {
			out = append(out, eventEntry(e, "Victim", objectName(e.Regarding), e.Note))
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return a.Time.Compare(b.Time.Time) })
	return out
}

func eventEntry(e eventsv1.Event, what, object, detail string) Entry {
	entry := Entry{Time: metav1.NewTime(firstTime(e)), What: what, Object: object, Detail: detail}
	if n := count(e); n > 1 {
		entry.Count = n
		last := metav1.NewTime(lastTime(e))
		entry.Last = &last
	}
	return entry
}

// firstTime is when an event was first seen, for events written through
// events.k8s.io (eventTime) and through core/v1 (firstTimestamp).
func firstTime(e eventsv1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedFirstTimestamp.IsZero():
		return e.DeprecatedFirstTimestamp.Time
	default:
		return e.CreationTimestamp.Time
	}
}

// lastTime is when an event was last seen.
func lastTime(e eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	default:
		return firstTime(e)
	}
}

// count is how often an event was seen.
func count(e eventsv1.Event) int32 {
	switch {
	case e.Series != nil && e.Series.Count > 0:
		return e.Series.Count
	case e.DeprecatedCount > 0:
		return e.DeprecatedCount
	default:
		return 1
	}
}

func objectName(ref v1.ObjectReference) string {
	kind := strings.ToLower(ref.Kind)
	if kind == "" {
		kind = "object"
	}
	return kind + " " + ref.Name
}

func formatResources(rl v1.ResourceList) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(rl)) {
		q := rl[name]
		parts = append(parts, string(name)+" "+q.String())
	}
	return strings.Join(parts, ", ")
}

// naturalCompare orders names with numbers by their value: w-2 before w-10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		ad, bd := isDigit(a[0]), isDigit(b[0])
		if ad && bd {
			i, j := digits(a), digits(b)
			na, nb := strings.TrimLeft(a[:i], "0"), strings.TrimLeft(b[:j], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[i:], b[j:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digits(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}
