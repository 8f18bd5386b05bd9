package controllers

import (
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The suspend policy: spec.suspend is mirrored onto the stage Jobs (batch Jobs delete their pods when
// suspended and start them again when resumed; annotator and trainer resume from their files). A job
// queued by Kueue has its stage Jobs' suspend left to Kueue while the job itself is not suspended.

// stageSuspended is the suspend flag the stage Jobs should have.
func stageSuspended(dj *v1alpha1.DistillationJob) bool {
	return ptr.Deref(dj.Spec.Suspend, false)
}

// stageSuspendField is what the builders put in a stage Job's spec.suspend: nil leaves it to Kueue.
func stageSuspendField(dj *v1alpha1.DistillationJob) *bool {
	if _, queued := dj.Labels[LabelKueueQueue]; queued && !stageSuspended(dj) {
		return nil
	}
	return ptr.To(stageSuspended(dj))
}

// setSuspendedCondition records whether the job is held by spec.suspend.
func setSuspendedCondition(dj *v1alpha1.DistillationJob) {
	if stageSuspended(dj) {
		setCondition(dj, v1alpha1.ConditionSuspended, true, v1alpha1.ReasonSuspended, "spec.suspend is true: stage pods are stopped")
		return
	}
	// Once resumed, the reason stays Resumed (not NotSuspended) so the condition does not flip again.
	if c := findCondition(dj, v1alpha1.ConditionSuspended); c != nil && (c.Status == "True" || c.Reason == string(v1alpha1.ReasonResumed)) {
		setCondition(dj, v1alpha1.ConditionSuspended, false, v1alpha1.ReasonResumed, "spec.suspend is false: the job runs")
		return
	}
	setCondition(dj, v1alpha1.ConditionSuspended, false, v1alpha1.ReasonNotSuspended, "the job is not suspended")
}
