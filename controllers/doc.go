// Package controllers reconciles DistillationJobs into their stage children (workspace, annotation Job,
// training Jobs, a sweep's report Job, StudentModel) and StudentModels into a serving Deployment and Service.
//
// Files hold one subject each:
//   - distillationjob_controller.go, studentmodel_controller.go: the two reconcilers; a pass observes,
//     runs the policies in order and writes status once (optimistic lock).
//   - builders_*.go: pure functions from the API object to the desired child objects; render_config.go
//     renders the stage configs (the contract in docs/workloads.md); names.go the derived names and labels.
//   - observed.go: what exists of a job's children; apply.go: server-side apply of what changed.
//   - The policies, each a decision plus its action: stages.go (workspace with the job's snapshot, and
//     StudentModel), ownership.go (adopt only what the job controls; a derived name held by anything else
//     is a NameConflict, found before the teacher is paid),
//     stage_jobs.go (annotation, training and a sweep's report, each described once as a stageJob of one
//     or more Jobs and run by reconcileStageJob), experiments.go (spec.experiments: the training runs in
//     their order, the status table, the served point),
//     failure_policy.go (every decision that fails a job), budget.go (spec.teacher.budget: the ledger's
//     caps, the spend in status, BudgetExceeded, resuming under a raised budget), eta.go (status.rate: the
//     running stage's speed over a window of its reports, its ETA, stale progress), suspend.go (with Kueue:
//     through the stage Job's Workload), deadline.go, ttl.go, health.go
//     (the standard Ready/Reconciling/Stalled conditions that kstatus and Argo CD read), and
//     spec_policy.go (what the operator refuses before creating any child: resource quantities, and
//     image_policy.go's --allowed-image-prefixes). Admission itself is CEL in api/v1alpha1.
//   - results.go and progress.go read what stage pods report (termination messages, the progress
//     ConfigMap); conditions.go and events.go write conditions and their events, spend_metrics.go the
//     teacher's spend as Prometheus counters. builders_report.go builds a sweep's report Job and its config.
//   - watches.go, index.go, cache.go: what the controllers watch, index and cache.
//
// Tests: *_test.go beside each file; the envtest suite is suite_test.go, and controllers/testing holds the
// fluent builders of test objects.
package controllers
