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

	registerOnce sync.Once
)

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(groupRejections, groupsAdmitted, permitWaitDuration, heldCPUSeconds, heldMemoryByteSeconds,
			preemptions, preemptionVictims)
	})
}
