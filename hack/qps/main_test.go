package main

import (
	"bytes"
	"strings"
	"testing"
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
	} {
		for _, want := range wants {
			if !strings.Contains(lines[2+i], want) {
				t.Errorf("row %d = %q, want it to contain %q", i, lines[2+i], want)
			}
		}
	}
}
