package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestParseSchedulerMetrics(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		wantWrites    float64
		wantThrottled float64
		wantHeap      float64
	}{{
		name: "writes of every client, reads left out",
		body: `# HELP rest_client_requests_total Number of HTTP requests
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 3000
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 2000
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PUT"} 12
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 500
rest_client_requests_total{code="409",host="127.0.0.1:6443",method="DELETE"} 1
`,
		wantWrites: 5013,
	}, {
		name: "rate limiter waits summed over verbs, buckets and counts left out",
		body: `rest_client_rate_limiter_duration_seconds_bucket{host="h",verb="POST",le="0.005"} 10
rest_client_rate_limiter_duration_seconds_sum{host="h",verb="POST"} 1.5
rest_client_rate_limiter_duration_seconds_sum{host="h",verb="PATCH"} 0.25
rest_client_rate_limiter_duration_seconds_count{host="h",verb="PATCH"} 99
`,
		wantThrottled: 1.75,
	}, {
		name:     "the heap in use, other Go heap figures left out",
		body:     "go_memstats_heap_alloc_bytes 1e+08\ngo_memstats_heap_inuse_bytes 1.2582912e+08\ngo_memstats_heap_idle_bytes 5e+07\n",
		wantHeap: 125829120,
	}, {
		name: "other metrics and malformed lines",
		body: "go_goroutines 120\nrest_client_requests_total{method=\"POST\"} NaN\nnot a sample\n\n",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseSchedulerMetrics([]byte(tc.body))
			if got.writes != tc.wantWrites || got.throttledSeconds != tc.wantThrottled || got.heapInUseBytes != tc.wantHeap {
				t.Errorf("got writes %v, throttled %v, heap %v; want %v, %v, %v", got.writes, got.throttledSeconds, got.heapInUseBytes,
					tc.wantWrites, tc.wantThrottled, tc.wantHeap)
			}
		})
	}
}

func TestWriteReportRatioToStockOfTheSameSetting(t *testing.T) {
	rows := []result{
		{Label: "qps 50/100", Scheduler: "default-scheduler", Workload: "3000 plain pods", Pods: 3000, Bound: 3000, PodsPerSec: 50, AllBoundSec: 60, ThrottledSec: 6000, PeakHeapMB: 100},
		{Label: "qps 50/100", Scheduler: "cosched", Workload: "1000 gangs of 3", Pods: 3000, Bound: 3000, PodsPerSec: 30, PeakHeapMB: 108},
		{Label: "qps 100/200", Scheduler: "cosched", Workload: "1000 gangs of 3", Pods: 3000, Bound: 2999, PodsPerSec: 60},
		{Label: "qps 50/100", Scheduler: "cosched", Variant: "no nominations", Workload: "1000 gangs of 3", Pods: 3000, Bound: 3000, PodsPerSec: 45, PeakHeapMB: 105},
	}
	var out bytes.Buffer
	writeReport(&out, rows)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2+len(rows) {
		t.Fatalf("want a header, a rule and %d rows, got:\n%s", len(rows), out.String())
	}
	for i, wants := range [][]string{
		{"| 50 | 1.00 | 0 | 60.0 | 0.00 | 100 | 100 | 1.00 |"},
		{"| 30 | 0.60 |", "| 108 | 1.08 |"},
		{"| 2999/3000 | 60 | — |", "| 0 | — |"},
		{"| qps 50/100 | cosched (no nominations) | 1000 gangs of 3 |", "| 45 | 0.90 |", "| 105 | 1.05 |"},
	} {
		for _, want := range wants {
			if !strings.Contains(lines[2+i], want) {
				t.Errorf("row %d = %q, want it to contain %q", i, lines[2+i], want)
			}
		}
	}
}

func TestDeleteNamespaceWhenDeletingThePodsFails(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{name: "the server times out and goes on deleting", err: apierrors.NewServerTimeout(pods, "delete", 0)},
		{name: "the request times out", err: apierrors.NewTimeoutError("deleting", 0)},
		{name: "no pods to delete", err: apierrors.NewNotFound(pods, "")},
		{name: "anything else stops the run", err: apierrors.NewForbidden(pods, "", errors.New("no")), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset(&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "qps"}})
			cs.PrependReactor("delete-collection", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, tt.err
			})
			err := deleteNamespace(context.Background(), cs, "qps")
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("deleteNamespace() = %v, want an error: %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "qps", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("the namespace is still there (get: %v)", err)
			}
		})
	}
}
