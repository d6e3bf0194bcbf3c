package kubectlcosched

import (
	"context"
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/cosched/cosched/pkg/explain"
	"github.com/cosched/cosched/pkg/podgroup"
)

// gather reads the groups named (every group of the namespace when none
// is; namespace "" is all namespaces), their member pods and the events of
// their namespaces, and with nodes the nodes the members are on. Events and
// nodes that RBAC does not let it read are left out with a warning: the
// answer is poorer but still right.
func (o *Options) gather(ctx context.Context, c Clients, namespace string, names []string, withNodes bool) ([]explain.Input, error) {
	logger := klog.FromContext(ctx)
	var groups []schedv1alpha1.PodGroup
	if len(names) == 0 {
		list, err := c.PodGroups.SchedulingV1alpha1().PodGroups(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		groups = list.Items
	}
	// A named group that does not exist may still be named by pods (its
	// owner deleted it, or has not created it yet): those are shown.
	notFound := map[string]error{}
	for _, name := range names {
		pg, err := c.PodGroups.SchedulingV1alpha1().PodGroups(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			notFound[name] = err
			continue
		}
		if err != nil {
			return nil, err
		}
		groups = append(groups, *pg)
	}

	// The members: pods carrying the group label (only the named groups'
	// values when names are given).
	op, values := selection.Exists, []string(nil)
	if len(names) > 0 {
		op, values = selection.In, names
	}
	req, err := labels.NewRequirement(podgroup.Label, op, values)
	if err != nil {
		return nil, err
	}
	podList, err := c.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.NewSelector().Add(*req).String()})
	if err != nil {
		return nil, err
	}
	pods := map[string][]*v1.Pod{}
	for i := range podList.Items {
		p := &podList.Items[i]
		key := podgroup.KeyOf(p)
		pods[key] = append(pods[key], p)
	}
	missing := missingGroups(groups, pods)
	for _, name := range names {
		if err := notFound[name]; err != nil && !slices.ContainsFunc(missing, func(pg schedv1alpha1.PodGroup) bool { return pg.Name == name }) {
			return nil, err
		}
	}
	groups = append(groups, missing...)
	slices.SortFunc(groups, func(a, b schedv1alpha1.PodGroup) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	if len(groups) == 0 {
		return nil, nil
	}

	// Events, read where the groups are.
	events := map[string][]eventsv1.Event{}
	eventNamespaces := []string{namespace}
	if namespace == "" && len(names) == 0 {
		eventNamespaces = []string{""}
	}
	for _, ns := range eventNamespaces {
		list, err := c.Kube.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsForbidden(err) {
			fmt.Fprintf(o.ErrOut, "Warning: cannot list events (%v): reasons and timelines are incomplete\n", err)
			break
		}
		if err != nil {
			return nil, err
		}
		for _, e := range list.Items {
			events[e.Namespace] = append(events[e.Namespace], e)
		}
	}

	var nodes map[string]*v1.Node
	if withNodes {
		nodes = o.nodesOf(ctx, c, groups, pods)
	}
	inputs := make([]explain.Input, 0, len(groups))
	for i := range groups {
		pg := &groups[i]
		inputs = append(inputs, explain.Input{
			Group:   pg,
			Missing: pg.UID == "",
			Pods:    pods[podgroup.Key(pg.Namespace, pg.Name)],
			Events:  events[pg.Namespace],
			Nodes:   nodes,
		})
	}
	logger.V(4).Info("Read PodGroups", "namespace", namespace, "groups", len(groups), "pods", len(podList.Items), "withNodes", withNodes)
	return inputs, nil
}

// missingGroups stands in for the PodGroups that pods name but that do not
// exist: a placeholder (no UID) named after the group, as old as its oldest
// pod, so that such pods are listed with the reason they wait.
func missingGroups(groups []schedv1alpha1.PodGroup, pods map[string][]*v1.Pod) []schedv1alpha1.PodGroup {
	known := map[string]bool{}
	for _, pg := range groups {
		known[podgroup.Key(pg.Namespace, pg.Name)] = true
	}
	var out []schedv1alpha1.PodGroup
	for key, members := range pods {
		if known[key] || len(members) == 0 {
			continue
		}
		oldest := members[0].CreationTimestamp
		for _, p := range members[1:] {
			if p.CreationTimestamp.Before(&oldest) {
				oldest = p.CreationTimestamp
			}
		}
		out = append(out, schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{
			Namespace: members[0].Namespace, Name: podgroup.NameOf(members[0]), CreationTimestamp: oldest,
		}})
	}
	return out
}

// nodesOf reads the nodes the members of groups with a topology key are on
// or nominated to; nil when nodes cannot be read.
func (o *Options) nodesOf(ctx context.Context, c Clients, groups []schedv1alpha1.PodGroup, pods map[string][]*v1.Pod) map[string]*v1.Node {
	nodes := map[string]*v1.Node{}
	for i := range groups {
		pg := &groups[i]
		members := pods[podgroup.Key(pg.Namespace, pg.Name)]
		var rep *v1.Pod
		if len(members) > 0 {
			rep = members[0]
		}
		if podgroup.TopologyKey(pg, rep) == "" {
			continue
		}
		for _, p := range members {
			for _, name := range []string{p.Spec.NodeName, p.Status.NominatedNodeName} {
				if _, seen := nodes[name]; name == "" || seen {
					continue
				}
				node, err := c.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				switch {
				case apierrors.IsForbidden(err):
					fmt.Fprintf(o.ErrOut, "Warning: cannot get nodes (%v): topology domains are unknown\n", err)
					return nil
				case apierrors.IsNotFound(err):
					nodes[name] = nil
				case err != nil:
					klog.FromContext(ctx).V(2).Info("Reading a member's node", "node", name, "err", err)
					nodes[name] = nil
				default:
					nodes[name] = node
				}
			}
		}
	}
	for name, n := range nodes {
		if n == nil {
			delete(nodes, name)
		}
	}
	return nodes
}
