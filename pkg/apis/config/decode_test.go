package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func TestDecode(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	defaults := &CoschedGangArgs{
		PermitWaitingTimeSeconds: ptr.To[int64](60),
		PodGroupBackoffSeconds:   ptr.To[int64](5),
		ManagePodGroupStatus:     ptr.To(true),
		GangPreemption:           ptr.To(true),
		StatusLeaseNamespace:     "kube-system",
		PlacementStrategy:        PlacementAtomic,
		WholeGroupPlanMinMembers: ptr.To[int32](100),
	}
	tests := []struct {
		name    string
		obj     runtime.Object
		want    *CoschedGangArgs
		wantErr string
	}{
		{name: "no args gives defaults", obj: nil, want: defaults},
		{name: "empty unknown gives defaults", obj: &runtime.Unknown{}, want: defaults},
		{
			name: "json args",
			obj:  &runtime.Unknown{Raw: []byte(`{"permitWaitingTimeSeconds":10,"podGroupBackoffSeconds":0,"placementStrategy":"MemberByMember"}`)},
			want: &CoschedGangArgs{
				PermitWaitingTimeSeconds: ptr.To[int64](10),
				PodGroupBackoffSeconds:   ptr.To[int64](0),
				ManagePodGroupStatus:     ptr.To(true),
				GangPreemption:           ptr.To(true),
				StatusLeaseNamespace:     "kube-system",
				PlacementStrategy:        PlacementMemberByMember,
				WholeGroupPlanMinMembers: ptr.To[int32](100),
			},
		},
		{
			name: "yaml args with apiVersion and kind",
			obj: &runtime.Unknown{ContentType: runtime.ContentTypeYAML, Raw: []byte(
				"apiVersion: kubescheduler.config.k8s.io/v1\nkind: CoschedGangArgs\nmanagePodGroupStatus: false\nstatusLeaseNamespace: cosched-system\n")},
			want: &CoschedGangArgs{
				TypeMeta:                 metav1.TypeMeta{APIVersion: "kubescheduler.config.k8s.io/v1", Kind: "CoschedGangArgs"},
				PermitWaitingTimeSeconds: ptr.To[int64](60),
				PodGroupBackoffSeconds:   ptr.To[int64](5),
				ManagePodGroupStatus:     ptr.To(false),
				GangPreemption:           ptr.To(true),
				StatusLeaseNamespace:     "cosched-system",
				PlacementStrategy:        PlacementAtomic,
				WholeGroupPlanMinMembers: ptr.To[int32](100),
			},
		},
		{name: "typed args are copied and defaulted", obj: &CoschedGangArgs{PermitWaitingTimeSeconds: ptr.To[int64](30)},
			want: func() *CoschedGangArgs {
				a := defaults.DeepCopy()
				a.PermitWaitingTimeSeconds = ptr.To[int64](30)
				return a
			}()},
		{name: "misspelled field is an error", obj: &runtime.Unknown{Raw: []byte(`{"permitWaitingTimeSecond":10}`)},
			wantErr: `unknown field "permitWaitingTimeSecond"`},
		{name: "zero permit wait", obj: &runtime.Unknown{Raw: []byte(`{"permitWaitingTimeSeconds":0}`)},
			wantErr: "args.permitWaitingTimeSeconds: Invalid value: 0: must be between 1 and 900"},
		{name: "permit wait above the framework cap", obj: &runtime.Unknown{Raw: []byte(`{"permitWaitingTimeSeconds":901}`)},
			wantErr: "args.permitWaitingTimeSeconds: Invalid value: 901"},
		{name: "negative backoff", obj: &runtime.Unknown{Raw: []byte(`{"podGroupBackoffSeconds":-1}`)},
			wantErr: "args.podGroupBackoffSeconds: Invalid value: -1"},
		{name: "bad lease namespace", obj: &runtime.Unknown{Raw: []byte(`{"statusLeaseNamespace":"Not_A_Namespace"}`)},
			wantErr: "args.statusLeaseNamespace: Invalid value: \"Not_A_Namespace\""},
		{name: "unknown strategy", obj: &runtime.Unknown{Raw: []byte(`{"placementStrategy":"Spread"}`)},
			wantErr: `args.placementStrategy: Unsupported value: "Spread"`},
		{name: "negative whole-group plan size", obj: &runtime.Unknown{Raw: []byte(`{"wholeGroupPlanMinMembers":-1}`)},
			wantErr: "args.wholeGroupPlanMinMembers: Invalid value: -1: must be 0 (off) or more"},
		{name: "whole-group plans off", obj: &runtime.Unknown{Raw: []byte(`{"wholeGroupPlanMinMembers":0}`)},
			want: func() *CoschedGangArgs {
				a := defaults.DeepCopy()
				a.WholeGroupPlanMinMembers = ptr.To[int32](0)
				return a
			}()},
		{name: "gang preemption off", obj: &runtime.Unknown{Raw: []byte(`{"gangPreemption":false}`)},
			want: func() *CoschedGangArgs {
				a := defaults.DeepCopy()
				a.GangPreemption = ptr.To(false)
				return a
			}()},
		{name: "wrong object type", obj: &runtime.Unknown{Raw: []byte(`[1,2]`)}, wantErr: "decoding args"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.obj, field.NewPath("args"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode() unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decode() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultLeaseNamespaceFromEnvironment(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "cosched-system")
	got, err := Decode(nil, field.NewPath("args"))
	if err != nil {
		t.Fatal(err)
	}
	if got.StatusLeaseNamespace != "cosched-system" {
		t.Errorf("StatusLeaseNamespace = %q, want the pod's namespace", got.StatusLeaseNamespace)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"permitWaitingTimeSeconds":10}`))
	f.Add([]byte("placementStrategy: Atomic\n"))
	f.Add([]byte(`{"podGroupBackoffSeconds":-5,"statusLeaseNamespace":""}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		args, err := Decode(&runtime.Unknown{Raw: raw}, field.NewPath("args"))
		if err != nil {
			return
		}
		// Whatever decodes must be complete and valid.
		if errs := Validate(field.NewPath("args"), args); len(errs) > 0 {
			t.Fatalf("Decode accepted args that fail validation: %v", errs)
		}
	})
}
