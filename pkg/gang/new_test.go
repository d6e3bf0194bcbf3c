package gang

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	pgfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"
	schedinformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"
)

// TestNewProfilesShareOneSetup is R6: every profile of a scheduler builds
// its own CoschedGang, over one PodGroup informer, one group memory, one
// watcher and one status writer. A profile whose status-writer args differ
// from the first's was ignored without a word, and when the one watcher
// could not start only the first profile learnt it: the others got a plugin
// whose group memory nothing would keep current.
func TestNewProfilesShareOneSetup(t *testing.T) {
	tests := []struct {
		name string
		args [2]string
		// stopped: the shared PodGroup informer has stopped, so no handler
		// can be added to it.
		stopped bool
		wantErr [2]string
	}{
		{name: "profiles that agree", args: [2]string{"managePodGroupStatus: false", "managePodGroupStatus: false\nplacementStrategy: MemberByMember"}},
		{name: "status writer on in the second profile only", args: [2]string{"managePodGroupStatus: false", "managePodGroupStatus: true"},
			wantErr: [2]string{"", `managePodGroupStatus: Invalid value: true: profile "second" sets true, profile "first" false`}},
		{name: "different lease namespaces", args: [2]string{"statusLeaseNamespace: a", "statusLeaseNamespace: b"},
			wantErr: [2]string{"", `statusLeaseNamespace: Invalid value: "b": profile "second" sets "b", profile "first" "a"`}},
		{name: "the watcher cannot start: every profile fails", args: [2]string{"managePodGroupStatus: false", "managePodGroupStatus: false"}, stopped: true,
			wantErr: [2]string{"watching pods, nodes and PodGroups", "watching pods, nodes and PodGroups"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pgClient := pgfake.NewSimpleClientset() //nolint:staticcheck // see newTestEnv
			pgFactory := schedinformers.NewSharedInformerFactory(pgClient, 0)
			pgInformer := pgFactory.Scheduling().V1alpha1().PodGroups()
			pgInformer.Informer()
			if tc.stopped {
				// Run with its stop channel closed: it starts and stops.
				stopped := make(chan struct{})
				close(stopped)
				pgInformer.Informer().Run(stopped)
			}
			client := fake.NewClientset()
			factory := informers.NewSharedInformerFactory(client, 0)
			// The scheduler's shared setup, as sharedFor builds it against
			// a real API server.
			plugins := NewPlugins()
			plugins.schedulers[factory] = &schedulerShared{client: pgClient, informer: pgInformer, groups: newGroupTracker()}
			for i, profile := range []string{"first", "second"} {
				args := &runtime.Unknown{Raw: []byte(tc.args[i])}
				_, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
					tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
					tf.RegisterQueueSortPlugin(QueueSortName, func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) { return &QueueSort{}, nil }),
					tf.RegisterPluginAsExtensions(Name, func(ctx context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
						return plugins.NewGang(ctx, args, h)
					}, "PreFilter"),
				}, profile,
					frameworkruntime.WithInformerFactory(factory),
					frameworkruntime.WithClientSet(client),
					frameworkruntime.WithEventRecorder(events.NewFakeRecorder(10)),
				)
				switch want := tc.wantErr[i]; {
				case want == "" && err != nil:
					t.Errorf("profile %s: %v", profile, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("profile %s: error %v, want one containing %q", profile, err, want)
				}
			}
		})
	}
}

// TestNewStartsNothing: New only builds. The PodGroup informer joins the
// scheduler's informer factory, which the scheduler starts (and syncs)
// before its first cycle; nothing runs before that.
func TestNewStartsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	args := &runtime.Unknown{Raw: []byte("managePodGroupStatus: true")}
	plugins := NewPlugins()
	_, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
		tf.RegisterQueueSortPlugin(QueueSortName, func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) { return &QueueSort{}, nil }),
		tf.RegisterPluginAsExtensions(Name, func(ctx context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
			return plugins.NewGang(ctx, args, h)
		}, "PreFilter"),
	}, "profile",
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithClientSet(client),
		// Nothing listens there: New must not need the API server.
		frameworkruntime.WithKubeConfig(&rest.Config{Host: "http://127.0.0.1:1"}),
		frameworkruntime.WithEventRecorder(events.NewFakeRecorder(10)),
	)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	plugins.mu.Lock()
	s := plugins.schedulers[factory]
	plugins.mu.Unlock()
	if s == nil {
		t.Fatal("New left no shared setup for the scheduler")
	}
	started := func() bool { return s.informer.Informer().(interface{ HasStarted() bool }).HasStarted() }
	if started() {
		t.Fatal("the PodGroup informer runs before the scheduler started its informers")
	}
	factory.Start(ctx.Done())
	// Start runs each informer on its own goroutine.
	if wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) { return started(), nil }) != nil {
		t.Error("the scheduler's factory did not start the PodGroup informer: it is not registered with it")
	}
}
