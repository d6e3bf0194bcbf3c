// Package testutil is the one small set of helpers that cosched's
// integration, end-to-end and performance tests share: building PodGroups,
// members and nodes, installing the CRD, loading the shipped scheduler
// config, and waiting for (or ruling out) bindings.
package testutil
