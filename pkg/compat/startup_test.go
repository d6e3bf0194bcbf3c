package compat

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/util/version"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/featuregate"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

// TestFit runs the start-up decision on kube-scheduler's real flag set, as
// the command parses it, with the server's /version given.
func TestFit(t *testing.T) {
	v := func(major, minor, git string) *apimachineryversion.Info {
		return &apimachineryversion.Info{Major: major, Minor: minor, GitVersion: git}
	}
	unreachable := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	for _, tc := range []struct {
		name       string
		args       []string
		info       *apimachineryversion.Info
		fetchErr   error
		wantEmul   []string // --emulated-version afterwards
		wantSource string
		wantErr    string
		wantWarn   string
		noFetch    bool
	}{
		{name: "older server: emulate it", info: v("1", "34", "v1.34.4"), wantEmul: []string{"1.34"}, wantSource: "server"},
		{name: "1.36 server", info: v("1", "36", "v1.36.3"), wantEmul: []string{"1.36"}, wantSource: "server"},
		{name: "same release: nothing to emulate", info: v("1", "37", "v1.37.2"), wantEmul: []string{}, wantSource: "binary"},
		{name: "server one minor newer", info: v("1", "38", "v1.38.0"), wantEmul: []string{}, wantWarn: "one minor newer"},
		{name: "server too old", info: v("1", "33", "v1.33.7"), wantErr: "the API server is Kubernetes v1.33.7, older than cosched supports: 1.34 to 1.37"},
		{name: "server too new", info: v("1", "40", "v1.40.0"), wantErr: "newer than cosched supports"},
		{name: "no /version", fetchErr: unreachable, wantErr: "cannot read the version of the API server"},
		{name: "user's --emulated-version=VALUE wins", args: []string{"--emulated-version=1.35"}, info: v("1", "34", "v1.34.4"),
			wantEmul: []string{"1.35"}, wantSource: "--emulated-version", wantWarn: "newer than the API server"},
		{name: "user's --emulated-version VALUE wins", args: []string{"--emulated-version", "kube=1.34"}, info: v("1", "36", "v1.36.3"),
			wantEmul: []string{"kube=1.34"}, wantSource: "--emulated-version"},
		{name: "user's --feature-gates: no emulation, a warning", args: []string{"--feature-gates", "DRADeviceTaintRules=false"}, info: v("1", "36", "v1.36.3"),
			wantEmul: []string{}, wantSource: "binary", wantWarn: "--feature-gates is set"},
		{name: "user's flags and no /version: run", args: []string{"--emulated-version=1.36"}, fetchErr: unreachable,
			wantEmul: []string{"1.36"}, wantWarn: "cannot read the API server's version"},
		{name: "user's flags and a server too old: run", args: []string{"--feature-gates=DRADeviceTaintRules=false"}, info: v("1", "33", "v1.33.7"),
			wantEmul: []string{}, wantWarn: "older than cosched supports"},
		{name: "--version asks nothing", args: []string{"--version"}, noFetch: true, wantEmul: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := app.NewSchedulerCommand()
			s := New()
			s.Install(cmd)
			fetched := false
			s.fetchVersion = func(context.Context, *pflag.FlagSet) (*apimachineryversion.Info, string, error) {
				fetched = true
				return tc.info, "https://127.0.0.1:1", tc.fetchErr
			}
			fs := cmd.Flags()
			// The flag writes into kube-scheduler's process-wide registry,
			// which every command of this test shares.
			if err := fs.Lookup("emulated-version").Value.(pflag.SliceValue).Replace(nil); err != nil {
				t.Fatal(err)
			}
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := s.fit(context.Background(), fs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fetched == tc.noFetch {
				t.Errorf("asked the server: %t, want %t", fetched, !tc.noFetch)
			}
			got, _ := fs.GetStringSlice("emulated-version")
			if strings.Join(got, ",") != strings.Join(tc.wantEmul, ",") {
				t.Errorf("--emulated-version = %q, want %q", got, tc.wantEmul)
			}
			if tc.wantSource != "" && s.source != tc.wantSource {
				t.Errorf("chosen by %q, want %q", s.source, tc.wantSource)
			}
			warnings := strings.Join(s.warnings, "\n")
			if tc.wantWarn == "" && warnings != "" || !strings.Contains(warnings, tc.wantWarn) {
				t.Errorf("warnings %q, want %q", warnings, tc.wantWarn)
			}
		})
	}
}

func TestRetryVersion(t *testing.T) {
	ok := &apimachineryversion.Info{Major: "1", Minor: "34"}
	calls := 0
	info, err := RetryVersion(context.Background(), func(context.Context) (*apimachineryversion.Info, error) {
		calls++
		if calls < 3 {
			return nil, errors.New("connection refused")
		}
		return ok, nil
	}, 10*time.Second)
	if err != nil || info != ok || calls != 3 {
		t.Errorf("after two failures: info %v, err %v, calls %d; want the answer on the third call", info, err, calls)
	}

	start := time.Now()
	calls = 0
	_, err = RetryVersion(context.Background(), func(context.Context) (*apimachineryversion.Info, error) {
		calls++
		return nil, errors.New("connection refused")
	}, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "2s") {
		t.Errorf("error = %v, want the last error and the time spent", err)
	}
	if took := time.Since(start); took > 3*time.Second || calls < 2 {
		t.Errorf("gave up after %s and %d calls, want within the 2s budget and more than one call", took, calls)
	}
}

func TestChangedGates(t *testing.T) {
	specs := map[featuregate.Feature]featuregate.VersionedSpecs{
		"Old": {{Version: version.MustParse("1.30"), Default: true, PreRelease: featuregate.GA}},
		"New": {
			{Version: version.MustParse("1.35"), Default: false, PreRelease: featuregate.Beta},
			{Version: version.MustParse("1.37"), Default: true, PreRelease: featuregate.GA},
		},
		"Off": {{Version: version.MustParse("1.36"), Default: false, PreRelease: featuregate.Alpha}},
	}
	binary := featuregate.NewVersionedFeatureGate(version.MustParse("1.37"))
	if err := binary.AddVersioned(specs); err != nil {
		t.Fatal(err)
	}
	emulated := binary.DeepCopy()
	if err := emulated.SetEmulationVersion(version.MustParse("1.36")); err != nil {
		t.Fatal(err)
	}
	if err := emulated.Set("Off=true"); err != nil {
		t.Fatal(err)
	}
	got := ChangedGates(binary, emulated)
	if want := []string{"New=false", "Off=true"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ChangedGates = %q, want %q", got, want)
	}
}

func TestUnsyncedTypes(t *testing.T) {
	type local struct{}
	got := UnsyncedTypes(map[reflect.Type]bool{
		reflect.TypeFor[*corev1.Pod]():                 true,
		reflect.TypeFor[*resourcev1.DeviceTaintRule](): false,
		reflect.TypeFor[*local]():                      false,
	})
	want := []string{"*compat.local", "resource.k8s.io/v1, Kind=DeviceTaintRule"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UnsyncedTypes = %q, want %q", got, want)
	}
}

// syncer reports the state of informers as they are at each call.
type syncer struct{ state func() map[reflect.Type]bool }

func (s syncer) WaitForCacheSyncWithContext(context.Context) cache.SyncResult {
	return cache.SyncResult{Synced: s.state()}
}

func TestWatchCacheSync(t *testing.T) {
	start := time.Now()
	pods, rules := reflect.TypeFor[*corev1.Pod](), reflect.TypeFor[*resourcev1.DeviceTaintRule]()
	for _, tc := range []struct {
		name      string
		state     func() map[reflect.Type]bool
		wantWarns int
		atLeast   bool // a loaded machine may fit fewer rounds in the time
		wantLog   string
	}{
		{name: "synced in time: silent", state: func() map[reflect.Type]bool { return map[reflect.Type]bool{pods: true} }},
		{name: "never started: silent", state: func() map[reflect.Type]bool { return nil }},
		{name: "never synced: names the informer, repeats", wantWarns: 2, atLeast: true, wantLog: "resource.k8s.io/v1, Kind=DeviceTaintRule",
			state: func() map[reflect.Type]bool { return map[reflect.Type]bool{pods: true, rules: false} }},
		{name: "synced late: says so", wantWarns: 1, wantLog: "no longer held back",
			state: func() map[reflect.Type]bool {
				return map[reflect.Type]bool{pods: true, rules: time.Since(start) > 150*time.Millisecond}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start = time.Now()
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			ctx, cancel := context.WithTimeout(klog.NewContext(context.Background(), logger), 350*time.Millisecond)
			defer cancel()
			WatchCacheSync(ctx, syncer{tc.state}, 100*time.Millisecond, 100*time.Millisecond, "do something")
			out := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
			if n := strings.Count(out, "Informer caches have not synced"); n != tc.wantWarns && !(tc.atLeast && n > tc.wantWarns) {
				t.Errorf("%d warnings, want %d:\n%s", n, tc.wantWarns, out)
			}
			if !strings.Contains(out, tc.wantLog) {
				t.Errorf("log does not contain %q:\n%s", tc.wantLog, out)
			}
		})
	}
}
