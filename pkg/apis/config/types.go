package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PlacementStrategy selects how the members of a group are placed.
type PlacementStrategy string

const (
	// PlacementMemberByMember schedules members one at a time; co-location
	// comes only from the members' own affinity, as with the stock scheduler.
	PlacementMemberByMember PlacementStrategy = "MemberByMember"
	// PlacementAtomic plans the whole group into one topology domain before
	// any member reserves anything.
	PlacementAtomic PlacementStrategy = "Atomic"
)

// CoschedGangArgs are the arguments of the CoschedGang plugin.
type CoschedGangArgs struct {
	// TypeMeta is accepted (and ignored) so that configs that spell out an
	// apiVersion and kind for the args still decode strictly.
	metav1.TypeMeta `json:",inline"`

	// PermitWaitingTimeSeconds is how long placed members wait at Permit for
	// the rest of their group when the PodGroup sets no
	// scheduleTimeoutSeconds. Default 60.
	PermitWaitingTimeSeconds *int64 `json:"permitWaitingTimeSeconds,omitempty"`

	// PodGroupBackoffSeconds is how long a group is left alone after it was
	// rejected as a whole, so that a group that cannot fit does not retry in a
	// storm. A group turned away again and again because it does not fit
	// backs off twice as long each time, up to six times this. 0 disables
	// the group backoff. Default 5.
	PodGroupBackoffSeconds *int64 `json:"podGroupBackoffSeconds,omitempty"`

	// ManagePodGroupStatus makes the scheduler keep PodGroup status (phase,
	// counters, scheduleStartTime) itself, under its own leader-election
	// lease. Default true.
	ManagePodGroupStatus *bool `json:"managePodGroupStatus,omitempty"`

	// StatusLeaseNamespace is where the status writer's Lease lives. Default:
	// the POD_NAMESPACE environment variable, else kube-system.
	StatusLeaseNamespace string `json:"statusLeaseNamespace,omitempty"`

	// PlacementStrategy is Atomic or MemberByMember. Default Atomic.
	PlacementStrategy PlacementStrategy `json:"placementStrategy,omitempty"`

	// WholeGroupPlanMinMembers: under the Atomic strategy, a group that
	// shares no topology domain and still needs at least this many members
	// is planned as a whole at its first member, with the cluster as one
	// domain; each member then checks only its planned node instead of
	// searching the cluster. A member whose planned node no longer has room
	// searches as usual. 0 turns it off. Default 100.
	WholeGroupPlanMinMembers *int32 `json:"wholeGroupPlanMinMembers,omitempty"`

	// GangPreemption lets a group that cannot be placed evict lower-priority
	// pods and gangs to make room for all the members its quorum needs at
	// once (and never for fewer). Members with preemptionPolicy Never never
	// preempt. Default true.
	GangPreemption *bool `json:"gangPreemption,omitempty"`
}
