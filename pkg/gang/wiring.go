package gang

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
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
	"github.com/cosched/cosched/pkg/podgroup"
)

// Plugins builds cosched's plugins and holds what the profiles of one
// scheduler share: one PodGroup informer, one group memory (the queue order
// reads what CoschedGang records), one watcher of pods, nodes and PodGroups,
// and one leader-elected PodGroup status writer. cmd/cosched makes one and
// registers its factories; each scheduler it serves (one in the binary, a
// new one per test case in scheduler_perf) is known by its informer
// factory, which every profile's handle returns.
type Plugins struct {
	mu         sync.Mutex
	schedulers map[informers.SharedInformerFactory]*schedulerShared
}

// NewPlugins returns an empty Plugins.
func NewPlugins() *Plugins {
	return &Plugins{schedulers: map[informers.SharedInformerFactory]*schedulerShared{}}
}

// NewGang is CoschedGang's factory: it decodes the args, joins the
// scheduler's shared setup and starts nothing itself. The PodGroup informer
// is registered with the scheduler's informer factory, which the scheduler
// starts and syncs before it schedules; the status writer starts after that.
func (p *Plugins) NewGang(ctx context.Context, obj runtime.Object, handle fwk.Handle) (fwk.Plugin, error) {
	args, err := config.Decode(obj, field.NewPath("pluginConfig").Key(Name).Child("args"))
	if err != nil {
		return nil, err
	}
	shared, err := p.sharedFor(ctx, handle)
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
	pl, err := buildPlugin(ctx, handle, args, shared.informer.Lister(), shared.groups)
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

// NewQueueSort is CoschedQueueSort's factory: it joins the scheduler's
// shared PodGroup informer and group memory, which CoschedGang fills.
func (p *Plugins) NewQueueSort(ctx context.Context, _ runtime.Object, handle fwk.Handle) (fwk.Plugin, error) {
	shared, err := p.sharedFor(ctx, handle)
	if err != nil {
		return nil, err
	}
	return &QueueSort{podGroups: shared.informer.Lister(), groups: shared.groups}, nil
}

// PodGroupLister returns the PodGroup lister that handle's scheduler shares,
// nil when none of cosched's gang plugins runs in it; CoschedPreemption then
// reads PodGroups from memory instead of asking the API server.
func (p *Plugins) PodGroupLister(handle fwk.Handle) schedlisters.PodGroupLister {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.schedulers[handle.SharedInformerFactory()]; ok {
		return s.informer.Lister()
	}
	return nil
}

// sharedFor returns handle's scheduler's shared setup, building it for the
// scheduler's first profile; it goes when the scheduler stops.
func (p *Plugins) sharedFor(ctx context.Context, handle fwk.Handle) (*schedulerShared, error) {
	key := handle.SharedInformerFactory()
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.schedulers[key]; ok {
		return s, nil
	}
	s, err := newSchedulerShared(ctx, handle)
	if err != nil {
		return nil, err
	}
	p.schedulers[key] = s
	context.AfterFunc(ctx, func() {
		p.mu.Lock()
		delete(p.schedulers, key)
		p.mu.Unlock()
	})
	return s, nil
}

// schedulerShared is what every profile of one scheduler shares.
type schedulerShared struct {
	client       versioned.Interface
	informer     schedv1alpha1informers.PodGroupInformer
	groups       *groupTracker
	watcher      sync.Once
	watchErr     error
	statusWriter sync.Once
	statusErr    error

	mu sync.Mutex
	// status is the status-writer args of the first profile, which every
	// other profile must repeat.
	status *statusArgs
}

func newSchedulerShared(ctx context.Context, handle fwk.Handle) (*schedulerShared, error) {
	client, err := podgroup.NewClient(handle.KubeConfig())
	if err != nil {
		return nil, fmt.Errorf("building the PodGroup client: %w", err)
	}
	// The scheduler's factory starts the PodGroup informer with its own
	// and waits for all of them before the first scheduling cycle.
	pgInformer := podGroupInformer{handle.SharedInformerFactory().InformerFor(&schedv1alpha1.PodGroup{}, func(_ kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return schedv1alpha1informers.NewPodGroupInformer(client, metav1.NamespaceAll, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	})}
	go warnIfPodGroupsDoNotList(ctx, pgInformer.Informer())
	groups := newGroupTracker()
	reportWhileRunning(ctx, groups)
	return &schedulerShared{client: client, informer: pgInformer, groups: groups}, nil
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

// podGroupInformer is a PodGroup informer of the scheduler's factory, as the
// generated PodGroupInformer interface the status writer takes.
type podGroupInformer struct{ informer cache.SharedIndexInformer }

func (i podGroupInformer) Informer() cache.SharedIndexInformer { return i.informer }
func (i podGroupInformer) Lister() schedlisters.PodGroupLister {
	return schedlisters.NewPodGroupLister(i.informer.GetIndexer())
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
	pl, err := buildPlugin(ctx, handle, args, pgLister, groups)
	if err != nil {
		return nil, err
	}
	return pl, pl.watch(pgInformer)
}

// buildPlugin makes a plugin instance over the given group memory.
func buildPlugin(ctx context.Context, handle fwk.Handle, args *config.CoschedGangArgs, pgLister schedlisters.PodGroupLister, groups *groupTracker) (*CoschedGang, error) {
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
	pl.groups.setSynced(reg.HasSynced)
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
