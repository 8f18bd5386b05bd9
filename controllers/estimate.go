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
//
// The sample is paid for like any teacher request, so it counts in the budget. Its spend travels in its
// summary, and the operator, the one writer of status, puts it in three places: status.estimate, the
// spend of status.annotation (setSpend adds it to the shards'), and the ledger's estimate key
// (budgetConfigMap), which the shards count as a share of its own. The estimate pod itself writes no
// ledger key: it would need the ledger before the operator knows its result, and a second writer of
// the spend that status shows. A sample that already spent the whole budget fails the job with
// BudgetExceeded before annotation starts; a raised budget reopens it (reopenWithRaisedBudget), and the
// estimate, whose Job stays complete, is judged again.

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
// answered none of, or whose answers never parsed, fails the job with the first rejection's words; a
// sample that spent the whole budget fails it with BudgetExceeded.
func estimateSucceeded(dj *v1alpha1.DistillationJob, o *observed) (v1alpha1.ConditionReason, string, *stageFailure) {
	res, ok := estimateResult(o.estimate.pods)
	switch {
	case ok:
		dj.Status.Estimate = estimateStatus(res, budgetCaps(dj.Spec.Teacher.Budget))
		if f := unusableEstimate(res); f != nil {
			return "", "", f
		}
	case dj.Status.Estimate == nil:
		return "", "", &stageFailure{reason: v1alpha1.ReasonEstimateFailed, message: fmt.Sprintf(
			"the estimate Job %s succeeded but its pod left no estimate summary (termination message)", estimateJobName(dj))}
	}
	// Without its pod (gone since), status.estimate is judged again after a raised budget reopened the
	// job: it passed the other checks then.
	if dj.Spec.Teacher.Budget != nil && !budgetHasRoom(dj, estimateSpend(dj.Status.Estimate)) {
		return "", "", estimateSpentTheBudget(dj)
	}
	return v1alpha1.ReasonEstimateSucceeded, estimateMessage(dj.Status.Estimate), nil
}

// unusableEstimate fails a sample the teacher answered none of, or whose answers never parsed; nil
// otherwise.
func unusableEstimate(res contract.EstimateResult) *stageFailure {
	switch {
	case res.Answered == 0:
		return &stageFailure{reason: v1alpha1.ReasonEstimateFailed, message: fmt.Sprintf(
			"the teacher answered none of the %d sampled inputs%s", res.Sampled, firstRejection(res))}
	case res.ParseRate == 0:
		return &stageFailure{reason: v1alpha1.ReasonEstimateUnparseable, message: fmt.Sprintf(
			"not one of the teacher's %d answers to the sample parsed: check spec.task (the examples' format and the answer marker)%s",
			res.Answered, firstRejection(res))}
	}
	return nil
}

// estimateSpentTheBudget fails a job whose estimate's sample left nothing of the budget, with the spend
// (the sample's) in status.annotation as it would be had the annotation started.
func estimateSpentTheBudget(dj *v1alpha1.DistillationJob) *stageFailure {
	prev := dj.Status.Annotation.DeepCopy()
	a := dj.Status.Annotation
	if a == nil {
		a = &v1alpha1.AnnotationStatus{ShardsTotal: dj.Spec.Annotation.Shards}
	}
	setSpend(dj, a, prev, contract.AnnotateResult{}, contract.AnnotateProgress{})
	dj.Status.Annotation = a
	return &stageFailure{reason: v1alpha1.ReasonBudgetExceeded, message: fmt.Sprintf(
		"teacher budget reached by the estimate's sample (%s): annotation did not start. Raise spec.teacher.budget above the spend to annotate",
		contract.DescribeSpend(budgetCaps(dj.Spec.Teacher.Budget), spendOf(a)))}
}

// estimateStatus is status.estimate from the summary; caps price the sample's spend.
func estimateStatus(r contract.EstimateResult, caps contract.BudgetCaps) *v1alpha1.EstimateStatus {
	e := &v1alpha1.EstimateStatus{
		SampleSize: int32(r.Sampled), Answered: int32(r.Answered), Inputs: int64(r.Inputs), EvalInputs: int64(r.EvalInputs),
		TokensPerInputMean: formatDecimal(r.Tokens.Mean, 1), TokensPerInputP95: int64(math.Round(r.Tokens.P95)),
		ProjectedTokens: r.Projected.Tokens, ProjectedSeconds: int64(math.Ceil(r.Projected.Seconds)),
		LimitedBy: r.Projected.LimitedBy, ParseRate: formatDecimal(r.ParseRate, 4), RejectRate: formatDecimal(r.RejectRate, 4),
		Requests: r.Spend.Requests, PromptTokens: r.Spend.PromptTokens, CompletionTokens: r.Spend.CompletionTokens,
		Tokens: r.Spend.Tokens(),
	}
	if r.Projected.Cost != nil {
		e.ProjectedCost = formatDecimal(*r.Projected.Cost, 4)
	}
	if caps.Priced() {
		e.Cost = formatDecimal(caps.Cost(r.Spend), 4)
	}
	return e
}

// estimateSpend is what the estimate's sample spent, from status.estimate; nothing without an estimate.
func estimateSpend(e *v1alpha1.EstimateStatus) contract.Spend {
	if e == nil {
		return contract.Spend{}
	}
	return contract.Spend{Requests: e.Requests, PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens}
}

// ledgerEstimateSpend is the sample's spend for the ledger: status.estimate's, or, in the pass that
// reads the estimate (the workspace, ledger included, is applied before the stage is judged and the
// annotation Job created), its succeeded pod's summary, so the ledger holds it before any shard starts.
func ledgerEstimateSpend(dj *v1alpha1.DistillationJob, o *observed) contract.Spend {
	if dj.Status.Estimate != nil {
		return estimateSpend(dj.Status.Estimate)
	}
	if r, ok := estimateResult(o.estimate.pods); ok {
		return r.Spend
	}
	return contract.Spend{}
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
	eval := ""
	if e.EvalInputs > 0 {
		eval = fmt.Sprintf(" (%d of the eval split)", e.EvalInputs)
	}
	return fmt.Sprintf("%d sampled inputs: %s tokens per input (p95 %d); projected for %d inputs%s: %d tokens%s%s; parse rate %s, reject rate %s; the sample spent %d tokens in %d requests",
		e.SampleSize, e.TokensPerInputMean, e.TokensPerInputP95, e.Inputs, eval, e.ProjectedTokens, cost, when, e.ParseRate, e.RejectRate, e.Tokens, e.Requests)
}

// firstRejection names the sample's first rejected input and why, for a failure message.
func firstRejection(r contract.EstimateResult) string {
	if len(r.Rejected) == 0 {
		return ""
	}
	f := r.Rejected[0]
	return fmt.Sprintf("; first: input %s (%s): %s", f.ID, f.Status, truncate(f.Error, contract.MaxSkippedErrorBytes))
}
