package gang

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

const metricsSubsystem = "cosched_gang"

var (
	groupRejections = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "rejections_total",
		Help:           "Pod groups rejected as a whole, by reason.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})

	groupsAdmitted = metrics.NewCounter(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "admitted_total",
		Help:           "Pod group attempts that reached quorum and were let through Permit.",
		StabilityLevel: metrics.ALPHA,
	})

	// Plans by kind (atomic: one topology domain; shortcut: a big group
	// planned with the cluster as one domain), and how members of shortcut
	// plans fared: on their planned node, or searching because it filled up.
	plansMade = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "plans_total",
		Help:           "Plans made for pod groups at their first member, by kind (atomic, shortcut).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"kind"})
	shortcutMembers = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "shortcut_members_total",
		Help:           "Members of groups with a shortcut plan, by whether they went to their planned node (planned) or searched the cluster (search).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})

	permitWaitDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Subsystem:      metricsSubsystem,
		Name:           "permit_wait_duration_seconds",
		Help:           "How long a pod group's first member waited at Permit before the group was allowed or rejected.",
		Buckets:        metrics.ExponentialBuckets(0.001, 4, 10),
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})

	heldCPUSeconds = metrics.NewCounter(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "released_reservation_cpu_seconds_total",
		Help:           "CPU (cores times seconds) that members of rejected group attempts held while they waited.",
		StabilityLevel: metrics.ALPHA,
	})

	heldMemoryByteSeconds = metrics.NewCounter(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "released_reservation_memory_byte_seconds_total",
		Help:           "Memory (bytes times seconds) that members of rejected group attempts held while they waited.",
		StabilityLevel: metrics.ALPHA,
	})

	preemptions = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "preemptions_total",
		Help:           "Preemption attempts by pod groups that could not be placed, by result (preempted, no_room, waiting, error).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})

	preemptionVictims = metrics.NewCounter(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "preemption_victims_total",
		Help:           "Pods evicted to make room for pod groups.",
		StabilityLevel: metrics.ALPHA,
	})

	// The sizes of the group memory, summed over the schedulers running in
	// the process (one, but for tests): each tracker adds its changes and
	// takes its share back when its scheduler stops. All three return to 0
	// once the workload drains: docs/design.md says why.
	trackedGroups = metrics.NewGauge(&metrics.GaugeOpts{
		Subsystem:      metricsSubsystem,
		Name:           "tracked_groups",
		Help:           "Pod groups the scheduler holds in memory: attempts in flight, and rejected groups that still have pods and a PodGroup.",
		StabilityLevel: metrics.ALPHA,
	})
	reservationsHeld = metrics.NewGauge(&metrics.GaugeOpts{
		Subsystem:      metricsSubsystem,
		Name:           "reservations",
		Help:           "Group members holding a reservation in the scheduler's memory (waiting at Permit, or binding until the pod cache shows them bound).",
		StabilityLevel: metrics.ALPHA,
	})
	releasingMembers = metrics.NewGauge(&metrics.GaugeOpts{
		Subsystem:      metricsSubsystem,
		Name:           "releasing_members",
		Help:           "Members of rejected group attempts whose reservation is being released (they count for nothing).",
		StabilityLevel: metrics.ALPHA,
	})

	registerOnce sync.Once
)

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(groupRejections, groupsAdmitted, permitWaitDuration, heldCPUSeconds, heldMemoryByteSeconds,
			preemptions, preemptionVictims, plansMade, shortcutMembers, trackedGroups, reservationsHeld, releasingMembers)
	})
}
