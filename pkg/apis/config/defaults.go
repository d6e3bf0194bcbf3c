package config

import "os"

const (
	// DefaultPermitWaitingTimeSeconds matches scheduler-plugins' default, so
	// that groups moved over from it keep their behaviour.
	DefaultPermitWaitingTimeSeconds int64 = 60
	// DefaultPodGroupBackoffSeconds is long enough to stop a retry storm and
	// short enough that a group retries soon after the cluster changes.
	DefaultPodGroupBackoffSeconds int64 = 5
	// MaxPermitWaitingTimeSeconds is the framework's own cap on Permit waits
	// (15 minutes); longer values would be silently cut.
	MaxPermitWaitingTimeSeconds int64 = 15 * 60
	// MaxPodGroupBackoffSeconds bounds the backoff so a rejected group is
	// never parked for longer than a Permit wait could last.
	MaxPodGroupBackoffSeconds int64 = MaxPermitWaitingTimeSeconds

	// DefaultWholeGroupPlanMinMembers is where planning a group ahead pays
	// off for certain: below it a group's own search is cheap, and its
	// members keep the scheduler's node scoring.
	DefaultWholeGroupPlanMinMembers int32 = 100

	defaultLeaseNamespace = "kube-system"
)

// SetDefaults fills every unset field of args.
func SetDefaults(args *CoschedGangArgs) {
	if args.PermitWaitingTimeSeconds == nil {
		v := DefaultPermitWaitingTimeSeconds
		args.PermitWaitingTimeSeconds = &v
	}
	if args.PodGroupBackoffSeconds == nil {
		v := DefaultPodGroupBackoffSeconds
		args.PodGroupBackoffSeconds = &v
	}
	if args.ManagePodGroupStatus == nil {
		v := true
		args.ManagePodGroupStatus = &v
	}
	if args.StatusLeaseNamespace == "" {
		args.StatusLeaseNamespace = os.Getenv("POD_NAMESPACE")
		if args.StatusLeaseNamespace == "" {
			args.StatusLeaseNamespace = defaultLeaseNamespace
		}
	}
	if args.GangPreemption == nil {
		v := true
		args.GangPreemption = &v
	}
	if args.WholeGroupPlanMinMembers == nil {
		v := DefaultWholeGroupPlanMinMembers
		args.WholeGroupPlanMinMembers = &v
	}
	if args.PlacementStrategy == "" {
		args.PlacementStrategy = PlacementAtomic
	}
}
