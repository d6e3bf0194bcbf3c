package preemption

import (
	"os"
	"testing"

	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
)

func TestMain(m *testing.M) {
	// The framework's instrumentation needs the scheduler's metrics.
	schedmetrics.Register()
	os.Exit(m.Run())
}
