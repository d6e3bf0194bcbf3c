package podgroup

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
)

func init() {
	// Events name PodGroups; the event recorders need their kind.
	utilruntime.Must(schedv1alpha1.AddToScheme(scheme.Scheme))
}

// NewClient returns a PodGroup client for cfg that speaks JSON:
// kube-scheduler's client defaults to protobuf, which custom resources do
// not support.
func NewClient(cfg *rest.Config) (versioned.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	return versioned.NewForConfig(cfg)
}
