package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// emitTransitionEvents emits one event per condition whose status or reason changed in this pass, with
// the condition's reason, after the status write succeeded.
func emitTransitionEvents(rec record.EventRecorder, obj runtime.Object, before, after []metav1.Condition) {
	if rec == nil {
		return
	}
	_, isJob := obj.(*v1alpha1.DistillationJob)
	for _, c := range after {
		if isJob && isSummaryCondition(c.Type) && c.Reason != string(v1alpha1.ReasonReconcileError) {
			continue // a job's summary conditions repeat its own conditions, which have their events
		}
		prev := meta.FindStatusCondition(before, c.Type)
		if prev != nil && prev.Status == c.Status && prev.Reason == c.Reason {
			continue
		}
		if c.Reason == string(v1alpha1.ReasonInProgress) || c.Reason == string(v1alpha1.ReasonNotSuspended) {
			continue // the initial state of every job is not news
		}
		typ := corev1.EventTypeNormal
		if isWarning(c) {
			typ = corev1.EventTypeWarning
		}
		rec.Event(obj, typ, c.Reason, c.Message)
	}
}

func isWarning(c metav1.Condition) bool {
	switch c.Type {
	case string(v1alpha1.ConditionFailed):
		return c.Status == metav1.ConditionTrue
	case string(v1alpha1.ConditionStalled):
		return c.Status == metav1.ConditionTrue
	}
	switch v1alpha1.ConditionReason(c.Reason) {
	case v1alpha1.ReasonUnschedulable, v1alpha1.ReasonInvalidSpec, v1alpha1.ReasonReconcileError, v1alpha1.ReasonReportFailed,
		v1alpha1.ReasonProgressDeadlineExceeded, v1alpha1.ReasonReplicaFailure:
		return true
	}
	return false
}

var jobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "distillery_jobs_finished_total",
	Help: "DistillationJobs that finished, by outcome (succeeded, failed) and reason.",
}, []string{"outcome", "reason"})

func init() { metrics.Registry.MustRegister(jobsFinished) }

// recordOutcome counts a job that finished in this pass.
func recordOutcome(before, after *v1alpha1.DistillationJob) {
	if finished(before) || !finished(after) {
		return
	}
	if c := findCondition(after, v1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		jobsFinished.WithLabelValues("failed", c.Reason).Inc()
		return
	}
	jobsFinished.WithLabelValues("succeeded", string(v1alpha1.ReasonSucceeded)).Inc()
}
