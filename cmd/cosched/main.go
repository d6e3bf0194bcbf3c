// Command cosched is kube-scheduler with every in-tree plugin plus cosched's
// gang scheduling and gang-aware preemption plugins. Run it as a secondary
// scheduler: pods opt in with spec.schedulerName.
//
// At start it asks the API server for its version and runs as that server's
// Kubernetes release (--emulated-version), so one build serves API servers
// 1.34 to 1.37; see pkg/compat.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/cosched/cosched/pkg/compat"
	"github.com/cosched/cosched/pkg/gang"
	"github.com/cosched/cosched/pkg/preemption"
)

func main() {
	startup := compat.New()
	// What the profiles of the scheduler share (the group memory, the
	// PodGroup informer, the leader-elected PodGroup status writer) is built
	// here, by the first plugin of the scheduler that needs it.
	plugins := gang.NewPlugins()
	// Registry options run in order once logging is set up: the start line
	// first; the first plugin built starts the unsynced-cache watch.
	command := app.NewSchedulerCommand(
		startup.LogOption(),
		app.WithPlugin(gang.QueueSortName, startup.WatchCaches(plugins.NewQueueSort)),
		app.WithPlugin(gang.Name, startup.WatchCaches(plugins.NewGang)),
		app.WithPlugin(preemption.Name, startup.WatchCaches(preemption.NewSharing(plugins.PodGroupLister))),
	)
	command.Use = "cosched"
	startup.Install(command)
	os.Exit(cli.Run(command))
}
