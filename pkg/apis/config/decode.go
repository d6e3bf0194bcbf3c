package config

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// Decode turns the args a plugin receives into defaulted, validated args.
// obj may be nil (no pluginConfig entry), a *runtime.Unknown holding JSON or
// YAML (out-of-tree args from a config file), or *CoschedGangArgs (tests and
// in-process callers).
func Decode(obj runtime.Object, path *field.Path) (*CoschedGangArgs, error) {
	args := &CoschedGangArgs{}
	switch o := obj.(type) {
	case nil:
	case *CoschedGangArgs:
		args = o.DeepCopy()
	case *runtime.Unknown:
		// YAML is a superset of JSON, so one strict decoder serves both
		// content types and rejects unknown (misspelled) fields.
		if len(o.Raw) > 0 {
			if err := yaml.UnmarshalStrict(o.Raw, args); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", path, err)
			}
		}
	default:
		return nil, fmt.Errorf("%s: want args of type *runtime.Unknown or *CoschedGangArgs, got %T", path, obj)
	}
	SetDefaults(args)
	if errs := Validate(path, args); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return args, nil
}

// DeepCopy returns an independent copy of args.
func (in *CoschedGangArgs) DeepCopy() *CoschedGangArgs {
	if in == nil {
		return nil
	}
	out := *in
	out.PermitWaitingTimeSeconds = copyPtr(in.PermitWaitingTimeSeconds)
	out.PodGroupBackoffSeconds = copyPtr(in.PodGroupBackoffSeconds)
	out.ManagePodGroupStatus = copyPtr(in.ManagePodGroupStatus)
	out.GangPreemption = copyPtr(in.GangPreemption)
	out.WholeGroupPlanMinMembers = copyPtr(in.WholeGroupPlanMinMembers)
	return &out
}

// DeepCopyObject makes the args usable wherever the framework expects a
// runtime.Object.
func (in *CoschedGangArgs) DeepCopyObject() runtime.Object { return in.DeepCopy() }

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
