package podgroupstatus

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	schedinformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions/scheduling/v1alpha1"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/podgroup"
)

const (
	// ScheduledMembersAnnotation on a PodGroup holds the number of its members
	// that are bound to a node. The status has no field for it.
	ScheduledMembersAnnotation = "cosched.dev/scheduled-members"

	// PodGroupIndex is the name of the pod informer index that maps
	// "<namespace>/<pod group name>" to the group's pods.
	PodGroupIndex = podgroup.IndexName

	// eventAction is the action reported in the events this controller emits.
	eventAction = "UpdatePodGroupStatus"

	// maxPodsInEvent bounds how many pod names an event note lists.
	maxPodsInEvent = 3

	// DefaultDebounce is how long a change waits before its PodGroup is
	// synced. The members of a group are created, bound and started within
	// moments of each other; one write for all of them costs the API server,
	// and the scheduler's PodGroup event handlers, a fraction of one per
	// member.
	DefaultDebounce = time.Second
)

// Controller writes the status of PodGroups from the pods that belong to them.
type Controller struct {
	pgClient versioned.Interface
	recorder events.EventRecorder
	clock    clock.PassiveClock
	logger   klog.Logger
	// debounce delays a sync after a change, so that the changes of a
	// group's members in that time make one write.
	debounce time.Duration

	pgLister    schedlisters.PodGroupLister
	pgSynced    cache.InformerSynced
	podIndexer  cache.Indexer
	podsSynced  cache.InformerSynced
	runningLock sync.Mutex // held while Run is active

	// queueLock guards queue. queue is nil while the controller is not
	// running (for example while another replica is the leader); events are
	// dropped then, and Run enqueues every PodGroup when it starts.
	queueLock sync.RWMutex
	queue     workqueue.TypedRateLimitingInterface[string]
}

// NewController returns a controller for the PodGroups in pgInformer.
// podInformer should only list pods carrying the pod group label, in all
// phases (see NewMemberPodInformerFactory). Both informers must be started by
// the caller after NewController returns. kube is accepted for symmetry with
// other cosched controllers; writes go through pgClient and recorder.
func NewController(kube kubernetes.Interface, pgClient versioned.Interface, pgInformer schedinformers.PodGroupInformer, podInformer coreinformers.PodInformer, recorder events.EventRecorder) (*Controller, error) {
	registerMetrics()

	c := &Controller{
		pgClient: pgClient,
		recorder: recorder,
		clock:    clock.RealClock{},
		logger:   klog.Background().WithName("podgroup-status"),
		debounce: DefaultDebounce,
		pgLister: pgInformer.Lister(),
		pgSynced: pgInformer.Informer().HasSynced,
	}

	podSharedInformer := podInformer.Informer()
	if err := podgroup.AddIndex(podSharedInformer); err != nil {
		return nil, fmt.Errorf("adding pod group index to pod informer: %w", err)
	}
	c.podIndexer = podSharedInformer.GetIndexer()
	c.podsSynced = podSharedInformer.HasSynced

	if _, err := pgInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueuePodGroup,
		UpdateFunc: func(_, obj interface{}) { c.enqueuePodGroup(obj) },
	}); err != nil {
		return nil, fmt.Errorf("adding PodGroup event handler: %w", err)
	}
	if _, err := podSharedInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueuePodOwner,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.enqueuePodOwner,
	}); err != nil {
		return nil, fmt.Errorf("adding pod event handler: %w", err)
	}
	return c, nil
}

// NewMemberPodInformerFactory returns an informer factory whose pod informer
// sees every pod that carries the pod group label, whatever its phase. Use
// its Core().V1().Pods() for NewController. It keeps only what the status is
// computed from (see memberOnly): the scheduler already holds every pending
// and running pod in full, and this second copy must not double that.
func NewMemberPodInformerFactory(client kubernetes.Interface, resync time.Duration) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, resync,
		informers.WithTweakListOptions(func(options *metav1.ListOptions) {
			options.LabelSelector = schedv1alpha1.PodGroupLabel
		}),
		informers.WithTransform(memberOnly))
}

// memberOnly strips a pod down to what Compute and the events read: its
// identity, labels, owners, creation and deletion times, node and phase.
func memberOnly(obj interface{}) (interface{}, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return obj, nil // tombstones and other types pass unchanged
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			Labels:            pod.Labels,
			OwnerReferences:   pod.OwnerReferences,
			CreationTimestamp: pod.CreationTimestamp,
			DeletionTimestamp: pod.DeletionTimestamp,
		},
		Spec:   v1.PodSpec{NodeName: pod.Spec.NodeName},
		Status: v1.PodStatus{Phase: pod.Status.Phase},
	}, nil
}

// Run waits for the informers to sync and processes PodGroups with the given
// number of workers until ctx is done. It may be called again after it
// returned, but not concurrently.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrashWithContext(ctx)
	c.runningLock.Lock()
	defer c.runningLock.Unlock()

	logger := klog.FromContext(ctx)
	logger.Info("Starting PodGroup status controller")
	defer logger.Info("Shutting down PodGroup status controller")

	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.pgSynced, c.podsSynced) {
		return
	}

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "podgroup_status"},
	)
	c.setQueue(queue)
	var wg sync.WaitGroup
	defer func() {
		c.setQueue(nil)
		queue.ShutDown()
		wg.Wait()
	}()

	// Events were dropped while not running, so every group may be stale.
	// The queue is installed first so that no change slips in between.
	pgs, err := c.pgLister.List(labels.Everything())
	if err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "Listing PodGroups from the cache")
		return
	}
	for _, pg := range pgs {
		queue.Add(cache.MetaObjectToName(pg).String())
	}

	for range workers {
		wg.Go(func() {
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for c.processNextWorkItem(ctx, queue) {
				}
			}, time.Second)
		})
	}
	<-ctx.Done()
}

func (c *Controller) setQueue(queue workqueue.TypedRateLimitingInterface[string]) {
	c.queueLock.Lock()
	defer c.queueLock.Unlock()
	c.queue = queue
}

func (c *Controller) enqueue(key string) {
	c.queueLock.RLock()
	defer c.queueLock.RUnlock()
	if c.queue != nil {
		// A key already waiting keeps its earlier time: the sync comes at
		// most one debounce after the first change it covers.
		c.queue.AddAfter(key, c.debounce)
	}
}

func (c *Controller) enqueuePodGroup(obj interface{}) {
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok {
		return
	}
	c.enqueue(cache.MetaObjectToName(pg).String())
}

func (c *Controller) updatePod(oldObj, newObj interface{}) {
	oldPod, oldOK := oldObj.(*v1.Pod)
	newPod, newOK := newObj.(*v1.Pod)
	if !oldOK || !newOK || oldPod.ResourceVersion == newPod.ResourceVersion {
		// Periodic resyncs carry no change; PodGroup resyncs cover drift.
		return
	}
	c.enqueuePodOwner(newPod)
	// A relabelled pod leaves its old group.
	if oldKey, ok := podGroupKeyOf(oldPod); ok {
		if newKey, _ := podGroupKeyOf(newPod); newKey != oldKey {
			c.enqueue(oldKey)
		}
	}
}

func (c *Controller) enqueuePodOwner(obj interface{}) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	if key, ok := podGroupKeyOf(pod); ok {
		c.logger.V(5).Info("Pod changed, enqueueing its PodGroup", "pod", klog.KObj(pod), "podGroup", key)
		c.enqueue(key)
	}
}

func (c *Controller) processNextWorkItem(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)

	err := c.sync(ctx, key)
	switch {
	case err == nil:
		queue.Forget(key)
	case apierrors.IsConflict(err):
		// The cached PodGroup was older than our last write; retry once the
		// informer has caught up.
		klog.FromContext(ctx).V(4).Info("PodGroup changed while syncing, will retry", "podGroup", key)
		queue.AddRateLimited(key)
	default:
		utilruntime.HandleErrorWithContext(ctx, err, "Syncing PodGroup status failed, will retry", "podGroup", key)
		queue.AddRateLimited(key)
	}
	return true
}

// sync brings the status and the scheduled-members annotation of one
// PodGroup up to date with its pods.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	logger := klog.LoggerWithValues(klog.FromContext(ctx), "podGroup", klog.KRef(namespace, name))
	ctx = klog.NewContext(ctx, logger)

	pg, err := c.pgLister.PodGroups(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pg.DeletionTimestamp != nil {
		return nil
	}

	pods, err := c.podsOf(key)
	if err != nil {
		return err
	}
	summary := Compute(pg, pods, metav1.NewTime(c.clock.Now()))

	if !equality.Semantic.DeepEqual(pg.Status, summary.Status) {
		if err := c.patchStatus(ctx, pg, summary.Status); apierrors.IsNotFound(err) {
			// Deleted since the cache saw it; nothing left to update.
			return nil
		} else if err != nil {
			return err
		}
		if summary.Status.Phase != pg.Status.Phase {
			phaseTransitions.WithLabelValues(string(summary.Status.Phase)).Inc()
			logger.V(2).Info("PodGroup phase changed", "oldPhase", pg.Status.Phase, "phase", summary.Status.Phase,
				"members", summary.Members, "scheduled", summary.Scheduled, "minMember", pg.Spec.MinMember)
			c.recordTransition(logger, pg, summary, pods)
		}
	}

	// A missing annotation reads as zero, which saves a write for every new group.
	scheduled := strconv.Itoa(int(summary.Scheduled))
	current, found := pg.Annotations[ScheduledMembersAnnotation]
	if current != scheduled && (found || summary.Scheduled != 0) {
		if err := c.patchScheduledMembers(ctx, pg, scheduled); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// podsOf returns the pods indexed under key, oldest first so that the
// OccupiedBy choice does not depend on cache order.
func (c *Controller) podsOf(key string) ([]*v1.Pod, error) {
	objs, err := c.podIndexer.ByIndex(PodGroupIndex, key)
	if err != nil {
		return nil, err
	}
	pods := make([]*v1.Pod, 0, len(objs))
	for _, obj := range objs {
		if pod, ok := obj.(*v1.Pod); ok {
			pods = append(pods, pod)
		}
	}
	slices.SortFunc(pods, func(a, b *v1.Pod) int {
		return cmp.Or(
			a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
			cmp.Compare(a.Name, b.Name),
		)
	})
	return pods, nil
}

// statusPatch spells out every field, unlike PodGroupStatus whose omitempty
// tags would leave stale values behind when a counter drops to zero.
type statusPatch struct {
	Metadata *patchMetadata `json:"metadata,omitempty"`
	Status   struct {
		Phase             schedv1alpha1.PodGroupPhase `json:"phase"`
		OccupiedBy        string                      `json:"occupiedBy"`
		Running           int32                       `json:"running"`
		Succeeded         int32                       `json:"succeeded"`
		Failed            int32                       `json:"failed"`
		ScheduleStartTime metav1.Time                 `json:"scheduleStartTime"`
	} `json:"status"`
}

type patchMetadata struct {
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

func (c *Controller) patchStatus(ctx context.Context, pg *schedv1alpha1.PodGroup, status schedv1alpha1.PodGroupStatus) error {
	var patch statusPatch
	// The status was computed from the cached object. The resourceVersion
	// makes the write fail instead of going back in time when the cache lags
	// behind our previous write.
	if pg.ResourceVersion != "" {
		patch.Metadata = &patchMetadata{ResourceVersion: pg.ResourceVersion}
	}
	patch.Status.Phase = status.Phase
	patch.Status.OccupiedBy = status.OccupiedBy
	patch.Status.Running = status.Running
	patch.Status.Succeeded = status.Succeeded
	patch.Status.Failed = status.Failed
	patch.Status.ScheduleStartTime = status.ScheduleStartTime
	return c.patch(ctx, pg, patch, "status")
}

func (c *Controller) patchScheduledMembers(ctx context.Context, pg *schedv1alpha1.PodGroup, scheduled string) error {
	patch := annotationPatch{Metadata: patchMetadata{
		Annotations: map[string]string{ScheduledMembersAnnotation: scheduled},
	}}
	return c.patch(ctx, pg, patch)
}

type annotationPatch struct {
	Metadata patchMetadata `json:"metadata"`
}

func (c *Controller) patch(ctx context.Context, pg *schedv1alpha1.PodGroup, patch any, subresources ...string) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = c.pgClient.SchedulingV1alpha1().PodGroups(pg.Namespace).Patch(ctx, pg.Name, types.MergePatchType, data, metav1.PatchOptions{}, subresources...)
	switch {
	case err == nil:
		statusUpdates.WithLabelValues(resultSuccess).Inc()
		klog.FromContext(ctx).V(4).Info("Patched PodGroup", "subresource", strings.Join(subresources, "/"), "patch", string(data))
		return nil
	case apierrors.IsNotFound(err):
		// The group is gone, which the caller handles; not a failed write.
		return err
	case apierrors.IsConflict(err):
		statusUpdates.WithLabelValues(resultConflict).Inc()
		return err
	default:
		statusUpdates.WithLabelValues(resultError).Inc()
		return err
	}
}

// recordTransition emits an event saying why the group entered its new phase.
func (c *Controller) recordTransition(logger klog.Logger, pg *schedv1alpha1.PodGroup, summary Summary, pods []*v1.Pod) {
	status := summary.Status
	quorum := int32(podgroup.MinMember(pg))
	eventType := v1.EventTypeNormal
	var note string
	var args []any
	switch status.Phase {
	case schedv1alpha1.PodGroupPending:
		if pg.Status.Phase == "" {
			// Every group starts here; an event would only be noise.
			return
		}
		note, args = "%d/%d pods exist, quorum is %d", []any{summary.Members, quorum, quorum}
	case schedv1alpha1.PodGroupScheduling:
		note, args = "%d/%d members scheduled, %d running, quorum is %d", []any{summary.Scheduled, summary.Members, status.Running, quorum}
	case schedv1alpha1.PodGroupRunning:
		note, args = "%d/%d members running, %d succeeded, quorum is %d", []any{status.Running, summary.Members, status.Succeeded, quorum}
	case schedv1alpha1.PodGroupFinished:
		note, args = "%d/%d members succeeded, quorum is %d", []any{status.Succeeded, summary.Members, quorum}
	case schedv1alpha1.PodGroupFailed:
		eventType = v1.EventTypeWarning
		note, args = "%s failed: %s", []any{countMembers(status.Failed), failedMemberNames(pg, pods)}
	case schedv1alpha1.PodGroupUnknown:
		eventType = v1.EventTypeWarning
		note, args = "%d/%d members remain after members were deleted; quorum is %d", []any{summary.Members, quorum, quorum}
	default:
		return
	}
	recorder := c.recorder
	if withLogger, ok := recorder.(events.EventRecorderLogger); ok {
		recorder = withLogger.WithLogger(logger)
	}
	recorder.Eventf(pg, nil, eventType, string(status.Phase), eventAction, note, args...)
}

func countMembers(n int32) string {
	if n == 1 {
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
}

// failedMemberNames lists the first few failed members as "ns/name".
func failedMemberNames(pg *schedv1alpha1.PodGroup, pods []*v1.Pod) string {
	var names []string
	total := 0
	for _, pod := range pods {
		if !isMember(pg, pod) || pod.Status.Phase != v1.PodFailed {
			continue
		}
		total++
		if len(names) < maxPodsInEvent {
			names = append(names, klog.KObj(pod).String())
		}
	}
	list := strings.Join(names, ", ")
	if more := total - len(names); more > 0 {
		list += fmt.Sprintf(" and %d more", more)
	}
	return list
}

// podGroupKeyOf returns pod's group key and whether it is in a group.
func podGroupKeyOf(pod *v1.Pod) (string, bool) {
	key := podgroup.KeyOf(pod)
	return key, key != ""
}
