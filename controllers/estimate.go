package controllers

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The estimate policy (spec.annotation.estimate): the estimate stage's Job (estimateStage, stage_jobs.go)
// runs the annotator in --estimate mode before annotation; its termination summary
// (contract.EstimateResult) becomes status.estimate and the Estimated condition's message. The estimate
// fails the job, before annotation is paid, when the teacher answered none of the sample or no answer
// parsed; a teacher that cannot be reached fails the estimate Job itself (reason TeacherUnreachable).

// estimateResult is the estimate pod's termination summary, from its succeeded pod.
func estimateResult(pods []corev1.Pod) (contract.EstimateResult, bool) {
	for i := range pods {
		var r contract.EstimateResult
		if pods[i].Status.Phase == corev1.PodSucceeded &&
			json.Unmarshal([]byte(terminationMessage(&pods[i])), &r) == nil && r.Stage == contract.StageEstimate {
			return r, true
		}
	}
	return contract.EstimateResult{}, false
}

// estimateSucceeded reads a finished estimate into status.estimate and judges it: a sample the teacher
// answered none of, or whose answers never parsed, fails the job with the first rejection's words.
func estimateSucceeded(dj *v1alpha1.DistillationJob, o *observed) (v1alpha1.ConditionReason, string, *stageFailure) {
	res, ok := estimateResult(o.estimate.pods)
	if !ok {
		return "", "", &stageFailure{reason: v1alpha1.ReasonEstimateFailed, message: fmt.Sprintf(
			"the estimate Job %s succeeded but its pod left no estimate summary (termination message)", estimateJobName(dj))}
	}
	dj.Status.Estimate = estimateStatus(res)
	switch {
	case res.Answered == 0:
		return "", "", &stageFailure{reason: v1alpha1.ReasonEstimateFailed, message: fmt.Sprintf(
			"the teacher answered none of the %d sampled inputs%s", res.Sampled, firstRejection(res))}
	case res.ParseRate == 0:
		return "", "", &stageFailure{reason: v1alpha1.ReasonEstimateUnparseable, message: fmt.Sprintf(
			"not one of the teacher's %d answers to the sample parsed: check spec.task (the examples' format and the answer marker)%s",
			res.Answered, firstRejection(res))}
	}
	return v1alpha1.ReasonEstimateSucceeded, estimateMessage(dj.Status.Estimate), nil
}

// estimateStatus is status.estimate from the summary.
func estimateStatus(r contract.EstimateResult) *v1alpha1.EstimateStatus {
	e := &v1alpha1.EstimateStatus{
		SampleSize: int32(r.Sampled), Answered: int32(r.Answered), Inputs: int64(r.Inputs),
		TokensPerInputMean: formatDecimal(r.Tokens.Mean, 1), TokensPerInputP95: int64(math.Round(r.Tokens.P95)),
		ProjectedTokens: r.Projected.Tokens, ProjectedSeconds: int64(math.Ceil(r.Projected.Seconds)),
		LimitedBy: r.Projected.LimitedBy, ParseRate: formatDecimal(r.ParseRate, 4), RejectRate: formatDecimal(r.RejectRate, 4),
	}
	if r.Projected.Cost != nil {
		e.ProjectedCost = formatDecimal(*r.Projected.Cost, 4)
	}
	return e
}

// estimateMessage is the Estimated condition's summary of the estimate.
func estimateMessage(e *v1alpha1.EstimateStatus) string {
	cost := ""
	if e.ProjectedCost != "" {
		cost = ", cost " + e.ProjectedCost
	}
	when := ""
	if e.LimitedBy != "" {
		when = fmt.Sprintf(", about %s (limited by %s)", time.Duration(e.ProjectedSeconds)*time.Second, e.LimitedBy)
	}
	return fmt.Sprintf("%d sampled inputs: %s tokens per input (p95 %d); projected for %d inputs: %d tokens%s%s; parse rate %s, reject rate %s",
		e.SampleSize, e.TokensPerInputMean, e.TokensPerInputP95, e.Inputs, e.ProjectedTokens, cost, when, e.ParseRate, e.RejectRate)
}

// firstRejection names the sample's first rejected input and why, for a failure message.
func firstRejection(r contract.EstimateResult) string {
	if len(r.Rejected) == 0 {
		return ""
	}
	f := r.Rejected[0]
	return fmt.Sprintf("; first: input %s (%s): %s", f.ID, f.Status, truncate(f.Error, contract.MaxSkippedErrorBytes))
}
