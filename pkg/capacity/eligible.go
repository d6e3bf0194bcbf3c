package capacity

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Eligible is the Source a group's fit check packs into: the nodes whose
// free room the group's pending members may use, those their required node
// affinity selects and whose NoSchedule/NoExecute taints they tolerate. Members of a group usually
// share a template; when they do not agree, every node is kept, which keeps
// the check optimistic rather than wrong. Nodes are looked at only as the
// check reaches them.
type Eligible struct {
	logger      klog.Logger
	nodes       []fwk.NodeInfo
	all         bool
	required    nodeaffinity.RequiredNodeAffinity
	tolerations []v1.Toleration
	// nominated, when set, lists the pods nominated to a node; those of at
	// least priority from other groups hold their room.
	nominated func(nodeName string) []*v1.Pod
	group     string
	priority  int32
}

// NewEligible serves the members pending in one group the nodes in nodes;
// nominated, if not nil, lists the pods nominated to a node.
func NewEligible(logger klog.Logger, pending []*v1.Pod, nodes []fwk.NodeInfo, nominated func(nodeName string) []*v1.Pod) *Eligible {
	e := &Eligible{logger: logger, nodes: nodes, all: len(pending) == 0, nominated: nominated}
	if e.all {
		return e
	}
	e.group = podgroup.KeyOf(pending[0])
	e.priority = corev1helpers.PodPriority(pending[0])
	for _, p := range pending[1:] {
		e.priority = min(e.priority, corev1helpers.PodPriority(p))
	}
	rep := pending[0]
	for _, p := range pending[1:] {
		if !equality.Semantic.DeepEqual(p.Spec.NodeSelector, rep.Spec.NodeSelector) ||
			!equality.Semantic.DeepEqual(nodeAffinityOf(p), nodeAffinityOf(rep)) ||
			!equality.Semantic.DeepEqual(p.Spec.Tolerations, rep.Spec.Tolerations) {
			e.all = true
			return e
		}
	}
	e.required = nodeaffinity.GetRequiredNodeAffinity(rep)
	e.tolerations = rep.Spec.Tolerations
	return e
}

func (e *Eligible) Len() int { return len(e.nodes) }

func (e *Eligible) At(i int) (Node, bool) {
	ni := e.nodes[i]
	if e.all {
		return e.freeOn(ni), true
	}
	node := ni.Node()
	if node == nil {
		return Node{}, false
	}
	if ok, _ := e.required.Match(node); !ok {
		return Node{}, false
	}
	if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(e.logger, node.Spec.Taints, e.tolerations, hardTaint, false); untolerated {
		return Node{}, false
	}
	return e.freeOn(ni), true
}

// freeOn is ni's free room less what pods nominated to it hold.
func (e *Eligible) freeOn(ni fwk.NodeInfo) Node {
	free := NodeOf(ni)
	if e.nominated == nil || ni.Node() == nil {
		return free
	}
	for _, p := range e.nominated(ni.Node().Name) {
		if corev1helpers.PodPriority(p) < e.priority || (e.group != "" && podgroup.KeyOf(p) == e.group) || onNode(ni, p) {
			continue
		}
		free.Free = free.Free.Sub(RequestOf(p))
		free.Pods--
	}
	return free
}

// onNode reports whether ni already counts p (a member waiting at Permit is
// both assumed on its node and nominated to it).
func onNode(ni fwk.NodeInfo, p *v1.Pod) bool {
	for _, pi := range ni.GetPods() {
		if pi.GetPod().UID == p.UID {
			return true
		}
	}
	return false
}

func hardTaint(t *v1.Taint) bool {
	return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
}

func nodeAffinityOf(p *v1.Pod) *v1.NodeAffinity {
	if p.Spec.Affinity == nil {
		return nil
	}
	return p.Spec.Affinity.NodeAffinity
}
