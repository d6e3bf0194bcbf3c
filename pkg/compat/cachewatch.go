package compat

import (
	"context"
	"reflect"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// CacheSyncer is the part of an informer factory the watch needs.
type CacheSyncer interface {
	WaitForCacheSyncWithContext(ctx context.Context) cache.SyncResult
}

// WatchCacheSync warns, first after `after` and then every `every`, while
// informers of the factory have started but not synced: kube-scheduler waits
// for all of them before it schedules anything or takes its Lease, and its
// own log only has the reflector's "failed to list" lines, without saying that
// the scheduler as a whole is stuck on them. hint says what to do. It returns
// once every started informer has synced, or when ctx ends.
func WatchCacheSync(ctx context.Context, factory CacheSyncer, after, every time.Duration, hint string) {
	logger := klog.FromContext(ctx)
	start := time.Now()
	timer := time.NewTimer(after)
	defer timer.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		// A cancelled context makes the factory report its informers'
		// state as it is, without waiting.
		now, cancel := context.WithCancel(ctx)
		cancel()
		res := factory.WaitForCacheSyncWithContext(now)
		unsynced := UnsyncedTypes(res.Synced)
		switch {
		case len(res.Synced) > 0 && len(unsynced) == 0:
			if warned {
				logger.Info("Informer caches synced; the scheduler is no longer held back", "waited", time.Since(start).Round(time.Second))
			}
			return
		case len(unsynced) > 0:
			warned = true
			logger.Error(nil, "Informer caches have not synced: the scheduler schedules nothing and stays unready until they do",
				"unsynced", unsynced, "waited", time.Since(start).Round(time.Second), "hint", hint)
		}
		// No informer started yet (a scheduler that starts them only once
		// it leads): look again later.
		timer.Reset(every)
	}
}

// UnsyncedTypes names the informers that have not synced, sorted, by the
// group/version/kind of their objects where client-go's scheme knows it
// ("resource.k8s.io/v1, Kind=DeviceTaintRule"), else by Go type.
func UnsyncedTypes(synced map[reflect.Type]bool) []string {
	var names []string
	for t, ok := range synced {
		if !ok {
			names = append(names, typeName(t))
		}
	}
	slices.Sort(names)
	return names
}

func typeName(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		if obj, ok := reflect.New(t.Elem()).Interface().(runtime.Object); ok {
			if gvks, _, err := clientgoscheme.Scheme.ObjectKinds(obj); err == nil && len(gvks) > 0 {
				return gvks[0].String()
			}
		}
	}
	return t.String()
}
