package preemption

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/tools/cache"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultpreemption"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	upstream "k8s.io/kubernetes/pkg/scheduler/framework/preemption"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Name is the plugin's name in the registry and in scheduler configs.
const Name = "CoschedPreemption"

// CoschedPreemption is kube-scheduler's DefaultPreemption for pods that are
// not members of a pending gang, with one change: it never splits a gang.
// On each node it first looks for victims among plain pods; only if that
// cannot make room may it take gang members, and then it takes every placed
// member of their gangs (only when all of them have lower priority than the
// preemptor). A candidate that would break a PodDisruptionBudget is dropped
// rather than preferred less, as the default does.
//
// It takes DefaultPreemption's args (minCandidateNodesPercentage,
// minCandidateNodesAbsolute) with the same defaults and validation.
type CoschedPreemption struct {
	*defaultpreemption.DefaultPreemption
	handle   fwk.Handle
	pods     cache.Indexer
	pgClient versioned.Interface
	// podGroups, when set, returns the scheduler's shared PodGroup lister.
	podGroups func(fwk.Handle) schedlisters.PodGroupLister
	// reported remembers (preemptor, gang) pairs already given an event.
	reported sync.Map
}

var (
	_ fwk.PostFilterPlugin  = &CoschedPreemption{}
	_ fwk.PreEnqueuePlugin  = &CoschedPreemption{}
	_ fwk.EnqueueExtensions = &CoschedPreemption{}
	_ upstream.Interface    = &CoschedPreemption{}
)

// New builds the plugin on top of upstream's preemption evaluator; it reads
// PodGroups from the API server. NewSharing's plugins read them from memory.
func New(ctx context.Context, obj runtime.Object, handle fwk.Handle) (fwk.Plugin, error) {
	return build(ctx, obj, handle, nil)
}

// NewSharing returns a factory of the plugin whose instances read PodGroups
// through podGroups(handle), the lister their scheduler's gang plugins
// share, and ask the API server only when it returns nil (no gang plugin
// runs in that scheduler).
func NewSharing(podGroups func(fwk.Handle) schedlisters.PodGroupLister) func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) {
	return func(ctx context.Context, obj runtime.Object, handle fwk.Handle) (fwk.Plugin, error) {
		return build(ctx, obj, handle, podGroups)
	}
}

func build(ctx context.Context, obj runtime.Object, handle fwk.Handle, podGroups func(fwk.Handle) schedlisters.PodGroupLister) (fwk.Plugin, error) {
	args, err := decodeArgs(obj)
	if err != nil {
		return nil, err
	}
	inner, err := defaultpreemption.New(ctx, args, handle, feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate))
	if err != nil {
		return nil, err
	}
	podInformer := handle.SharedInformerFactory().Core().V1().Pods().Informer()
	if err := podgroup.AddIndex(podInformer); err != nil {
		return nil, fmt.Errorf("indexing pods by group: %w", err)
	}
	pgClient, err := podgroup.NewClient(handle.KubeConfig())
	if err != nil {
		return nil, fmt.Errorf("building the PodGroup client: %w", err)
	}
	pl := &CoschedPreemption{DefaultPreemption: inner, handle: handle, pods: podInformer.GetIndexer(), pgClient: pgClient, podGroups: podGroups}
	// The evaluator calls back into pl, so victims are chosen by the
	// gang-aware SelectVictimsOnNode below.
	inner.Evaluator = upstream.NewEvaluator(Name, handle, pl, inner.Executor)
	// Upstream's eviction records an event on each victim; a gang's PodGroup
	// gets one too, saying who took the gang and why.
	evict := inner.Executor.PreemptPod
	inner.Executor.PreemptPod = func(ctx context.Context, c upstream.Candidate, preemptor upstream.ExecutorPreemptor, victim *v1.Pod, pluginName string) (bool, error) {
		inMemory, err := evict(ctx, c, preemptor, victim, pluginName)
		if err == nil {
			pl.recordGangPreempted(ctx, c, preemptor, victim)
		}
		return inMemory, err
	}
	return pl, nil
}

// recordGangPreempted puts one event on a victim gang's PodGroup per
// preemption.
func (pl *CoschedPreemption) recordGangPreempted(ctx context.Context, c upstream.Candidate, preemptor upstream.ExecutorPreemptor, victim *v1.Pod) {
	key := podgroup.KeyOf(victim)
	if key == "" {
		return
	}
	once := string(preemptor.UID()) + "/" + key
	if _, seen := pl.reported.LoadOrStore(once, true); seen {
		return
	}
	// Each victim of one preemption passes here; a minute covers them all.
	time.AfterFunc(time.Minute, func() { pl.reported.Delete(once) })
	pg, err := pl.podGroup(ctx, victim.Namespace, podgroup.NameOf(victim))
	if err != nil {
		return
	}
	members := 0
	for _, p := range c.Victims().Pods {
		if podgroup.KeyOf(p) == key {
			members++
		}
	}
	pl.handle.EventRecorder().Eventf(pg, preemptor.Obj(), v1.EventTypeWarning, "GangPreempted", "Preempting", podgroup.TruncateNote(fmt.Sprintf(
		"all %d placed member(s) preempted as a unit by %s %s/%s (priority %d) to make room on node %s",
		members, preemptor.Type(), preemptor.GetNamespace(), preemptor.GetName(), preemptor.Priority(), c.Name())))
}

// podGroup returns a PodGroup from the scheduler's shared PodGroup informer;
// only a scheduler without cosched's other plugins, which share none, asks
// the API server.
func (pl *CoschedPreemption) podGroup(ctx context.Context, namespace, name string) (*schedv1alpha1.PodGroup, error) {
	if pl.podGroups != nil {
		if l := pl.podGroups(pl.handle); l != nil {
			return l.PodGroups(namespace).Get(name)
		}
	}
	return pl.pgClient.SchedulingV1alpha1().PodGroups(namespace).Get(ctx, name, metav1.GetOptions{})
}

// decodeArgs reads DefaultPreemption's versioned args strictly, defaults and
// validates them.
func decodeArgs(obj runtime.Object) (*schedconfig.DefaultPreemptionArgs, error) {
	path := field.NewPath("pluginConfig").Key(Name).Child("args")
	in := configv1.DefaultPreemptionArgs{}
	switch o := obj.(type) {
	case nil:
	case *runtime.Unknown:
		if len(o.Raw) > 0 {
			if err := yaml.UnmarshalStrict(o.Raw, &in); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", path, err)
			}
		}
	case *schedconfig.DefaultPreemptionArgs:
		out := *o
		return &out, validation.ValidateDefaultPreemptionArgs(path, &out)
	default:
		return nil, fmt.Errorf("%s: want args of type *runtime.Unknown, got %T", path, obj)
	}
	out := &schedconfig.DefaultPreemptionArgs{MinCandidateNodesPercentage: 10, MinCandidateNodesAbsolute: 100}
	if in.MinCandidateNodesPercentage != nil {
		out.MinCandidateNodesPercentage = *in.MinCandidateNodesPercentage
	}
	if in.MinCandidateNodesAbsolute != nil {
		out.MinCandidateNodesAbsolute = *in.MinCandidateNodesAbsolute
	}
	if err := validation.ValidateDefaultPreemptionArgs(path, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Name returns the plugin's name.
func (pl *CoschedPreemption) Name() string { return Name }

// PostFilter preempts for a pod that found no node.
func (pl *CoschedPreemption) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, m fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	schedmetrics.PreemptionAttempts.Inc()
	result, status := pl.Evaluator.Preempt(ctx, state, pod, m)
	if msg := status.Message(); msg != "" {
		return result, fwk.NewStatus(status.Code(), "preemption: "+msg)
	}
	return result, status
}

// SelectVictimsOnNode chooses the victims on one node without splitting a
// gang: plain pods first; gang members only when plain pods are not enough,
// and then their whole gangs. In that second pass each gang's pods on the
// node are one victim, so upstream's reprieve keeps or takes them together
// and prefers plain pods (it ranks a group above a pod at equal priority).
func (pl *CoschedPreemption) SelectVictimsOnNode(ctx context.Context, state fwk.CycleState, preemptor *v1.Pod,
	nodeInfo fwk.NodeInfo, all []*upstream.DomainVictim, pdbs []*policyv1.PodDisruptionBudget) ([]*v1.Pod, int, *fwk.Status) {
	if len(all) == 0 {
		return nil, 0, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "No preemption victims found for incoming pod")
	}
	priority := corev1helpers.PodPriority(preemptor)
	own := podgroup.KeyOf(preemptor)
	var plain []*upstream.DomainVictim
	gangPods := map[string][]fwk.PodInfo{}
	for _, v := range all {
		inGang := false
		for _, pi := range v.Pods() {
			if key := podgroup.KeyOf(pi.GetPod()); key != "" {
				gangPods[key] = append(gangPods[key], pi)
				inGang = true
			}
		}
		if !inGang {
			plain = append(plain, v)
		}
	}
	if len(plain) > 0 {
		pods, violations, status := pl.DefaultPreemption.SelectVictimsOnNode(ctx, state.Clone(), preemptor, nodeInfo.Snapshot(), plain, pdbs)
		if status.IsSuccess() && violations == 0 {
			return pods, 0, status
		}
	}
	// Gangs that may be taken whole become one victim each.
	victims := plain
	gangs := map[string]*Unit{}
	for _, key := range slices.Sorted(maps.Keys(gangPods)) {
		if key == own {
			continue
		}
		u := pl.placedGang(key)
		if u == nil || !Eligible(u, priority) {
			continue
		}
		v, err := upstream.NewVictim(gangPods[key], u.Priority, fwk.PodGroupKeyType)
		if err != nil {
			continue
		}
		gangs[key] = u
		victims = append(victims, &upstream.DomainVictim{Victim: v})
	}
	if len(gangs) == 0 {
		return nil, 0, fwk.NewStatus(fwk.Unschedulable, "no victims on this node make room without breaking a PodDisruptionBudget or a gang")
	}
	pods, violations, status := pl.DefaultPreemption.SelectVictimsOnNode(ctx, state, preemptor, nodeInfo, victims, pdbs)
	if !status.IsSuccess() {
		return nil, 0, status
	}
	if violations > 0 {
		return nil, 0, fwk.NewStatus(fwk.Unschedulable, "room on this node would break a PodDisruptionBudget")
	}
	// Gang members chosen here stand for every placed member of their gang.
	var units []*Unit
	seen := map[string]bool{}
	for _, p := range pods {
		key := podgroup.KeyOf(p)
		if key == "" {
			units = append(units, UnitsOf([]*v1.Pod{p})...)
			continue
		}
		if !seen[key] {
			seen[key] = true
			units = append(units, gangs[key])
		}
	}
	if v := NewBudgets(pdbs).Violation(units); v != "" {
		return nil, 0, fwk.NewStatus(fwk.Unschedulable, v)
	}
	var out []*v1.Pod
	for _, u := range units {
		out = append(out, u.Pods...)
	}
	klog.FromContext(ctx).V(4).Info("Victims on node include whole gangs", "node", nodeInfo.Node().Name, "victims", len(out))
	return out, 0, nil
}

// placedGang returns every placed member of a gang as one unit: members
// bound to any node, waiting at Permit, or in their binding cycle. nil when
// the gang has none.
func (pl *CoschedPreemption) placedGang(key string) *Unit {
	var pods []*v1.Pod
	for _, m := range podgroup.Members(pl.pods, key) {
		if m.Spec.NodeName != "" || pl.handle.GetWaitingPod(m.UID) != nil || pl.handle.GetPodInPreBind(m.UID) != nil {
			pods = append(pods, m)
		}
	}
	if len(pods) == 0 {
		return nil
	}
	return UnitsOf(pods)[0]
}
