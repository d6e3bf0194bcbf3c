package preemption

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
)

func TestDecodeArgs(t *testing.T) {
	tests := []struct {
		name    string
		obj     runtime.Object
		want    *schedconfig.DefaultPreemptionArgs
		wantErr string
	}{
		{name: "no args: DefaultPreemption's defaults", want: &schedconfig.DefaultPreemptionArgs{MinCandidateNodesPercentage: 10, MinCandidateNodesAbsolute: 100}},
		{name: "yaml args", obj: &runtime.Unknown{Raw: []byte("minCandidateNodesPercentage: 20\nminCandidateNodesAbsolute: 5\n")},
			want: &schedconfig.DefaultPreemptionArgs{MinCandidateNodesPercentage: 20, MinCandidateNodesAbsolute: 5}},
		{name: "misspelled field", obj: &runtime.Unknown{Raw: []byte(`{"minCandidateNodes":1}`)}, wantErr: `unknown field "minCandidateNodes"`},
		{name: "percentage out of range", obj: &runtime.Unknown{Raw: []byte(`{"minCandidateNodesPercentage":101}`)}, wantErr: "minCandidateNodesPercentage"},
		{name: "both zero", obj: &runtime.Unknown{Raw: []byte(`{"minCandidateNodesPercentage":0,"minCandidateNodesAbsolute":0}`)}, wantErr: "cannot be zero at the same time"},
		{name: "typed args", obj: &schedconfig.DefaultPreemptionArgs{MinCandidateNodesPercentage: 1, MinCandidateNodesAbsolute: 1},
			want: &schedconfig.DefaultPreemptionArgs{MinCandidateNodesPercentage: 1, MinCandidateNodesAbsolute: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeArgs(tc.obj)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}
