//go:build tools

// Package tools records, for `go mod tidy`, the Kubernetes commands that
// hack/local-up.sh builds from the main module (so their dependencies stay in
// go.mod/go.sum at the versions this module pins):
//
//	go build -trimpath -o _output/bin/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
//
// The build tag keeps this file out of every normal build.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
