// Package gang implements CoschedGang, cosched's all-or-nothing scheduling of
// scheduler-plugins PodGroups.
//
// A group's pods enter the active queue only once a quorum (minMember) of
// them exists (PreEnqueue); they are sorted so a group's members are tried
// back to back (QueueSort); a group that cannot fit as a whole is turned away
// before any member reserves anything (PreFilter); members that found a node
// wait at Permit until the quorum holds reservations, and are then let go
// together; any failure rejects every waiting member, releasing what they
// held (PostFilter, Unreserve), and the group backs off before it retries.
package gang

import (
	"context"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/clock"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/pkg/preemption"
)

// Name is the plugin's name in the registry and in scheduler configs.
// Upstream's in-tree plugin already owns "GangScheduling".
const Name = "CoschedGang"

// informerSyncTimeout is how long PodGroups may take to list once the
// scheduler started its informers before cosched says, in its log, what is
// likely wrong (the CRD or the RBAC rule missing). The scheduler waits for
// every informer to sync before it schedules anything.
const informerSyncTimeout = 30 * time.Second

// CoschedGang is the gang scheduling plugin.
type CoschedGang struct {
	// ctx lives as long as the scheduler; timers and informer handlers use
	// it, never a scheduling cycle's context, which ends with the cycle.
	ctx       context.Context
	handle    fwk.Handle
	args      *config.CoschedGangArgs
	podGroups schedlisters.PodGroupLister
	// pods is the scheduler's own pod cache, indexed by group. It holds
	// non-terminal pods only, which is what quorum counts.
	pods cache.Indexer
	// groups is the group memory, shared by every profile of the
	// scheduler: each group's members, phase and reservations.
	groups *groupTracker
	hints  hintMemo
	clock  clock.WithDelayedExecution
	// guarding holds the groups the gang guard will check soon.
	guarding sync.Map
}

var (
	_ fwk.PreEnqueuePlugin  = &CoschedGang{}
	_ fwk.PreFilterPlugin   = &CoschedGang{}
	_ fwk.FilterPlugin      = &CoschedGang{}
	_ fwk.PostFilterPlugin  = &CoschedGang{}
	_ fwk.ReservePlugin     = &CoschedGang{}
	_ fwk.PermitPlugin      = &CoschedGang{}
	_ fwk.EnqueueExtensions = &CoschedGang{}
	_ fwk.SignPlugin        = &CoschedGang{}
)

// Name returns the plugin's name.
func (pl *CoschedGang) Name() string { return Name }

// SignPod keeps the scheduler's opportunistic batching on for plain pods and
// gangs without a topology: for them this plugin never makes one node more
// or less feasible than another, so it adds nothing to the signature. Members
// of atomically placed groups each follow their own plan, so no cached
// result of another pod may stand in for theirs. The queue signs a pod when
// it is added or updated, not when its PodGroup changes, so a member whose
// PodGroup is not known yet is not signed either: it may turn out to be
// planned. (Filter enforces the plan whatever the signature says.)
func (pl *CoschedGang) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	key, pg := pl.podGroupOf(pod)
	if key != "" && pg == nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, "the member's PodGroup is not known yet")
	}
	if pl.topologyKeyOf(pg, pod) != "" {
		return nil, fwk.NewStatus(fwk.Unschedulable, "members of atomically placed groups follow their own plan")
	}
	return nil, nil
}

func (pl *CoschedGang) defaultTimeout() time.Duration {
	return time.Duration(*pl.args.PermitWaitingTimeSeconds) * time.Second
}

func (pl *CoschedGang) backoff() time.Duration {
	return time.Duration(*pl.args.PodGroupBackoffSeconds) * time.Second
}

// podGroupOf returns pod's PodGroup, or nil with "" key for pods outside any
// group, or nil with the key when the PodGroup does not exist.
func (pl *CoschedGang) podGroupOf(pod *v1.Pod) (string, *schedv1alpha1.PodGroup) {
	name := podgroup.NameOf(pod)
	if name == "" {
		return "", nil
	}
	pg, err := pl.podGroups.PodGroups(pod.Namespace).Get(name)
	if err != nil {
		return podgroup.Key(pod.Namespace, name), nil
	}
	return podgroup.Key(pod.Namespace, name), pg
}

// memberCounts summarises a group's pods as the scheduler sees them.
type memberCounts struct {
	// live are members not being deleted.
	live int
	// placed are members bound to a node or holding a reservation.
	placed int
	// bound are members the pod cache shows on a node.
	bound int
	// pending are live members with no node and no reservation.
	pending []*v1.Pod
}

// countMembers counts key's members; self is counted even if the pod cache
// has not caught up with it yet. The counts come from the group memory;
// wantPending (once per attempt, for the fit check or the plan) counts from
// the pod cache instead (attemptMembers) and returns the pending members.
// Reservations whose pods the cache no longer lists, or shows being
// deleted, do not count: the framework unreserves them shortly.
func (pl *CoschedGang) countMembers(key string, self *v1.Pod, wantPending bool) memberCounts {
	var selfUID types.UID
	if self != nil {
		selfUID = self.UID
	}
	exact := pl.unsyncedMembers(key)
	if wantPending && exact == nil {
		exact = snapshotMembers(pl.attemptMembers(key))
	}
	m := pl.groups.members(key, exact, selfUID, wantPending)
	c := memberCounts{live: m.live, placed: m.placed, bound: m.bound, pending: m.unplaced}
	if self != nil && !m.selfSeen && phaseOf(self) != memberDeleting {
		c.live++
		if wantPending && phaseOf(self) == memberPending && !m.selfReserved {
			c.pending = append(c.pending, self)
		}
	}
	return c
}

// unsyncedMembers is nil once the pod handlers have seen the informer's
// first list; before that (the first cycles after a start) it is key's
// members as the pod cache lists them, which the group memory may lack.
func (pl *CoschedGang) unsyncedMembers(key string) *memberSet {
	if pl.groups.ready() {
		return nil
	}
	return snapshotMembers(podgroup.Members(pl.pods, key))
}

// attemptMembers is key's members as the pod cache lists them now: what an
// attempt's start reads (the fit check, the plan, the members' agreement,
// preemption), outside the group memory's lock, so that it never misses a
// member whose event the handlers have not recorded yet. Once per attempt
// or per failure, never per member.
func (pl *CoschedGang) attemptMembers(key string) []*v1.Pod {
	return podgroup.Members(pl.pods, key)
}

// memberPods returns key's member pods as the group memory holds them.
func (pl *CoschedGang) memberPods(key string) []*v1.Pod {
	if pl.groups.ready() {
		return pl.groups.memberPods(key)
	}
	return podgroup.Members(pl.pods, key)
}

// confirmedMembers reads the placed members of key (and self) from the pod
// cache itself, by name, where the group memory may trail it by a handler's
// delay: a member deleted a moment ago must never complete a quorum.
func (pl *CoschedGang) confirmedMembers(key string, self *v1.Pod) *memberSet {
	if exact := pl.unsyncedMembers(key); exact != nil {
		return exact
	}
	confirmed := &memberSet{}
	for _, pod := range append(pl.groups.placedPods(key), self) {
		obj, ok, err := pl.pods.GetByKey(pod.Namespace + "/" + pod.Name)
		if cached, isPod := obj.(*v1.Pod); err == nil && ok && isPod && cached.UID == pod.UID {
			confirmed.set(cached)
		}
	}
	return confirmed
}

// activatePending moves the group's members that have no place yet into the
// active queue.
func (pl *CoschedGang) activatePending(logger klog.Logger, key string) {
	pods := map[string]*v1.Pod{}
	for _, pod := range pl.groups.members(key, pl.unsyncedMembers(key), "", true).unplaced {
		pods[pod.Namespace+"/"+pod.Name] = pod
	}
	if len(pods) > 0 {
		pl.handle.Activate(logger, pods)
	}
}

// evictor takes victims for this plugin, with events on their PodGroups.
func (pl *CoschedGang) evictor() *preemption.Evictor {
	return &preemption.Evictor{
		Client:      pl.handle.ClientSet(),
		Recorder:    pl.handle.EventRecorder(),
		Waiting:     func(uid types.UID) fwk.WaitingPod { return pl.handle.GetWaitingPod(uid) },
		GroupObject: pl.podGroupObject,
		PluginName:  Name,
	}
}

// nominatedPodsOn returns the pods nominated to a node, whole: the queue
// knows the pods it holds, and for a pod it does not hold at the moment
// (one in its scheduling cycle) returns only its name, so the pod cache
// fills in the rest.
func (pl *CoschedGang) nominatedPodsOn(nodeName string) []*v1.Pod {
	infos := pl.handle.NominatedPodsForNode(nodeName)
	out := make([]*v1.Pod, 0, len(infos))
	for _, pi := range infos {
		p := pi.GetPod()
		if len(p.Spec.Containers) == 0 {
			obj, ok, err := pl.pods.GetByKey(p.Namespace + "/" + p.Name)
			cached, isPod := obj.(*v1.Pod)
			if err != nil || !ok || !isPod || cached.UID != p.UID {
				continue
			}
			p = cached
		}
		out = append(out, p)
	}
	return out
}

// hintMemo remembers the quorum verdict for the event being fanned out: the
// queue asks the same question for every rejected member of a group, and
// counting the group once per event instead of once per member keeps a
// 1000-pod group's arrival quadratic rather than cubic.
type hintMemo struct {
	mu     sync.Mutex
	event  any
	key    string
	quorum bool
}

func (m *hintMemo) get(event any, key string) (bool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.event == event && m.key == key {
		return m.quorum, true
	}
	return false, false
}

func (m *hintMemo) set(event any, key string, quorum bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.event, m.key, m.quorum = event, key, quorum
}

// topologyKeyOf returns the domain label the group must share when the
// atomic strategy applies to it, else "".
func (pl *CoschedGang) topologyKeyOf(pg *schedv1alpha1.PodGroup, member *v1.Pod) string {
	if pl.args.PlacementStrategy != config.PlacementAtomic || pg == nil {
		return ""
	}
	return podgroup.TopologyKey(pg, member)
}

func (pl *CoschedGang) podGroupObject(key string) runtime.Object {
	ns, name, ok := strings.Cut(key, "/")
	if !ok {
		return nil
	}
	pg, err := pl.podGroups.PodGroups(ns).Get(name)
	if err != nil {
		return nil
	}
	return pg
}
