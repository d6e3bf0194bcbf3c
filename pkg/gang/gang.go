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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/clock"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	schedv1alpha1informers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions/scheduling/v1alpha1"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/capacity"
	"github.com/cosched/cosched/pkg/podgroup"
	"github.com/cosched/cosched/pkg/preemption"
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

// New builds the plugin: it decodes its args, indexes the scheduler's pod
// informer by group and joins the scheduler's shared PodGroup informer. It
// starts nothing: the PodGroup informer is registered with the scheduler's
// informer factory, which the scheduler starts and syncs before it schedules,
// and the status writer starts once that has happened.
func New(ctx context.Context, obj runtime.Object, handle fwk.Handle) (fwk.Plugin, error) {
	args, err := config.Decode(obj, field.NewPath("pluginConfig").Key(Name).Child("args"))
	if err != nil {
		return nil, err
	}
	shared, err := sharedFor(ctx, handle)
	if err != nil {
		return nil, err
	}
	// One status writer per scheduler, so every profile must ask for the
	// same one.
	if err := shared.agreeOnStatus(handle, args); err != nil {
		return nil, err
	}
	if *args.ManagePodGroupStatus {
		if err := shared.startStatusWriter(ctx, handle, args); err != nil {
			return nil, err
		}
	}
	pl, err := buildPlugin(ctx, handle, args, shared.informer.Lister(), shared.groups, shared.members)
	if err != nil {
		return nil, err
	}
	// Every profile learns whether the one watcher could start.
	shared.watcher.Do(func() { shared.watchErr = pl.watch(shared.informer.Informer()) })
	if shared.watchErr != nil {
		return nil, fmt.Errorf("watching pods, nodes and PodGroups for the group memory: %w", shared.watchErr)
	}
	return pl, nil
}

// schedulerShared is what every profile of one scheduler shares, however
// many profiles enable the plugins: one PodGroup informer, one group memory
// (the queue order reads what the gang plugin records) and one status
// writer.
type schedulerShared struct {
	client       versioned.Interface
	informer     schedv1alpha1informers.PodGroupInformer
	groups       *groupTracker
	members      *memberIndex
	watcher      sync.Once
	watchErr     error
	statusWriter sync.Once
	statusErr    error

	mu sync.Mutex
	// status is the status-writer args of the first profile, which every
	// other profile must repeat.
	status *statusArgs
}

// statusArgs are the plugin args that configure the one status writer.
type statusArgs struct {
	profile        string
	manage         bool
	leaseNamespace string
}

// agreeOnStatus records the first profile's status-writer args and refuses
// a profile whose args differ: the writer is one per scheduler, so a
// second profile's args would otherwise be ignored without a word.
func (s *schedulerShared) agreeOnStatus(handle fwk.Handle, args *config.CoschedGangArgs) error {
	mine := statusArgs{profile: profileName(handle), manage: *args.ManagePodGroupStatus, leaseNamespace: args.StatusLeaseNamespace}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == nil {
		s.status = &mine
		return nil
	}
	first := *s.status
	path := field.NewPath("pluginConfig").Key(Name).Child("args")
	switch {
	case mine.manage != first.manage:
		return field.Invalid(path.Child("managePodGroupStatus"), mine.manage, fmt.Sprintf(
			"profile %q sets %v, profile %q %v: the PodGroup status writer is one per scheduler, so every profile must set the same", mine.profile, mine.manage, first.profile, first.manage))
	case mine.manage && mine.leaseNamespace != first.leaseNamespace:
		return field.Invalid(path.Child("statusLeaseNamespace"), mine.leaseNamespace, fmt.Sprintf(
			"profile %q sets %q, profile %q %q: the PodGroup status writer is one per scheduler, so every profile must set the same", mine.profile, mine.leaseNamespace, first.profile, first.leaseNamespace))
	}
	return nil
}

// profileName names the profile a handle belongs to, for error messages.
func profileName(handle fwk.Handle) string {
	if p, ok := handle.(interface{ ProfileName() string }); ok {
		return p.ProfileName()
	}
	return "?"
}

func (s *schedulerShared) startStatusWriter(ctx context.Context, handle fwk.Handle, args *config.CoschedGangArgs) error {
	s.statusWriter.Do(func() {
		s.statusErr = startStatusWriter(ctx, handle, s.client, s.informer, args)
	})
	return s.statusErr
}

var (
	sharedMu sync.Mutex
	// shared is keyed by the scheduler's informer factory, which every
	// profile's handle returns (a context is not always comparable); an
	// entry goes when its scheduler stops.
	shared = map[informers.SharedInformerFactory]*schedulerShared{}
)

func sharedFor(ctx context.Context, handle fwk.Handle) (*schedulerShared, error) {
	key := handle.SharedInformerFactory()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if s, ok := shared[key]; ok {
		return s, nil
	}
	client, err := podgroup.NewClient(handle.KubeConfig())
	if err != nil {
		return nil, fmt.Errorf("building the PodGroup client: %w", err)
	}
	// The scheduler's factory starts the PodGroup informer with its own
	// and waits for all of them before the first scheduling cycle.
	pgInformer := podGroupInformer{key.InformerFor(&schedv1alpha1.PodGroup{}, func(_ kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return schedv1alpha1informers.NewPodGroupInformer(client, metav1.NamespaceAll, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	})}
	go warnIfPodGroupsDoNotList(ctx, pgInformer.Informer())
	s := &schedulerShared{client: client, informer: pgInformer, groups: newGroupTracker(), members: newMemberIndex()}
	reportWhileRunning(ctx, s.groups)
	// CoschedPreemption reads PodGroups here instead of from the API server.
	unshare := preemption.SharePodGroupLister(key, pgInformer.Lister())
	shared[key] = s
	go func() {
		<-ctx.Done()
		unshare()
		sharedMu.Lock()
		delete(shared, key)
		sharedMu.Unlock()
	}()
	return s, nil
}

// podGroupInformer is a PodGroup informer of the scheduler's factory, as the
// generated PodGroupInformer interface the status writer takes.
type podGroupInformer struct{ informer cache.SharedIndexInformer }

func (i podGroupInformer) Informer() cache.SharedIndexInformer { return i.informer }
func (i podGroupInformer) Lister() schedlisters.PodGroupLister {
	return schedlisters.NewPodGroupLister(i.informer.GetIndexer())
}

// syncedAfterStart waits until informer has synced, which happens only after
// the scheduler started its informer factory, and reports whether it did.
// It gives up when ctx ends or, if patience is positive, that long after the
// informer started (not before: a scheduler may wait long for its lease).
func syncedAfterStart(ctx context.Context, informer cache.SharedIndexInformer, patience time.Duration) bool {
	started, _ := informer.(interface{ HasStarted() bool })
	var startedAt time.Time
	_ = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		if informer.HasSynced() {
			return true, nil
		}
		if startedAt.IsZero() && (started == nil || started.HasStarted()) {
			startedAt = time.Now()
		}
		return patience > 0 && !startedAt.IsZero() && time.Since(startedAt) > patience, nil
	})
	return informer.HasSynced()
}

// warnIfPodGroupsDoNotList says in the log what is likely wrong when the
// PodGroups do not list: the scheduler schedules nothing until they do.
func warnIfPodGroupsDoNotList(ctx context.Context, informer cache.SharedIndexInformer) {
	if !syncedAfterStart(ctx, informer, informerSyncTimeout) && ctx.Err() == nil {
		klog.FromContext(ctx).Error(nil, "PodGroups (scheduling.x-k8s.io/v1alpha1) do not list, and the scheduler schedules nothing until they do: is the CRD installed (manifests/crds) and may the scheduler list and watch podgroups?", "waited", informerSyncTimeout)
	}
}

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

// rejectWaiting turns away the given members that wait at Permit.
func (pl *CoschedGang) rejectWaiting(uids []types.UID, msg string) int {
	n := 0
	for _, uid := range uids {
		if wp := pl.handle.GetWaitingPod(uid); wp != nil {
			if wp.Reject(Name, msg) {
				n++
			}
		}
	}
	return n
}

// rejectGroup fails the group's attempt: every member holding a reservation
// is rejected and releases it, the group backs off, and the first report of
// a failure becomes a metric, a log line and an event on the PodGroup.
//
// related (the member whose cycle failed, or the node that went away; nil
// if none) is the event's related object. client-go folds events with the
// same regarding and related objects into one series that keeps the first
// note, and a stuck PodGroup's resourceVersion does not change: without it,
// a new cause (room freed, a node labeled) would never reach kubectl
// describe. A member's resourceVersion moves each time the scheduler writes
// a new reason on it.
func (pl *CoschedGang) rejectGroup(key string, pg *schedv1alpha1.PodGroup, related runtime.Object, reason, cause string, retryAfterBackoff bool) {
	backoff := pl.backoff()
	if reason == "no_fit" || reason == "members_disagree" {
		// Nothing placed, nothing held: retrying soon helps only if the
		// cluster changed, so repeats back off longer.
		if _, _, backingOff := pl.groups.backingOff(key, pl.clock.Now()); !backingOff {
			backoff = pl.groups.escalatedBackoff(key, backoff)
		}
	}
	r := pl.groups.reject(key, cause, pl.clock.Now(), backoff)
	if r.report && reason == "no_fit" {
		pl.groups.markNoFit(key)
	}
	released := pl.rejectWaiting(r.released, fmt.Sprintf("PodGroup %s was rejected as a whole: %s", key, cause))
	pl.recordHeld(key, r.heldFor)
	if retryAfterBackoff {
		pl.activateAfterBackoff(key)
	}
	defer pl.forgetIfGone(key)
	if !r.report {
		return
	}
	groupRejections.WithLabelValues(reason).Inc()
	if r.waited > 0 {
		permitWaitDuration.WithLabelValues("rejected").Observe(r.waited.Seconds())
	}
	klog.FromContext(pl.ctx).V(2).Info("Rejected pod group", "podGroup", key, "reason", reason, "cause", cause, "releasedMembers", released)
	if pg != nil {
		note := cause
		if released > 0 {
			note = fmt.Sprintf("%s; released %d waiting member(s)", cause, released)
		}
		pl.handle.EventRecorder().Eventf(pg, related, v1.EventTypeWarning, "GangRejected", "Scheduling", podgroup.TruncateNote(note))
	}
}

// recordHeld adds up what rejected members held while they waited: room
// that other pods could not use and that the group gave back unused.
func (pl *CoschedGang) recordHeld(key string, heldFor map[types.UID]time.Duration) {
	if len(heldFor) == 0 {
		return
	}
	for _, pod := range podgroup.Members(pl.pods, key) {
		if d, ok := heldFor[pod.UID]; ok {
			req := capacity.RequestOf(pod)
			heldCPUSeconds.Add(float64(req.MilliCPU) / 1000 * d.Seconds())
			heldMemoryByteSeconds.Add(float64(req.Memory) * d.Seconds())
		}
	}
}

// activateAfterBackoff requeues the group's pending members once its backoff
// ends. Members turned away during the backoff, or rejected at Permit, would
// otherwise sit in the unschedulable pool until some later cluster event,
// although the cluster may already have changed (the event that woke them
// came during the backoff) or the failure (a timeout) may not repeat.
func (pl *CoschedGang) activateAfterBackoff(key string) {
	delay, ok := pl.groups.scheduleActivation(key, pl.clock.Now())
	if !ok {
		return
	}
	pl.clock.AfterFunc(delay, func() {
		pl.groups.activationDone(key)
		if pl.ctx.Err() == nil {
			pl.activatePending(klog.FromContext(pl.ctx), key)
		}
	})
}
