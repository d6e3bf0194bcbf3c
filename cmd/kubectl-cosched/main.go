// Command kubectl-cosched is the kubectl plugin `kubectl cosched`: it
// explains gang-scheduled PodGroups (get, describe). Put it on PATH and run
// `kubectl cosched get -A`. The plugin is pkg/kubectlcosched.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/cosched/cosched/pkg/kubectlcosched"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(kubectlcosched.Main(kubectlcosched.NewCommand(streams), streams))
}
