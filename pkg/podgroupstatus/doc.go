// Package podgroupstatus writes the status of scheduler-plugins PodGroups
// (phase, scheduled, running, succeeded, failed, scheduleStartTime) from
// their member pods, as scheduler-plugins' own PodGroup controller does, so
// that operators and `kubectl get podgroups` see the same fields.
//
// Compute derives a status from a PodGroup and its members and is pure; the
// Controller watches PodGroups and member pods of every phase (the
// scheduler's own pod cache drops finished pods, which status must count)
// and writes what Compute returns. cosched runs it inside the scheduler
// process under a Lease of its own (RunWithLeaderElection), so that one
// replica writes and users need no second deployment; pkg/gang's Plugins
// starts it once per scheduler when managePodGroupStatus is set.
package podgroupstatus
