package controllers

import (
	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The health policy: at the end of every pass the standard conditions that generic tools read summarise
// the job's own conditions (they decide nothing). kstatus (Flux, kubectl-based rollouts) reads
// Reconciling and Stalled first, then Ready; the Argo CD health checks in config/argocd read Complete and
// Failed.
//
//	the job                                  Reconciling   Stalled        Ready
//	pending, a stage running or waiting,     True          False          False
//	suspended, unschedulable                 (the reason and message of the stage's own condition)
//	failed                                   False         True           False  (the failure's reason)
//	succeeded                                False         False          True
//
// A pass that fails with an error still says why: Reconciling and Ready carry ReconcileError and the
// error until a pass succeeds.

// setJobHealth sets Reconciling, Stalled and Ready from the job's own conditions and the pass's error.
func setJobHealth(dj *v1alpha1.DistillationJob, passErr error) {
	switch {
	case isTrue(dj.Status.Conditions, v1alpha1.ConditionFailed):
		f := findCondition(dj, v1alpha1.ConditionFailed)
		reason := v1alpha1.ConditionReason(f.Reason)
		setCondition(dj, v1alpha1.ConditionReconciling, false, reason, "the job failed; nothing runs")
		setCondition(dj, v1alpha1.ConditionStalled, true, reason, f.Message)
		setCondition(dj, v1alpha1.ConditionReady, false, reason, f.Message)
	case isTrue(dj.Status.Conditions, v1alpha1.ConditionComplete):
		c := findCondition(dj, v1alpha1.ConditionComplete)
		setCondition(dj, v1alpha1.ConditionReconciling, false, v1alpha1.ReasonSucceeded, "the job succeeded; nothing runs")
		setCondition(dj, v1alpha1.ConditionStalled, false, v1alpha1.ReasonNotStalled, "the job succeeded")
		setCondition(dj, v1alpha1.ConditionReady, true, v1alpha1.ReasonSucceeded, c.Message)
	default:
		reason, msg := activeStage(dj)
		if passErr != nil {
			reason, msg = v1alpha1.ReasonReconcileError, "retrying after an error: "+passErr.Error()
		}
		setCondition(dj, v1alpha1.ConditionReconciling, true, reason, msg)
		setCondition(dj, v1alpha1.ConditionStalled, false, v1alpha1.ReasonNotStalled, "the job has not failed")
		setCondition(dj, v1alpha1.ConditionReady, false, reason, msg)
	}
}

// activeStage is the reason and message of the condition that says what a running job is doing or
// waiting for: suspension first, then a problem being waited out, then the latest stage.
func activeStage(dj *v1alpha1.DistillationJob) (v1alpha1.ConditionReason, string) {
	if c := findCondition(dj, v1alpha1.ConditionSuspended); c != nil && c.Status == "True" {
		return v1alpha1.ConditionReason(c.Reason), c.Message
	}
	if c := findCondition(dj, v1alpha1.ConditionComplete); c != nil && c.Reason != string(v1alpha1.ReasonInProgress) {
		return v1alpha1.ConditionReason(c.Reason), c.Message
	}
	if c := findCondition(dj, v1alpha1.ConditionReported); c != nil {
		if c.Status == "True" || c.Reason == string(v1alpha1.ReasonReportFailed) {
			return v1alpha1.ReasonPending, "creating the StudentModel"
		}
		return v1alpha1.ConditionReason(c.Reason), c.Message
	}
	if c := findCondition(dj, v1alpha1.ConditionTrained); c != nil {
		if c.Status == "True" {
			return v1alpha1.ReasonPending, "creating the StudentModel"
		}
		return v1alpha1.ConditionReason(c.Reason), c.Message
	}
	if c := findCondition(dj, v1alpha1.ConditionAnnotated); c != nil {
		if c.Status == "True" {
			return v1alpha1.ReasonPending, "starting the training stage"
		}
		return v1alpha1.ConditionReason(c.Reason), c.Message
	}
	if c := findCondition(dj, v1alpha1.ConditionEstimated); c != nil {
		if c.Status == "True" {
			return v1alpha1.ReasonPending, "starting the annotation stage"
		}
		return v1alpha1.ConditionReason(c.Reason), c.Message
	}
	return v1alpha1.ReasonPending, "preparing the workspace"
}

// isSummaryCondition reports whether t is one of the generic summary conditions, which repeat what the
// job's own conditions say (no events of their own).
func isSummaryCondition(t string) bool {
	switch v1alpha1.ConditionType(t) {
	case v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled, v1alpha1.ConditionReady:
		return true
	}
	return false
}
