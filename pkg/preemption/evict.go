package preemption

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/cosched/cosched/pkg/podgroup"
)

// Evictor takes victim units through the Eviction API, so the API server
// enforces PodDisruptionBudgets and every victim gets its graceful
// termination. A victim still waiting at Permit is rejected in memory
// instead: it holds nothing on the API server yet.
type Evictor struct {
	Client   kubernetes.Interface
	Recorder events.EventRecorder
	// Waiting returns the pod waiting at Permit with this UID, or nil.
	Waiting func(types.UID) fwk.WaitingPod
	// GroupObject returns the PodGroup of a gang unit for events, or nil.
	GroupObject func(groupKey string) runtime.Object
	// PluginName is reported to waiting pods that are rejected.
	PluginName string
	// Action names what happens to the victims in events: "Preempted" when
	// empty.
	Action string
	// Force deletes a gang member whose eviction fails even when it is the
	// first to go: for a gang that is already broken.
	Force bool
}

// Evict takes every unit and returns the pods it took. by is the object
// that preempts (a PodGroup or a pod; nil when cosched acts on its own), why
// says what for. Units go in order, gangs first, and the first unit that
// cannot be taken stops the rest. Once a gang loses one member it loses all
// of them: a later member whose eviction fails is deleted instead, and an
// error there does not stop its siblings, so the gang never stays split.
func (e *Evictor) Evict(ctx context.Context, units []*Unit, by runtime.Object, why string) ([]*v1.Pod, error) {
	logger := klog.FromContext(ctx)
	action := e.Action
	if action == "" {
		action = "Preempted"
	}
	ordered := append([]*Unit(nil), units...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].IsGang() && !ordered[j].IsGang() })
	var taken []*v1.Pod
	for _, u := range ordered {
		var errs []error
		inUnit := 0
		for _, pod := range u.Pods {
			msg := fmt.Sprintf("%s by %s: %s", action, describe(by), why)
			if u.IsGang() {
				msg = fmt.Sprintf("%s with all %d placed member(s) of PodGroup %s by %s: %s", action, len(u.Pods), u.Group, describe(by), why)
			}
			if err := e.take(ctx, pod, msg, u.IsGang() && (inUnit > 0 || e.Force)); err != nil {
				if inUnit == 0 {
					// Nothing of this unit is gone: stop here.
					return taken, fmt.Errorf("evicting %s/%s: %w", pod.Namespace, pod.Name, err)
				}
				errs = append(errs, fmt.Errorf("%s/%s: %w", pod.Namespace, pod.Name, err))
				continue
			}
			inUnit++
			taken = append(taken, pod)
			e.Recorder.Eventf(pod, by, v1.EventTypeNormal, action, "Evicting", podgroup.TruncateNote(msg))
		}
		if u.IsGang() && e.GroupObject != nil {
			if pg := e.GroupObject(u.Group); pg != nil {
				e.Recorder.Eventf(pg, by, v1.EventTypeWarning, "Gang"+action, "Evicting",
					podgroup.TruncateNote(fmt.Sprintf("all %d placed member(s) %s as a unit by %s: %s", len(u.Pods), strings.ToLower(action), describe(by), why)))
			}
		}
		if len(errs) > 0 {
			return taken, fmt.Errorf("gang %s is partly taken; members left: %w", u.Group, errors.Join(errs...))
		}
		logger.V(2).Info("Took unit", "action", action, "unit", u.Key, "pods", len(u.Pods), "priority", u.Priority, "by", describe(by))
	}
	return taken, nil
}

// take removes one victim. mustGo is set for a gang member whose siblings
// are already going: if its eviction fails, it is deleted.
func (e *Evictor) take(ctx context.Context, pod *v1.Pod, msg string, mustGo bool) error {
	if e.Waiting != nil {
		if wp := e.Waiting(pod.UID); wp != nil && wp.Reject(e.PluginName, msg) {
			return nil
		}
	}
	eviction := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}}
	err := e.Client.PolicyV1().Evictions(pod.Namespace).Evict(ctx, eviction)
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	if !mustGo {
		return err
	}
	klog.FromContext(ctx).Info("Eviction failed for a member of a gang that is being taken; deleting it so the gang is not split",
		"pod", klog.KObj(pod), "err", err)
	err = e.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func describe(obj runtime.Object) string {
	switch o := obj.(type) {
	case nil:
		return "cosched"
	case *v1.Pod:
		return fmt.Sprintf("pod %s/%s (priority %d)", o.Namespace, o.Name, podPriority(o))
	case metav1.Object:
		return fmt.Sprintf("%s %s/%s", kindOf(obj), o.GetNamespace(), o.GetName())
	}
	return fmt.Sprintf("%T", obj)
}

func kindOf(obj runtime.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	return "PodGroup"
}

func podPriority(p *v1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}
