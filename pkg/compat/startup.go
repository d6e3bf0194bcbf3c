package compat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/featuregate"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
)

const (
	// DefaultVersionTimeout bounds the wait for the API server's /version at
	// start: long enough for an API server that is itself starting, short
	// enough that a wrong address ends in a clear error and a restart by the
	// supervisor rather than in a process that waits without a word.
	DefaultVersionTimeout = 45 * time.Second
	// CacheSyncWarnAfter and CacheSyncWarnEvery pace the unsynced-cache
	// warning: a healthy scheduler syncs in a few seconds.
	CacheSyncWarnAfter = 10 * time.Second
	CacheSyncWarnEvery = 30 * time.Second
)

// Startup fits cosched to the API server before kube-scheduler's options take
// effect. Pass LogOption first among the command's registry options, wrap
// the plugin factories with WatchCaches, then Install it on the command.
type Startup struct {
	rng            Range
	versionTimeout time.Duration

	// What fit found, for the log line and the cache watch's hint.
	server       *ServerVersion
	emulated     *version.Version // what runs; nil = the binary's release
	source       string           // who chose it
	warnings     []string
	binaryGates  featuregate.FeatureGate
	logOnce      sync.Once
	watchOnce    sync.Once
	fetchVersion func(ctx context.Context, fs *pflag.FlagSet) (*apimachineryversion.Info, string, error)
}

// New returns a Startup for this binary's release.
func New() *Startup {
	return &Startup{rng: RangeFor(binaryVersion()), fetchVersion: fetchServerVersion}
}

// Install hooks s into kube-scheduler's command: before the command's own
// PersistentPreRunE applies --emulated-version and --feature-gates (its
// ComponentGlobalsRegistry.Set), fit reads the server's version and sets
// --emulated-version unless the user set it or --feature-gates.
func (s *Startup) Install(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&s.versionTimeout, "server-version-timeout", DefaultVersionTimeout,
		"How long cosched retries the API server's /version at start before it gives up (it runs with the compatibility version of the server's release).")
	next := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if err := s.fit(c.Context(), c.Flags()); err != nil {
			return err
		}
		// The gates as the binary defaults them, before the flags move them.
		s.binaryGates = utilfeature.DefaultMutableFeatureGate.DeepCopy()
		if next != nil {
			return next(c, args)
		}
		return nil
	}
}

// binaryVersion is the release this binary is built on, as kube-scheduler's
// own compatibility registry sees it (the hard-coded release when the build
// carries no version stamp).
func binaryVersion() *version.Version {
	return compatibility.DefaultBuildEffectiveVersion().BinaryVersion()
}

func (s *Startup) fit(ctx context.Context, fs *pflag.FlagSet) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if f := fs.Lookup("version"); f != nil && f.Changed {
		return nil // --version prints and exits; no server needed
	}
	var userEmulated *version.Version
	if fs.Changed("emulated-version") {
		values, err := fs.GetStringSlice("emulated-version")
		if err != nil {
			return err
		}
		if userEmulated, err = KubeEmulatedVersion(values); err != nil {
			return err
		}
	}
	userGates := fs.Changed("feature-gates")
	userChose := userEmulated != nil || userGates
	s.emulated, s.source = userEmulated, "--emulated-version"
	if userEmulated == nil {
		s.source = "binary"
	}

	info, host, err := s.fetchVersion(ctx, fs)
	if err == nil {
		var sv ServerVersion
		if sv, err = ParseServerVersion(info); err == nil {
			s.server = &sv
		}
	}
	if err != nil {
		if userChose {
			s.warn(fmt.Sprintf("cannot read the API server's version (%v); running with the --emulated-version/--feature-gates given", err))
			return nil
		}
		return fmt.Errorf("cannot read the version of the API server at %s: %w; cosched needs it to run as that server's Kubernetes release "+
			"(supported: %s). Check --kubeconfig, --master or the config's clientConnection.kubeconfig, "+
			"or set --emulated-version to the server's minor (e.g. --emulated-version=%s) to start without asking", host, err, s.rng, s.rng.Oldest)
	}

	choice, err := Choose(*s.server, s.rng)
	switch {
	case err != nil && userChose:
		s.warn(err.Error() + "; running with the --emulated-version/--feature-gates given")
	case err != nil:
		return err
	case choice.Warning != "":
		s.warn(choice.Warning)
	}
	switch {
	case userEmulated != nil:
		if w := CheckUserEmulation(userEmulated, *s.server); w != "" {
			s.warn(w)
		}
	case userGates:
		if choice.Emulate != nil {
			s.warn(fmt.Sprintf("--feature-gates is set, so cosched runs as Kubernetes %s instead of emulating the API server's %s: "+
				"every gate on by default in %s whose API the server lacks must be turned off in --feature-gates, or the scheduler never becomes ready",
				s.rng.Binary, s.server.Serves, s.rng.Binary))
		}
	case choice.Emulate != nil:
		if err := fs.Set("emulated-version", choice.Emulate.String()); err != nil {
			return fmt.Errorf("setting --emulated-version=%s: %w", choice.Emulate, err)
		}
		s.emulated, s.source = choice.Emulate, "server"
	}
	return nil
}

// warn logs w now (kube-scheduler has not applied its logging options yet:
// this goes to stderr as text) and keeps it for the start line.
func (s *Startup) warn(w string) {
	klog.Background().Info("Warning: " + w)
	s.warnings = append(s.warnings, w)
}

// fetchServerVersion asks the API server the scheduler will talk to for its
// /version, retrying with backoff for --server-version-timeout. The client is
// built as kube-scheduler builds its own: --master and, with --config, that
// file's clientConnection.kubeconfig, else --kubeconfig, else in-cluster.
func fetchServerVersion(ctx context.Context, fs *pflag.FlagSet) (*apimachineryversion.Info, string, error) {
	cfg, err := restConfig(fs)
	if err != nil {
		return nil, "(unknown)", err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, cfg.Host, err
	}
	timeout, err := fs.GetDuration("server-version-timeout")
	if err != nil {
		timeout = DefaultVersionTimeout
	}
	info, err := RetryVersion(ctx, func(context.Context) (*apimachineryversion.Info, error) { return dc.ServerVersion() }, timeout)
	return info, cfg.Host, err
}

func restConfig(fs *pflag.FlagSet) (*rest.Config, error) {
	value := func(name string) string {
		if f := fs.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	kubeconfig := value("kubeconfig")
	if file := value("config"); file != "" {
		// With --config, kube-scheduler ignores --kubeconfig.
		cfg, err := options.LoadConfigFromFile(klog.Background(), file)
		if err != nil {
			return nil, fmt.Errorf("reading --config %s: %w", file, err)
		}
		kubeconfig = cfg.ClientConnection.Kubeconfig
	}
	cfg, err := clientcmd.BuildConfigFromFlags(value("master"), kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second
	return rest.AddUserAgent(cfg, "cosched-version-check"), nil
}

// RetryVersion calls get until it succeeds or timeout has passed, waiting
// 0.5 s after the first failure and twice as long after each next one (at
// most 8 s, the last try at the deadline), so an API server that is starting
// too is waited for.
func RetryVersion(ctx context.Context, get func(context.Context) (*apimachineryversion.Info, error), timeout time.Duration) (*apimachineryversion.Info, error) {
	logger := klog.FromContext(ctx)
	deadline := time.Now().Add(timeout)
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		info, err := get(ctx)
		if err == nil {
			return info, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("no answer on /version after %d attempts in %s, the last: %w", attempt, timeout, err)
		}
		delay = min(delay, left) // the last try at the deadline
		logger.Info("Waiting for the API server's /version", "attempt", attempt, "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 8*time.Second)
	}
}

// LogOption is a registry option that only logs: kube-scheduler runs its
// registry options after it has applied the logging options and before it
// starts any informer, which is where the start line belongs.
func (s *Startup) LogOption() app.Option {
	return func(frameworkruntime.Registry) error {
		s.logOnce.Do(s.logStart)
		return nil
	}
}

func (s *Startup) logStart() {
	logger := klog.Background()
	emulated := s.rng.Binary.String()
	if s.emulated != nil {
		emulated = s.emulated.String()
	}
	server := "unknown"
	if s.server != nil {
		server = s.server.String()
	}
	logger.Info("Running as the API server's Kubernetes release", "server", server, "binary", s.rng.Binary.String(),
		"emulatedVersion", emulated, "chosenBy", s.source, "supported", s.rng.String(),
		"featureGatesChanged", ChangedGates(s.binaryGates, utilfeature.DefaultFeatureGate))
	for _, w := range s.warnings {
		logger.Info("Warning: " + w)
	}
}

// ChangedGates lists the gates whose value in effective differs from
// defaults, as Name=value, sorted.
func ChangedGates(defaults, effective featuregate.FeatureGate) []string {
	if defaults == nil || effective == nil {
		return nil
	}
	var changed []string
	for name := range defaults.(featuregate.MutableFeatureGate).GetAll() {
		if strings.HasPrefix(string(name), "All") { // AllAlpha, AllBeta: switches, not features
			continue
		}
		if effective.Enabled(name) != defaults.Enabled(name) {
			changed = append(changed, fmt.Sprintf("%s=%t", name, effective.Enabled(name)))
		}
	}
	slices.Sort(changed)
	return changed
}

// WatchCaches wraps a plugin factory so that the first plugin built starts
// WatchCacheSync on the scheduler's informer factory: the plugin handle is
// the one place an out-of-tree build reaches it before the caches start.
func (s *Startup) WatchCaches(factory frameworkruntime.PluginFactory) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		s.watchOnce.Do(func() {
			if f := h.SharedInformerFactory(); f != nil {
				go WatchCacheSync(ctx, f, CacheSyncWarnAfter, CacheSyncWarnEvery, s.hint())
			}
		})
		return factory(ctx, obj, h)
	}
}

// hint says what to do about a cache that never syncs.
func (s *Startup) hint() string {
	runs := s.rng.Binary.String()
	if s.emulated != nil {
		runs = s.emulated.String()
	}
	server := "of unknown version"
	if s.server != nil {
		server = "Kubernetes " + s.server.String()
	}
	return fmt.Sprintf("the scheduler runs as Kubernetes %s (%s) against an API server %s; an informer for an API the server "+
		"does not serve never syncs (the log says \"failed to list\" for it): run with --emulated-version=<the server's minor>, "+
		"or turn off the feature gate that uses that API with --feature-gates", runs, s.source, server)
}
