// Command cosched is kube-scheduler with every in-tree plugin plus cosched's
// gang scheduling and gang-aware preemption plugins. Run it as a secondary
// scheduler: pods opt in with spec.schedulerName.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/cosched/cosched/pkg/gang"
	"github.com/cosched/cosched/pkg/preemption"
)

func main() {
	command := app.NewSchedulerCommand(
		app.WithPlugin(gang.QueueSortName, gang.NewQueueSort),
		app.WithPlugin(gang.Name, gang.New),
		app.WithPlugin(preemption.Name, preemption.New),
	)
	command.Use = "cosched"
	os.Exit(cli.Run(command))
}
