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
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/clock"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/podgroup"
)

// Name is the plugin's name in the registry and in scheduler configs.
// Upstream's in-tree plugin already owns "GangScheduling".
const Name = "CoschedGang"

// maxPermitWait is the framework's cap on a Permit wait.
const maxPermitWait = 15 * time.Minute

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
	// members counts each group's pods as the pod cache shows them.
	members *memberIndex
	groups  *groupTracker
	hints   hintMemo
	clock   clock.WithDelayedExecution
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

// newPlugin wires the plugin to its informers; tests call it with fakes.
func newPlugin(ctx context.Context, handle fwk.Handle, args *config.CoschedGangArgs, pgLister schedlisters.PodGroupLister, pgInformer cache.SharedIndexInformer) (*CoschedGang, error) {
	groups := newGroupTracker()
	reportWhileRunning(ctx, groups)
	pl, err := buildPlugin(ctx, handle, args, pgLister, groups, newMemberIndex())
	if err != nil {
		return nil, err
	}
	return pl, pl.watch(pgInformer)
}

// buildPlugin makes a plugin instance over the given group memory.
func buildPlugin(ctx context.Context, handle fwk.Handle, args *config.CoschedGangArgs, pgLister schedlisters.PodGroupLister, groups *groupTracker, members *memberIndex) (*CoschedGang, error) {
	podInformer := handle.SharedInformerFactory().Core().V1().Pods().Informer()
	if err := podgroup.AddIndex(podInformer); err != nil {
		return nil, fmt.Errorf("indexing pods by group: %w", err)
	}
	registerMetrics()
	return &CoschedGang{
		ctx:       ctx,
		handle:    handle,
		args:      args,
		podGroups: pgLister,
		pods:      podInformer.GetIndexer(),
		members:   members,
		groups:    groups,
		clock:     clock.RealClock{},
	}, nil
}

// watch makes pl react to pod and PodGroup changes that end or release a
// group's attempt. One instance per scheduler watches: the reactions act on
// the shared group memory and the shared queue, so more would only repeat
// them.
func (pl *CoschedGang) watch(pgInformer cache.SharedIndexInformer) error {
	podInformer := pl.handle.SharedInformerFactory().Core().V1().Pods().Informer()
	reg, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onPodAdd,
		UpdateFunc: pl.onPodUpdate,
		DeleteFunc: pl.onPodDelete,
	})
	if err != nil {
		return err
	}
	pl.members.setSynced(reg.HasSynced)
	nodeInformer := pl.handle.SharedInformerFactory().Core().V1().Nodes().Informer()
	if _, err := nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: pl.onNodeUpdate, DeleteFunc: pl.onNodeDelete}); err != nil {
		return err
	}
	if pgInformer == nil {
		return nil
	}
	_, err = pgInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onPodGroupAdd,
		UpdateFunc: pl.onPodGroupUpdate,
		DeleteFunc: pl.onPodGroupDelete,
	})
	return err
}

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
// has not caught up with it yet.
//
// The counts come from the member index; only wantPending (once per
// attempt, for the fit check or the plan) lists the group's pods.
// Reservations whose pods the cache no longer lists, or shows being
// deleted, do not count: the framework unreserves them shortly.
func (pl *CoschedGang) countMembers(key string, self *v1.Pod, wantPending bool) memberCounts {
	var c memberCounts
	members := pl.membersOf(key)
	_, c.live, c.bound = members.counts(key)
	c.placed = c.bound + pl.groups.placedBeyondBound(key, members)
	selfUnseen := self != nil && self.DeletionTimestamp == nil && !members.has(key, self.UID)
	if selfUnseen {
		c.live++
	}
	if !wantPending {
		return c
	}
	reserved := pl.groups.reservedMembers(key)
	selfListed := self == nil
	for _, pod := range podgroup.Members(pl.pods, key) {
		if self != nil && pod.UID == self.UID {
			selfListed = true
		}
		if _, isReserved := reserved[pod.UID]; !isReserved && pod.DeletionTimestamp == nil && pod.Spec.NodeName == "" {
			c.pending = append(c.pending, pod)
		}
	}
	if !selfListed && self.DeletionTimestamp == nil && self.Spec.NodeName == "" {
		if _, isReserved := reserved[self.UID]; !isReserved {
			c.pending = append(c.pending, self)
		}
	}
	return c
}

// membersOf returns the member index to count key's members with: the shared
// one, or, until the handlers have seen the informer's first list (the first
// cycles after a start), one built from the pod cache for this group.
func (pl *CoschedGang) membersOf(key string) *memberIndex {
	if pl.members.ready() {
		return pl.members
	}
	return pl.exactMembers(key)
}

// exactMembers indexes key's members as the pod cache lists them now.
func (pl *CoschedGang) exactMembers(key string) *memberIndex {
	return snapshotIndex(key, podgroup.Members(pl.pods, key))
}

// activatePending moves the group's members that have no place yet into the
// active queue.
func (pl *CoschedGang) activatePending(logger klog.Logger, key string) {
	reserved := pl.groups.reservedMembers(key)
	pods := map[string]*v1.Pod{}
	for _, pod := range podgroup.Members(pl.pods, key) {
		if _, ok := reserved[pod.UID]; !ok && pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil {
			pods[pod.Namespace+"/"+pod.Name] = pod
		}
	}
	if len(pods) > 0 {
		pl.handle.Activate(logger, pods)
	}
}
