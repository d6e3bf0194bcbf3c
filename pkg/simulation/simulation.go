// Package simulation tries pods on nodes with the scheduling profile's own
// PreFilter and Filter plugins, without changing the scheduler's snapshot.
//
// A Simulator works on a view of the snapshot's nodes. The first change to a
// node copies it and every later change goes to that copy, so the
// scheduler's NodeInfos are only ever read. Each change (a pod removed, a
// member placed) is also told to the members' cycle states through the
// PreFilter AddPod/RemovePod extensions, as upstream preemption does, and
// logged: Revert undoes changes in reverse order, so a caller asking many
// questions pays for what each question changed rather than for copying
// every node and state per question.
//
// Gang planning (as pkg/placement's Simulator) and gang preemption's search
// (pkg/preemption) both ask their questions here.
package simulation

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// Framework is the part of the scheduler's framework a simulation runs.
type Framework interface {
	RunPreFilterPlugins(ctx context.Context, state fwk.CycleState, pod *v1.Pod) (*fwk.PreFilterResult, *fwk.Status, sets.Set[string])
	RunPreFilterExtensionAddPod(ctx context.Context, state fwk.CycleState, podToSchedule *v1.Pod, podInfoToAdd fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status
	RunPreFilterExtensionRemovePod(ctx context.Context, state fwk.CycleState, podToSchedule *v1.Pod, podInfoToRemove fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status
	RunFilterPluginsWithNominatedPods(ctx context.Context, state fwk.CycleState, pod *v1.Pod, info fwk.NodeInfo) *fwk.Status
}

// Simulator places members on, and removes pods from, a private view of
// nodes. Members and nodes are named by their index in the slices given to
// New. It is not safe for concurrent use.
type Simulator struct {
	ctx     context.Context
	fw      Framework
	members []*v1.Pod
	// placeable[m] is member m's PodInfo with its resources computed, made
	// on its first Place and copied for each later one.
	placeable []*framework.PodInfo
	shapes    []shape
	// memberShape[m] indexes shapes.
	memberShape []int
	// view[n] is the snapshot's node n until the first change to it, then
	// the simulator's own copy (copied[n]).
	view   []fwk.NodeInfo
	copied []bool
	byName map[string]int
	// changes is the undo log Revert walks back.
	changes []change
}

// change is one logged change: pod placed on, or removed from, node.
type change struct {
	node   int
	pod    fwk.PodInfo
	placed bool
}

// New runs the PreFilter plugins once per shape of members and starts a
// simulation of nodes as they are. nodes must all have a Node.
func New(ctx context.Context, fw Framework, members []*v1.Pod, nodes []fwk.NodeInfo) *Simulator {
	s := &Simulator{ctx: ctx, fw: fw, members: members, placeable: make([]*framework.PodInfo, len(members)), view: append([]fwk.NodeInfo(nil), nodes...),
		copied: make([]bool, len(nodes)), byName: make(map[string]int, len(nodes))}
	for i, ni := range nodes {
		s.byName[ni.Node().Name] = i
	}
	s.shapes, s.memberShape = shapesFor(ctx, fw, members)
	return s
}

// ShapeOf returns the shape of member m: members of one shape share one
// PreFilter run.
func (s *Simulator) ShapeOf(m int) int { return s.memberShape[m] }

// Unfit returns the first shape's member whose PreFilter plugins rejected
// it, and why; nil when every shape passed.
func (s *Simulator) Unfit() (*v1.Pod, string) {
	for _, sh := range s.shapes {
		if sh.failure != "" {
			return sh.pod, sh.failure
		}
	}
	return nil, ""
}

// Fits reports whether member m passes the Filter plugins on node n as the
// simulation has it, counting nominated pods as the scheduler's own Filter
// does: a plan onto room a nominated pod will take fails at once.
func (s *Simulator) Fits(m, n int) bool {
	sh := s.shapes[s.memberShape[m]]
	if sh.failure != "" {
		return false
	}
	ni := s.view[n]
	if !sh.allowed.AllNodes() && !sh.allowed.NodeNames.Has(ni.Node().Name) {
		return false
	}
	return s.fw.RunFilterPluginsWithNominatedPods(s.ctx, sh.state, sh.pod, ni).IsSuccess()
}

// Place puts member m on node n until Revert takes it off again.
func (s *Simulator) Place(m, n int) {
	ni := s.writable(n)
	pi := s.placed(m, ni.Node().Name)
	if pi == nil {
		return
	}
	ni.AddPodInfo(pi)
	s.tell(pi, ni, true)
	s.changes = append(s.changes, change{node: n, pod: pi, placed: true})
}

// placed returns member m as a pod bound to node. Only the node name
// differs between placements, so each is a shallow copy of one PodInfo
// whose affinity terms and resources are worked out once; nothing here
// writes to the pod.
func (s *Simulator) placed(m int, node string) fwk.PodInfo {
	tmpl := s.placeable[m]
	if tmpl == nil {
		var err error
		if tmpl, err = framework.NewPodInfo(s.members[m]); err != nil {
			return nil
		}
		tmpl.CalculateResource() // cached in tmpl, shared by its copies
		s.placeable[m] = tmpl
	}
	pod := *tmpl.Pod
	pod.Spec.NodeName = node
	pi := *tmpl
	pi.Pod = &pod
	return &pi
}

// Remove takes pod off its node until Revert puts it back. A pod on a node
// outside the view changes nothing; false means the pod is not on its node.
func (s *Simulator) Remove(pod *v1.Pod) bool {
	n, ok := s.byName[pod.Spec.NodeName]
	if !ok {
		return true
	}
	pi := podOn(s.view[n], pod)
	if pi == nil {
		return false
	}
	ni := s.writable(n)
	if err := ni.RemovePod(klog.FromContext(s.ctx), pod); err != nil {
		return false
	}
	s.tell(pi, ni, false)
	s.changes = append(s.changes, change{node: n, pod: pi})
	return true
}

// Checkpoint marks the simulation as it is now, for Revert.
func (s *Simulator) Checkpoint() int { return len(s.changes) }

// Revert undoes every change made since the checkpoint, latest first.
func (s *Simulator) Revert(checkpoint int) {
	logger := klog.FromContext(s.ctx)
	for i := len(s.changes) - 1; i >= checkpoint; i-- {
		c := s.changes[i]
		ni := s.view[c.node]
		if c.placed {
			// The pod was added to this very copy: removing it cannot fail.
			_ = ni.RemovePod(logger, c.pod.GetPod())
		} else {
			ni.AddPodInfo(c.pod)
		}
		s.tell(c.pod, ni, !c.placed)
	}
	s.changes = s.changes[:checkpoint]
}

// writable returns node n's own copy, making it on first use.
func (s *Simulator) writable(n int) fwk.NodeInfo {
	if !s.copied[n] {
		s.view[n] = s.view[n].Snapshot()
		s.copied[n] = true
	}
	return s.view[n]
}

// tell runs every usable shape's PreFilter extension for a pod added to or
// removed from ni. Their statuses are ignored, as before this package: a
// plugin that cannot follow leaves its state as PreFilter computed it.
func (s *Simulator) tell(pi fwk.PodInfo, ni fwk.NodeInfo, added bool) {
	for _, sh := range s.shapes {
		if sh.failure != "" {
			continue
		}
		if added {
			s.fw.RunPreFilterExtensionAddPod(s.ctx, sh.state, sh.pod, pi, ni)
		} else {
			s.fw.RunPreFilterExtensionRemovePod(s.ctx, sh.state, sh.pod, pi, ni)
		}
	}
}

func podOn(ni fwk.NodeInfo, pod *v1.Pod) fwk.PodInfo {
	for _, pi := range ni.GetPods() {
		if pi.GetPod().UID == pod.UID {
			return pi
		}
	}
	return nil
}
