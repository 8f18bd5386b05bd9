package controllers

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The budget policy (spec.teacher.budget):
//   - the shards share a ledger, ConfigMap <job>-budget: the operator writes the caps there from the spec
//     on every pass (so a changed budget reaches the running shards at their next claim); each shard
//     claims slices of what is left and stops asking the teacher when none is (internal/annotator/budget);
//   - status.annotation carries the spend, live from the progress reports, and its cost at the prices;
//     the estimate's sample counts in both, in the ledger as key "estimate" (estimate.go);
//   - an annotation Job that completed with shards stopped by the budget fails the job with reason
//     BudgetExceeded and a message giving spend and caps, or, with onExceeded Train, lets it train on what
//     it has; when the budget already has room again (it was raised meanwhile), the annotation runs again
//     instead (a new annotation Job; the shards resume from their files);
//   - a job failed with BudgetExceeded whose budget is raised above its spend is reopened the same way.
//     The schema lets spec.teacher.budget change until the job finished, and after that only on a job
//     that failed with BudgetExceeded.

// budgetCaps is spec.teacher.budget in the ledger's form; no caps without a budget.
func budgetCaps(b *v1alpha1.TeacherBudget) contract.BudgetCaps {
	if b == nil {
		return contract.BudgetCaps{}
	}
	var c contract.BudgetCaps
	if b.MaxTokens != nil {
		c.MaxTokens = *b.MaxTokens
	}
	if b.MaxRequests != nil {
		c.MaxRequests = *b.MaxRequests
	}
	c.MaxCost = parseDecimal(b.MaxCost, 0)
	c.PromptPricePerMillion = parseDecimal(b.PromptPricePerMillion, 0)
	c.CompletionPricePerMillion = parseDecimal(b.CompletionPricePerMillion, 0)
	return c
}

// renderBudget is annotate.json's budget: the caps at creation and the ledger ConfigMap, nil without a
// budget.
func renderBudget(dj *v1alpha1.DistillationJob) *contract.Budget {
	if dj.Spec.Teacher.Budget == nil {
		return nil
	}
	return &contract.Budget{BudgetCaps: budgetCaps(dj.Spec.Teacher.Budget), LedgerConfigMap: contract.BudgetConfigMapName(dj.Name)}
}

// spendOf is the spend status.annotation records.
func spendOf(a *v1alpha1.AnnotationStatus) contract.Spend {
	if a == nil {
		return contract.Spend{}
	}
	return contract.Spend{Requests: a.Requests, PromptTokens: a.PromptTokens, CompletionTokens: a.CompletionTokens}
}

// setSpend puts the spend into a: the estimate's sample's plus the larger of the finished shards'
// summaries and the live reports, or the previous status when that is larger; and its cost at the spec's
// prices.
func setSpend(dj *v1alpha1.DistillationJob, a, prev *v1alpha1.AnnotationStatus, sum contract.AnnotateResult, live contract.AnnotateProgress) {
	spend := sum.Spend().Max(contract.Spend{Requests: live.Requests, PromptTokens: live.PromptTokens, CompletionTokens: live.CompletionTokens}).
		Add(estimateSpend(dj.Status.Estimate)).Max(spendOf(prev))
	saved := contract.Spend{PromptTokens: max(sum.CacheSavedPromptTokens, live.CacheSavedPromptTokens),
		CompletionTokens: max(sum.CacheSavedCompletionTokens, live.CacheSavedCompletionTokens)}
	a.Requests, a.PromptTokens, a.CompletionTokens, a.Tokens = spend.Requests, spend.PromptTokens, spend.CompletionTokens, spend.Tokens()
	a.CacheHits = max(int64(sum.CacheHits), int64(live.CacheHits))
	a.CacheSavedTokens = saved.Tokens()
	if prev != nil {
		a.CacheHits, a.CacheSavedTokens = max(a.CacheHits, prev.CacheHits), max(a.CacheSavedTokens, prev.CacheSavedTokens)
	}
	a.Cost, a.CacheSavedCost = "", ""
	if caps := budgetCaps(dj.Spec.Teacher.Budget); caps.Priced() {
		a.Cost, a.CacheSavedCost = formatDecimal(caps.Cost(spend), 4), formatDecimal(caps.Cost(saved), 4)
	}
}

// budgetHasRoom reports whether spend is below every cap of the spec's budget.
func budgetHasRoom(dj *v1alpha1.DistillationJob, spend contract.Spend) bool {
	c := budgetCaps(dj.Spec.Teacher.Budget)
	return (c.MaxTokens <= 0 || spend.Tokens() < c.MaxTokens) &&
		(c.MaxRequests <= 0 || spend.Requests < c.MaxRequests) &&
		(c.MaxCost <= 0 || c.Cost(spend) < c.MaxCost)
}

// budgetStopped decides about an annotation Job that completed with shards the budget stopped: train on
// what it has (onExceeded Train, with usable annotations) or fail with BudgetExceeded.
func budgetStopped(dj *v1alpha1.DistillationJob, a *v1alpha1.AnnotationStatus, skipped string) (v1alpha1.ConditionReason, string, *stageFailure) {
	spent := contract.DescribeSpend(budgetCaps(dj.Spec.Teacher.Budget), spendOf(a))
	if dj.Spec.Teacher.Budget.OnExceeded == v1alpha1.BudgetActionTrain && a.OK > 0 {
		return v1alpha1.ReasonBudgetExceeded, fmt.Sprintf("teacher budget reached (%s): training on the %d usable annotations of %d inputs; %d inputs were not asked%s",
			spent, a.OK, a.Total+a.Unasked, a.Unasked, skipped), nil
	}
	return "", "", &stageFailure{reason: v1alpha1.ReasonBudgetExceeded, message: fmt.Sprintf(
		"teacher budget reached (%s): the shards stopped asking the teacher and kept every record; %d of %d inputs annotated, %d not asked. Raise spec.teacher.budget above the spend to annotate the rest%s",
		spent, a.Total, a.Total+a.Unasked, a.Unasked, skipped)}
}

// reopenWithRaisedBudget turns a job that failed with BudgetExceeded back into a running one when its
// budget now has room: the annotation runs again from where it stopped (continueWithRaisedBudget). It
// reports whether it did.
func reopenWithRaisedBudget(dj *v1alpha1.DistillationJob) bool {
	f := findCondition(dj, v1alpha1.ConditionFailed)
	if f == nil || f.Status != metav1.ConditionTrue || f.Reason != string(v1alpha1.ReasonBudgetExceeded) ||
		dj.Spec.Teacher.Budget == nil || !budgetHasRoom(dj, spendOf(dj.Status.Annotation)) {
		return false
	}
	setCondition(dj, v1alpha1.ConditionFailed, false, v1alpha1.ReasonInProgress, "the job has not failed")
	setCondition(dj, v1alpha1.ConditionComplete, false, v1alpha1.ReasonInProgress, "the job has not finished")
	markBudgetRaised(dj)
	dj.Status.CompletionTime = nil
	return true
}

// markBudgetRaised records that the annotation runs again under a raised budget; the shards' counts start
// over (their files keep what was done), the spend does not.
func markBudgetRaised(dj *v1alpha1.DistillationJob) {
	setCondition(dj, v1alpha1.ConditionAnnotated, false, v1alpha1.ReasonBudgetRaised, fmt.Sprintf(
		"the teacher budget was raised above the spend (%s); annotating the inputs left",
		contract.DescribeSpend(budgetCaps(dj.Spec.Teacher.Budget), spendOf(dj.Status.Annotation))))
	if a := dj.Status.Annotation; a != nil {
		a.ShardsSucceeded, a.BudgetExceeded, a.Unasked, a.DatasetHash = 0, false, 0, ""
	}
}

// continueWithRaisedBudget runs the annotation again when its completed Job is one the budget stopped and
// the budget has room now, or when the job was reopened for a raised budget: it deletes that Job (its
// records stay on the workspace) so that the stage creates a new one, whose shards resume from their
// files. It reports whether the pass must wait for the deletion.
func (r *DistillationJobReconciler) continueWithRaisedBudget(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) (bool, error) {
	job := o.annotation.job
	if dj.Spec.Teacher.Budget == nil || isTrue(dj.Status.Conditions, v1alpha1.ConditionAnnotated) || !jobCondition(job, batchv1.JobComplete) {
		return false, nil
	}
	if c := findCondition(dj, v1alpha1.ConditionAnnotated); c == nil || c.Reason != string(v1alpha1.ReasonBudgetRaised) {
		sum, _ := annotationResults(o.annotation.pods)
		if !sum.BudgetExceeded || !budgetHasRoom(dj, spendOf(dj.Status.Annotation).Max(sum.Spend().Add(estimateSpend(dj.Status.Estimate)))) {
			return false, nil
		}
		markBudgetRaised(dj)
	}
	if err := r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &job.UID}); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("deleting the annotation job the budget stopped: %w", err)
	}
	o.annotation = jobPods{}
	return true, nil
}
