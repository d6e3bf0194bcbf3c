package config

import (
	"fmt"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks defaulted args and names every bad field with its value.
func Validate(path *field.Path, args *CoschedGangArgs) field.ErrorList {
	var errs field.ErrorList
	if v := args.PermitWaitingTimeSeconds; v == nil || *v < 1 || *v > MaxPermitWaitingTimeSeconds {
		errs = append(errs, field.Invalid(path.Child("permitWaitingTimeSeconds"), deref(v),
			fmt.Sprintf("must be between 1 and %d (the framework caps Permit waits at 15 minutes)", MaxPermitWaitingTimeSeconds)))
	}
	if v := args.PodGroupBackoffSeconds; v == nil || *v < 0 || *v > MaxPodGroupBackoffSeconds {
		errs = append(errs, field.Invalid(path.Child("podGroupBackoffSeconds"), deref(v),
			fmt.Sprintf("must be between 0 and %d", MaxPodGroupBackoffSeconds)))
	}
	for _, msg := range apivalidation.ValidateNamespaceName(args.StatusLeaseNamespace, false) {
		errs = append(errs, field.Invalid(path.Child("statusLeaseNamespace"), args.StatusLeaseNamespace, msg))
	}
	if v := args.WholeGroupPlanMinMembers; v == nil || *v < 0 {
		var shown any
		if v != nil {
			shown = *v
		}
		errs = append(errs, field.Invalid(path.Child("wholeGroupPlanMinMembers"), shown, "must be 0 (off) or more"))
	}
	switch args.PlacementStrategy {
	case PlacementAtomic, PlacementMemberByMember:
	default:
		errs = append(errs, field.NotSupported(path.Child("placementStrategy"), args.PlacementStrategy,
			[]PlacementStrategy{PlacementAtomic, PlacementMemberByMember}))
	}
	return errs
}

func deref(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}
