// Package kubectlcosched is the kubectl plugin `kubectl cosched`: `get`
// shows one line per PodGroup (members bound/placed/pending against
// minMember, how long the group waits, the last reason in numbers) and
// `describe` the account of one group (members, domain, timeline,
// preemptions). It only reads: PodGroups, pods, events and nodes, with the
// standard kubeconfig flags of k8s.io/cli-runtime. The analysis is
// pkg/explain.
package kubectlcosched

import (
	"context"
	goflag "flag"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Clients are the API clients the plugin reads with.
type Clients struct {
	Kube      kubernetes.Interface
	PodGroups versioned.Interface
}

// Options is the plugin's configuration.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	// Connect returns the clients and the namespace the flags name; tests
	// replace it with fake clients.
	Connect func() (Clients, string, error)
	// Now is the clock ages are measured with.
	Now func() time.Time
}

// NewCommand returns `kubectl cosched` reading the cluster the kubeconfig
// flags name.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: genericclioptions.NewConfigFlags(true), Now: time.Now}
	o.Connect = o.connect
	return NewCommandWithOptions(o)
}

// NewCommandWithOptions returns `kubectl cosched` with o.
func NewCommandWithOptions(o *Options) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-cosched",
		Short: "Explain gang-scheduled PodGroups (scheduling.x-k8s.io/v1alpha1)",
		Long: `Explain gang-scheduled PodGroups (scheduler-plugins' scheduling.x-k8s.io/v1alpha1):
where each group stands, how many members are bound, placed and pending against
minMember, how long it waits and why, in numbers. Read-only: it needs get/list on
podgroups, pods, events and nodes.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl cosched"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if o.ConfigFlags != nil {
		o.ConfigFlags.AddFlags(root.PersistentFlags())
	}
	// Only the verbosity of klog: its other flags are for servers.
	klogFlags := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags)
	for _, name := range []string{"v", "vmodule"} {
		root.PersistentFlags().AddGoFlag(klogFlags.Lookup(name))
	}
	root.AddCommand(newGetCommand(o), newDescribeCommand(o))
	return root
}

// connect builds the clients from the kubeconfig flags.
func (o *Options) connect() (Clients, string, error) {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return Clients{}, "", err
	}
	cfg.UserAgent = "kubectl-cosched"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Clients{}, "", err
	}
	pgs, err := podgroup.NewClient(cfg)
	if err != nil {
		return Clients{}, "", err
	}
	ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return Clients{}, "", err
	}
	return Clients{Kube: kube, PodGroups: pgs}, ns, nil
}

// Main runs the command and returns the process's exit code, printing an
// error the way kubectl does.
func Main(cmd *cobra.Command, streams genericiooptions.IOStreams) int {
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
		return 1
	}
	return 0
}
