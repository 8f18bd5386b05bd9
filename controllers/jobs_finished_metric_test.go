package controllers

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// distillery_jobs_finished_total{outcome,reason} counts each job once, when the pass that finished it
// wrote its status. The counter is the operator's (global); the tests read it before and after.

// finishedCount is the counter's value for the labels.
func finishedCount(outcome string, reason v1alpha1.ConditionReason) float64 {
	return testutil.ToFloat64(jobsFinished.WithLabelValues(outcome, string(reason)))
}

// assertFinishedOnce waits for the counter of the labels to grow by one from before, and checks it stays
// so (a finished job's later passes count nothing).
func assertFinishedOnce(t *testing.T, outcome string, reason v1alpha1.ConditionReason, before float64) {
	t.Helper()
	what := fmt.Sprintf("distillery_jobs_finished_total{outcome=%q,reason=%q}", outcome, reason)
	check := func() error {
		if got := finishedCount(outcome, reason); got != before+1 {
			return fmt.Errorf("%s = %v, want %v", what, got, before+1)
		}
		return nil
	}
	eventually(t, what+" counted", check)
	consistently(t, what+" counted once", shortWhile, check)
}

func TestJobsFinishedMetricCountsASucceededJob(t *testing.T) {
	ns := newNamespace(t)
	const dj = "counted"
	succeeded := finishedCount("succeeded", v1alpha1.ReasonSucceeded)
	createJob(t, utiltesting.MakeJob(dj, ns).Obj())
	finishShards(t, ns, dj, annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10}))
	finishTraining(t, ns, dj, trainMsg(t, contract.TrainResult{Steps: 5, EvalAccuracy: 0.9, EvalExamples: 1}))
	waitForCondition(t, ns, dj, v1alpha1.ConditionComplete, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	assertFinishedOnce(t, "succeeded", v1alpha1.ReasonSucceeded, succeeded)

	// What /metrics serves: the operator registers the counter with controller-runtime's registry.
	n, err := testutil.GatherAndCount(metrics.Registry, "distillery_jobs_finished_total")
	if err != nil || n == 0 {
		t.Errorf("controller-runtime's registry has %d series of distillery_jobs_finished_total (%v)", n, err)
	}
}

func TestJobsFinishedMetricCountsAFailedJobWithItsReason(t *testing.T) {
	ns := newNamespace(t)
	const dj = "countedfail"
	failed := finishedCount("failed", v1alpha1.ReasonTrainingFailed)
	succeeded := finishedCount("succeeded", v1alpha1.ReasonSucceeded)
	createJob(t, utiltesting.MakeJob(dj, ns).Obj())
	finishShards(t, ns, dj, annotateMsg(t, contract.AnnotateResult{Total: 3, OK: 3}))
	failJobWith(t, ns, dj, StageTraining, 1, "CUDA out of memory")
	waitForCondition(t, ns, dj, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonTrainingFailed)
	assertFinishedOnce(t, "failed", v1alpha1.ReasonTrainingFailed, failed)
	if got := finishedCount("succeeded", v1alpha1.ReasonSucceeded); got != succeeded {
		t.Errorf("a failed job counted as succeeded: %v, was %v", got, succeeded)
	}
}
