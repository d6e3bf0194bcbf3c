package preemption

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func keys(units []*Unit) []string {
	out := []string{}
	for _, u := range units {
		out = append(out, u.Key)
	}
	return out
}

func TestSelect(t *testing.T) {
	// fits: the freed room (one unit of room per pod) must reach want.
	roomFits := func(want int) func([]*Unit) bool {
		return func(v []*Unit) bool {
			n := 0
			for _, u := range v {
				n += len(u.Pods)
			}
			return n >= want
		}
	}
	tests := []struct {
		name       string
		candidates []*Unit
		fits       func([]*Unit) bool
		want       []string
		wantOK     bool
	}{
		{
			name:       "not enough even with every candidate: nothing taken",
			candidates: []*Unit{unit("a", 1, false, 1, t0), unit("b", 1, false, 1, t0)},
			fits:       roomFits(3),
		},
		{
			name:       "lowest priority taken, the rest reprieved",
			candidates: []*Unit{unit("high", 5, false, 2, t0), unit("low", 1, false, 2, t0), unit("mid", 3, false, 2, t0)},
			fits:       roomFits(2),
			want:       []string{"low"},
			wantOK:     true,
		},
		{
			name:       "plain pods before a gang of the same priority",
			candidates: []*Unit{unit("gang", 1, true, 2, t0), unit("p1", 1, false, 1, t0), unit("p2", 1, false, 1, t0)},
			fits:       roomFits(2),
			want:       []string{"p1", "p2"},
			wantOK:     true,
		},
		{
			name:       "a gang when plain pods are not enough",
			candidates: []*Unit{unit("gang", 1, true, 3, t0), unit("p1", 1, false, 1, t0)},
			fits:       roomFits(3),
			want:       []string{"gang"},
			wantOK:     true,
		},
		{
			name:       "fits without anyone",
			candidates: []*Unit{unit("a", 1, false, 1, t0)},
			fits:       roomFits(0),
			want:       []string{},
			wantOK:     true,
		},
		{
			name:       "only a specific unit helps",
			candidates: []*Unit{unit("a", 1, false, 1, t0), unit("needed", 4, true, 2, t0), unit("c", 2, false, 1, t0)},
			fits: func(v []*Unit) bool {
				for _, u := range v {
					if u.Key == "needed" {
						return true
					}
				}
				return false
			},
			want:   []string{"needed"},
			wantOK: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Select(tc.candidates, tc.fits)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				if got != nil {
					t.Errorf("victims %v, want none", keys(got))
				}
				return
			}
			if diff := cmp.Diff(tc.want, keys(got)); diff != "" {
				t.Errorf("victims (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCostLess(t *testing.T) {
	tests := []struct {
		name string
		a, b Cost
		want bool
	}{
		{"lower top priority wins", Cost{TopPriority: 1, Gangs: 3, Pods: 9}, Cost{TopPriority: 2}, true},
		{"fewer gangs at equal priority", Cost{TopPriority: 1, Gangs: 0, Pods: 5}, Cost{TopPriority: 1, Gangs: 1, Pods: 1}, true},
		{"fewer pods last", Cost{TopPriority: 1, Gangs: 1, Pods: 2}, Cost{TopPriority: 1, Gangs: 1, Pods: 3}, true},
		{"equal is not less", Cost{TopPriority: 1, Gangs: 1, Pods: 2}, Cost{TopPriority: 1, Gangs: 1, Pods: 2}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Less(tc.b); got != tc.want {
				t.Errorf("Less = %v, want %v", got, tc.want)
			}
		})
	}
	got := CostOf([]*Unit{unit("a", 3, true, 2, t0), unit("b", 1, false, 1, t0)})
	if want := (Cost{TopPriority: 3, Gangs: 1, Pods: 3}); got != want {
		t.Errorf("CostOf = %+v, want %+v", got, want)
	}
}
