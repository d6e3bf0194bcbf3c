package testutil

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/util/validation/field"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"github.com/cosched/cosched/pkg/apis/config"
	"github.com/cosched/cosched/pkg/gang"
)

// SchedulerConfigPath is the KubeSchedulerConfiguration cosched ships.
const SchedulerConfigPath = "manifests/cosched/scheduler-config.yaml"

// LoadSchedulerConfig decodes the shipped scheduler config the way
// kube-scheduler does (strictly, with defaults), so tests run the profiles
// users deploy.
func LoadSchedulerConfig() (*schedconfig.KubeSchedulerConfiguration, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(root, SchedulerConfigPath))
	if err != nil {
		return nil, err
	}
	obj, _, err := schedscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", SchedulerConfigPath, err)
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, not a KubeSchedulerConfiguration", SchedulerConfigPath, obj)
	}
	return cfg, nil
}

// SetGangArgs decodes the CoschedGang args of every profile, lets mutate
// change them, and stores them back typed.
func SetGangArgs(cfg *schedconfig.KubeSchedulerConfiguration, mutate func(*config.CoschedGangArgs)) error {
	for i := range cfg.Profiles {
		for j := range cfg.Profiles[i].PluginConfig {
			pc := &cfg.Profiles[i].PluginConfig[j]
			if pc.Name != gang.Name {
				continue
			}
			args, err := config.Decode(pc.Args, field.NewPath("profiles").Index(i).Child("pluginConfig").Index(j).Child("args"))
			if err != nil {
				return err
			}
			if mutate != nil {
				mutate(args)
			}
			pc.Args = args
		}
	}
	return nil
}
