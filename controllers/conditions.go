package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/secreturl"
)

// conflictRetry is when a pass that lost an optimistic-lock race runs again. A fixed short delay, not the
// work queue's exponential backoff: the newer object is already in the cache or about to be, and the event
// that brought it may be one the watch predicates drop (the operator's own status write).
const conflictRetry = 100 * time.Millisecond

// setCondition sets one condition of a job; LastTransitionTime changes only with the status. The message
// (and so the event made from it) never carries the secret parts of the teacher's endpoint, whatever
// quoted it.
func setCondition(dj *v1alpha1.DistillationJob, t v1alpha1.ConditionType, status bool, reason v1alpha1.ConditionReason, msg string) {
	msg = secreturl.Scrub(msg, dj.Spec.Teacher.Endpoint)
	meta.SetStatusCondition(&dj.Status.Conditions, condition(t, status, reason, msg, dj.Generation))
}

// setModelCondition sets one condition of a StudentModel.
func setModelCondition(sm *v1alpha1.StudentModel, t v1alpha1.ConditionType, status bool, reason v1alpha1.ConditionReason, msg string) {
	meta.SetStatusCondition(&sm.Status.Conditions, condition(t, status, reason, msg, sm.Generation))
}

func condition(t v1alpha1.ConditionType, status bool, reason v1alpha1.ConditionReason, msg string, gen int64) metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: string(t), Status: s, Reason: string(reason), Message: truncate(msg, 2048), ObservedGeneration: gen}
}

func findCondition(dj *v1alpha1.DistillationJob, t v1alpha1.ConditionType) *metav1.Condition {
	return meta.FindStatusCondition(dj.Status.Conditions, string(t))
}

func isTrue(conds []metav1.Condition, t v1alpha1.ConditionType) bool {
	return meta.IsStatusConditionTrue(conds, string(t))
}

// finished reports whether the job reached Complete or Failed; nothing runs after that.
func finished(dj *v1alpha1.DistillationJob) bool {
	return isTrue(dj.Status.Conditions, v1alpha1.ConditionComplete) || isTrue(dj.Status.Conditions, v1alpha1.ConditionFailed)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
