package compat

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/version"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	basecompatibility "k8s.io/component-base/compatibility"
)

var range137 = RangeFor(version.MustParse("1.37.2"))

func TestRangeFor(t *testing.T) {
	if got := range137.String(); got != "1.34 to 1.37" {
		t.Errorf("RangeFor(1.37.2) = %s, want 1.34 to 1.37", got)
	}
}

// The oldest minor of the range must be exactly what component-base lets a
// binary emulate, or a server at the edge would get a version cosched then
// refuses to run with.
func TestEmulationFloorMatchesUpstream(t *testing.T) {
	ev := basecompatibility.NewEffectiveVersion(version.MustParse("1.37.2"), false,
		range137.Oldest, range137.Oldest) // the floors apiserver/pkg/util/compatibility gives 1.37
	for _, tc := range []struct {
		emulate string
		valid   bool
	}{
		{"1.37", true}, {"1.36", true}, {"1.34", true}, {"1.33", false}, {"1.38", false},
	} {
		ev.SetEmulationVersion(version.MustParse(tc.emulate))
		if errs := ev.Validate(); (len(errs) == 0) != tc.valid {
			t.Errorf("emulating %s from 1.37: errors %v, want valid=%t", tc.emulate, errs, tc.valid)
		}
	}
	// And the floor is the one the real build computes from its version.
	if got := RangeFor(binaryVersion()); !got.Binary.EqualTo(version.MustParse("1.37")) {
		t.Errorf("binary version = %s, want 1.37 (k8s.io/kubernetes in go.mod)", got.Binary)
	}
}

func TestParseServerVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		info    *apimachineryversion.Info
		serves  string
		str     string
		wantErr string
	}{
		{name: "release", info: &apimachineryversion.Info{Major: "1", Minor: "36", GitVersion: "v1.36.3"}, serves: "1.36", str: "v1.36.3"},
		{name: "provider minor with plus", info: &apimachineryversion.Info{Major: "1", Minor: "35+", GitVersion: "v1.35.4-gke.1200"}, serves: "1.35", str: "v1.35.4-gke.1200"},
		{name: "server that emulates an older release",
			info:   &apimachineryversion.Info{Major: "1", Minor: "37", GitVersion: "v1.37.2", EmulationMajor: "1", EmulationMinor: "34"},
			serves: "1.34", str: "v1.37.2 emulating 1.34"},
		{name: "emulation equal to its own", info: &apimachineryversion.Info{Major: "1", Minor: "37", GitVersion: "v1.37.2", EmulationMajor: "1", EmulationMinor: "37"}, serves: "1.37", str: "v1.37.2"},
		{name: "only gitVersion", info: &apimachineryversion.Info{GitVersion: "v1.34.4"}, serves: "1.34", str: "v1.34.4"},
		{name: "nothing usable", info: &apimachineryversion.Info{GitVersion: "v0.0.0-master+$Format:%H$"}, wantErr: "cannot tell the API server's release"},
		{name: "no answer", info: nil, wantErr: "sent no version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseServerVersion(tc.info)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Serves.String() != tc.serves || got.String() != tc.str {
				t.Errorf("got serves %s, string %q; want %s, %q", got.Serves, got.String(), tc.serves, tc.str)
			}
		})
	}
}

func server(v string) ServerVersion {
	return ServerVersion{GitVersion: "v" + v, Serves: version.MustParse(v).WithPatch(0)}
}

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		server      string
		emulate     string // "" = run as the binary
		warning     string
		errContains []string
	}{
		{server: "1.33.7", errContains: []string{"v1.33.7", "older than cosched supports: 1.34 to 1.37"}},
		{server: "1.34.4", emulate: "1.34"},
		{server: "1.35.4", emulate: "1.35"},
		{server: "1.36.3", emulate: "1.36"},
		{server: "1.37.0", emulate: ""},
		{server: "1.38.1", warning: "one minor newer"},
		{server: "1.39.0", errContains: []string{"v1.39.0", "newer than cosched supports: 1.34 to 1.37"}},
		{server: "2.0.0", errContains: []string{"newer than cosched supports"}},
	} {
		t.Run(tc.server, func(t *testing.T) {
			got, err := Choose(server(tc.server), range137)
			if len(tc.errContains) > 0 {
				if err == nil {
					t.Fatalf("no error, want one containing %q", tc.errContains)
				}
				for _, s := range tc.errContains {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			emulate := ""
			if got.Emulate != nil {
				emulate = got.Emulate.String()
			}
			if emulate != tc.emulate {
				t.Errorf("emulate = %q, want %q", emulate, tc.emulate)
			}
			if !strings.Contains(got.Warning, tc.warning) || (tc.warning == "" && got.Warning != "") {
				t.Errorf("warning = %q, want %q", got.Warning, tc.warning)
			}
		})
	}
}

func TestKubeEmulatedVersion(t *testing.T) {
	for _, tc := range []struct {
		values  []string
		want    string
		wantErr bool
	}{
		{values: nil, want: ""},
		{values: []string{"1.36"}, want: "1.36"},
		{values: []string{"kube=1.35"}, want: "1.35"},
		{values: []string{"wardle=1.2", "kube=1.34"}, want: "1.34"},
		{values: []string{"wardle=1.2,kube=1.34"}, want: "1.34"},
		{values: []string{"wardle=1.2"}, want: ""},
		{values: []string{"1.34", "kube=1.36"}, want: "1.36"}, // the last wins, as in the registry
		{values: []string{"1.36.3"}, want: "1.36"},            // the registry reads it as 1.36 too
		{values: []string{"latest"}, wantErr: true},
	} {
		got, err := KubeEmulatedVersion(tc.values)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: error %v, want error=%t", tc.values, err, tc.wantErr)
			continue
		}
		s := ""
		if got != nil {
			s = got.String()
		}
		if s != tc.want {
			t.Errorf("%q: got %q, want %q", tc.values, s, tc.want)
		}
	}
}

func TestCheckUserEmulation(t *testing.T) {
	for _, tc := range []struct {
		user, server string
		warns        bool
	}{
		{"1.37", "1.36.3", true},
		{"1.36", "1.36.3", false},
		{"1.34", "1.36.3", false},
		{"", "1.34.4", false},
	} {
		var user *version.Version
		if tc.user != "" {
			user = version.MustParse(tc.user)
		}
		w := CheckUserEmulation(user, server(tc.server))
		if (w != "") != tc.warns {
			t.Errorf("user %q, server %s: warning %q, want warning=%t", tc.user, tc.server, w, tc.warns)
		}
		if w != "" && !strings.Contains(w, "remove the flag") {
			t.Errorf("warning %q does not say what to do", w)
		}
	}
}
