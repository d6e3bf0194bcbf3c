package podgroupstatus

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

const (
	metricsNamespace = "cosched"
	metricsSubsystem = "podgroup"

	// Values of the result label of statusUpdates.
	resultSuccess = "success"
	resultError   = "error"
	// resultConflict is a write rejected because the cached PodGroup was
	// stale. It is retried and is not a failure, so it is kept apart from
	// errors that an operator should look at.
	resultConflict = "conflict"
)

var (
	statusUpdates = metrics.NewCounterVec(
		&metrics.CounterOpts{
			Namespace:      metricsNamespace,
			Subsystem:      metricsSubsystem,
			Name:           "status_updates_total",
			Help:           "Number of PodGroup status and annotation writes, by result.",
			StabilityLevel: metrics.ALPHA,
		},
		[]string{"result"},
	)

	phaseTransitions = metrics.NewCounterVec(
		&metrics.CounterOpts{
			Namespace:      metricsNamespace,
			Subsystem:      metricsSubsystem,
			Name:           "phase_transitions_total",
			Help:           "Number of PodGroup phase changes written, by the new phase.",
			StabilityLevel: metrics.ALPHA,
		},
		[]string{"phase"},
	)

	registerMetricsOnce sync.Once
)

func registerMetrics() {
	registerMetricsOnce.Do(func() {
		legacyregistry.MustRegister(statusUpdates, phaseTransitions)
	})
}
