package preemption

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	fwk "k8s.io/kube-scheduler/framework"
)

// fakeWaiting is a pod waiting at Permit that records its rejection.
type fakeWaiting struct {
	fwk.WaitingPod
	rejected string
}

func (w *fakeWaiting) Reject(_, msg string) bool { w.rejected = msg; return true }

func TestEvict(t *testing.T) {
	tests := []struct {
		name string
		// refuse names pods whose eviction a budget refuses.
		refuse []string
		// fail names pods whose eviction fails with a server error.
		fail        []string
		force       bool
		waiting     []string
		units       []*Unit
		wantEvicted []string
		wantDeleted []string
		wantErr     string
	}{
		{
			name:  "every pod of every unit evicted",
			units: []*Unit{UnitsOf([]*v1.Pod{pod("p", 1).Obj()})[0], UnitsOf([]*v1.Pod{gangPod("g-0", "g", 1).Obj(), gangPod("g-1", "g", 1).Obj()})[0]},
			// Gangs go first.
			wantEvicted: []string{"g-0", "g-1", "p"},
		},
		{
			name:        "a waiting member is rejected in memory",
			waiting:     []string{"g-1"},
			units:       UnitsOf([]*v1.Pod{gangPod("g-0", "g", 1).Obj(), gangPod("g-1", "g", 1).Obj()}),
			wantEvicted: []string{"g-0"},
		},
		{
			name:        "a gang member refused after its siblings went is deleted",
			refuse:      []string{"g-1"},
			units:       UnitsOf([]*v1.Pod{gangPod("g-0", "g", 1).Obj(), gangPod("g-1", "g", 1).Obj(), gangPod("g-2", "g", 1).Obj()}),
			wantEvicted: []string{"g-0", "g-2"},
			wantDeleted: []string{"g-1"},
		},
		{
			name:    "a refused first pod stops the preemption",
			refuse:  []string{"p"},
			units:   UnitsOf([]*v1.Pod{pod("p", 1).Obj()}),
			wantErr: "evicting ns/p",
		},
		{
			name:        "a failing later member of a gang is deleted, whatever the error",
			fail:        []string{"g-1"},
			units:       UnitsOf([]*v1.Pod{gangPod("g-0", "g", 1).Obj(), gangPod("g-1", "g", 1).Obj()}),
			wantEvicted: []string{"g-0"},
			wantDeleted: []string{"g-1"},
		},
		{
			name:        "force: even the first member of a broken gang is deleted",
			force:       true,
			refuse:      []string{"g-0"},
			units:       UnitsOf([]*v1.Pod{gangPod("g-0", "g", 1).Obj(), gangPod("g-1", "g", 1).Obj()}),
			wantEvicted: []string{"g-1"},
			wantDeleted: []string{"g-0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset()
			var mu sync.Mutex
			evicted, deleted := []string{}, []string{}
			client.PrependReactor("create", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
				if action.GetSubresource() != "eviction" {
					return false, nil, nil
				}
				name := action.(clienttesting.CreateAction).GetObject().(*policyv1.Eviction).Name
				for _, r := range tc.refuse {
					if r == name {
						return true, nil, apierrors.NewTooManyRequests("budget", 1)
					}
				}
				for _, f := range tc.fail {
					if f == name {
						return true, nil, apierrors.NewInternalError(errors.New("etcd hiccup"))
					}
				}
				mu.Lock()
				evicted = append(evicted, name)
				mu.Unlock()
				return true, nil, nil
			})
			client.PrependReactor("delete", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
				deleted = append(deleted, action.(clienttesting.DeleteAction).GetName())
				return true, nil, nil
			})
			waiting := map[types.UID]*fakeWaiting{}
			for _, w := range tc.waiting {
				waiting[types.UID(w)] = &fakeWaiting{}
			}
			recorder := events.NewFakeRecorder(100)
			e := &Evictor{
				Client:   client,
				Recorder: recorder,
				Waiting: func(uid types.UID) fwk.WaitingPod {
					if w, ok := waiting[uid]; ok {
						return w
					}
					return nil
				},
				PluginName: "test",
				Force:      tc.force,
			}
			by := pod("preemptor", 10).Obj()
			taken, err := e.Evict(context.Background(), tc.units, by, "to make room")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if !apierrors.IsTooManyRequests(errors.Unwrap(err)) {
					t.Errorf("err %v does not wrap the API error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := len(tc.wantEvicted) + len(tc.wantDeleted) + len(tc.waiting); len(taken) != want {
				t.Errorf("taken %d pods, want %d", len(taken), want)
			}
			if diff := cmp.Diff(tc.wantEvicted, evicted); diff != "" {
				t.Errorf("evicted (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDeleted, deleted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
			for name, w := range waiting {
				if !strings.Contains(w.rejected, "Preempted with all") {
					t.Errorf("waiting pod %s rejected with %q", name, w.rejected)
				}
			}
			if n := len(recorder.Events); n == 0 {
				t.Errorf("no events recorded")
			}
		})
	}
}
