package performance

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
)

// profileDir, when set, makes every workload write, for its measured phase
// only (from the end of its node creation to its end), a CPU profile and two
// allocation profiles (compare them with go tool pprof -base):
//
//	<dir>/<workload>.cpu.pprof
//	<dir>/<workload>.allocs-start.pprof, <dir>/<workload>.allocs.pprof
//
// The harness's own -perf-cpuprofile covers node creation too, which at 5000
// nodes hides the part that differs between test cases.
var profileDir = flag.String("cosched-profile-dir", "",
	"write CPU and allocation profiles of each workload's measured phase into this folder")

// phaseProfile is the profiling of one workload's measured phase.
type phaseProfile struct {
	base string
	cpu  *os.File
}

// startPhaseProfile starts profiling, or returns nil when -cosched-profile-dir
// is not set. Workloads run one after another, so one CPU profile at a time
// is enough.
func startPhaseProfile(workload string) (*phaseProfile, error) {
	if *profileDir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(*profileDir, 0o750); err != nil {
		return nil, err
	}
	p := &phaseProfile{base: filepath.Join(*profileDir, unsafeChars.ReplaceAllString(workload, "_"))}
	if err := writeAllocs(p.base + ".allocs-start.pprof"); err != nil {
		return nil, err
	}
	f, err := os.Create(p.base + ".cpu.pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting the CPU profile: %w", err)
	}
	p.cpu = f
	return p, nil
}

func (p *phaseProfile) stop() error {
	if p == nil {
		return nil
	}
	pprof.StopCPUProfile()
	if err := p.cpu.Close(); err != nil {
		return err
	}
	return writeAllocs(p.base + ".allocs.pprof")
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	// Up-to-date counts need a completed GC cycle.
	runtime.GC()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// apiWrites counts the API server's write requests by verb and resource
// ("PATCH pods/status"), read from the in-process API server's
// apiserver_request_total. Node creation is not a write the scheduler makes,
// so callers take the difference of two counts around the measured phase.
func apiWrites() map[string]float64 {
	out := map[string]float64{}
	_ = eachCounter(func(name string, labels map[string]string, value float64) {
		if name != "apiserver_request_total" {
			return
		}
		switch labels["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		default:
			return
		}
		resource := labels["resource"]
		if sub := labels["subresource"]; sub != "" {
			resource += "/" + sub
		}
		out[labels["verb"]+" "+resource] += value
	})
	return out
}

// writesSince returns the writes counted since start, as counter names for
// cosched:Counters: "writes_PATCH_pods/status".
func writesSince(start map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range apiWrites() {
		if d := v - start[k]; d > 0 {
			out["writes_"+strings.ReplaceAll(k, " ", "_")] = d
		}
	}
	return out
}
