// Package compat makes cosched, a kube-scheduler built on one Kubernetes
// release, run against the API servers of the releases before it: it reads
// the server's version at start, runs the scheduler with the compatibility
// version (--emulated-version) of that server's minor, and says so when a
// cache of the scheduler never syncs because the server lacks its API.
//
// Why emulation: kube-scheduler starts an informer for every API its enabled
// features use and schedules nothing until all of them have synced. Features
// that are on by default in the binary's release (DRADeviceTaintRules in
// 1.37) use APIs an older server does not serve, so the scheduler waits
// forever. Emulating the server's minor turns every feature gate to that
// release's default, which is exactly the set of APIs the server serves by
// default; upstream's component-base/compatibility allows it down to three
// minors back.
package compat

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
)

// EmulationWindow is how many minors back a Kubernetes component can emulate:
// component-base/compatibility's floor for the emulated version is the binary
// minor - 3 (TestEmulationFloorMatchesUpstream keeps the two in step).
const EmulationWindow = 3

// Range is the span of API server minors a binary supports.
type Range struct {
	// Oldest is the oldest minor it can emulate.
	Oldest *version.Version
	// Binary is the release it is built on.
	Binary *version.Version
}

// RangeFor is the supported range of a binary built on Kubernetes binary.
func RangeFor(binary *version.Version) Range {
	b := version.MajorMinor(binary.Major(), binary.Minor())
	return Range{Oldest: b.SubtractMinor(EmulationWindow), Binary: b}
}

func (r Range) String() string {
	return fmt.Sprintf("%s to %s", r.Oldest, r.Binary)
}

// ServerVersion is what an API server reports on /version.
type ServerVersion struct {
	// GitVersion is the release as reported, e.g. v1.36.3 (for messages).
	GitVersion string
	// Serves is the major.minor whose APIs the server serves by default: its
	// emulated version when it emulates one, else its own.
	Serves *version.Version
}

func (s ServerVersion) String() string {
	if s.GitVersion == "" {
		return s.Serves.String()
	}
	if fmt.Sprintf("%d.%d", s.Serves.Major(), s.Serves.Minor()) == majorMinorOf(s.GitVersion) {
		return s.GitVersion
	}
	return fmt.Sprintf("%s emulating %s", s.GitVersion, s.Serves)
}

// majorMinorOf returns "1.36" for "v1.36.3", or "" when it cannot tell.
func majorMinorOf(git string) string {
	v, err := version.ParseGeneric(git)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d.%d", v.Major(), v.Minor())
}

// ParseServerVersion reads /version. A server that emulates an older release
// (kube-apiserver --emulated-version) serves that release's APIs, so its
// emulationMajor/Minor count before its own major/minor; providers append
// "+" to the minor (GKE's "28+"); gitVersion is the last resort.
func ParseServerVersion(info *apimachineryversion.Info) (ServerVersion, error) {
	if info == nil {
		return ServerVersion{}, fmt.Errorf("the API server sent no version")
	}
	sv := ServerVersion{GitVersion: info.GitVersion}
	for _, pair := range [][2]string{{info.EmulationMajor, info.EmulationMinor}, {info.Major, info.Minor}} {
		if v, ok := parseMajorMinor(pair[0], pair[1]); ok {
			sv.Serves = v
			return sv, nil
		}
	}
	if v, err := version.ParseGeneric(info.GitVersion); err == nil && v.Major() > 0 {
		sv.Serves = version.MajorMinor(v.Major(), v.Minor())
		return sv, nil
	}
	return ServerVersion{}, fmt.Errorf("cannot tell the API server's release from its /version (major %q, minor %q, gitVersion %q)",
		info.Major, info.Minor, info.GitVersion)
}

func parseMajorMinor(major, minor string) (*version.Version, bool) {
	ma, err1 := strconv.ParseUint(strings.TrimSpace(major), 10, 32)
	mi, err2 := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(minor), "+"), 10, 32)
	if err1 != nil || err2 != nil || ma == 0 {
		return nil, false
	}
	return version.MajorMinor(uint(ma), uint(mi)), true
}

// Choice is what cosched runs as against a server.
type Choice struct {
	// Emulate is the version to pass as --emulated-version; nil runs the
	// binary's own release.
	Emulate *version.Version
	// Warning, when set, is logged at start: the choice runs, but the user
	// should know (a server one minor newer than the binary).
	Warning string
}

// Choose picks the emulated version for a server: its own minor within the
// supported range. A server one minor newer than the binary is within
// Kubernetes' version skew policy (kube-scheduler may be one minor older than
// kube-apiserver, the state during a control-plane upgrade): it runs as the
// binary, with a warning. Anything else outside the range is an error that
// names the server's version and the range.
func Choose(server ServerVersion, r Range) (Choice, error) {
	s := server.Serves
	switch {
	case s.LessThan(r.Oldest):
		return Choice{}, fmt.Errorf("the API server is Kubernetes %s, older than cosched supports: %s "+
			"(cosched is built on Kubernetes %s and can emulate at most %d minors back); upgrade the control plane, "+
			"or run a cosched release built for Kubernetes %s", server, r, r.Binary, EmulationWindow, s)
	case s.LessThan(r.Binary):
		return Choice{Emulate: version.MajorMinor(s.Major(), s.Minor())}, nil
	case s.EqualTo(r.Binary):
		return Choice{}, nil
	case s.EqualTo(r.Binary.AddMinor(1)):
		return Choice{Warning: fmt.Sprintf("the API server is Kubernetes %s, one minor newer than cosched (%s); "+
			"that is within the version skew policy, but upgrade cosched to a release built for %s", server, r.Binary, s)}, nil
	default:
		return Choice{}, fmt.Errorf("the API server is Kubernetes %s, newer than cosched supports: %s "+
			"(and one minor newer, %s, during an upgrade); run a cosched release built for Kubernetes %s", server, r, r.Binary.AddMinor(1), s)
	}
}

// KubeEmulatedVersion returns the kube component's version in the values of
// --emulated-version ("1.36" or "kube=1.36", comma-separated or repeated),
// or nil when they name none.
func KubeEmulatedVersion(values []string) (*version.Version, error) {
	var found *version.Version
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			component, ver, ok := strings.Cut(item, "=")
			if !ok {
				component, ver = "kube", item
			}
			if strings.TrimSpace(component) != "kube" {
				continue
			}
			parsed, err := version.ParseMajorMinor(strings.TrimSpace(ver))
			if err != nil {
				return nil, fmt.Errorf("--emulated-version %q: %w", item, err)
			}
			found = parsed
		}
	}
	return found, nil
}

// CheckUserEmulation says what is wrong with a user's --emulated-version for
// a server; "" when nothing is. Newer than the server is a warning, not an
// error: the user may have turned on the newer APIs in the server, and the
// flag is theirs to win; if they have not, the caches of those APIs never
// sync and the cache watch names them.
func CheckUserEmulation(user *version.Version, server ServerVersion) string {
	if user == nil || !server.Serves.LessThan(user) {
		return ""
	}
	return fmt.Sprintf("--emulated-version=%s is newer than the API server (Kubernetes %s): the scheduler uses the APIs "+
		"of %s's default features, and unless the server serves them its caches never sync and nothing is scheduled; "+
		"remove the flag to let cosched emulate %s", user, server, user, server.Serves)
}
