package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The stage policy: workspace, then the estimate (with spec.annotation.estimate), then annotation, then
// training (once every shard succeeded with usable annotations), then the StudentModel. A failed stage
// fails the job and no further stage starts.

// reconcileWorkspace ensures the PVC, the stage configs, the progress ConfigMap, the budget ledger and the
// stage pods' identity. The PVC passes to the StudentModel once it exists, so the model files outlive the job.
// The stage configs are the job's snapshot: rendered once (task, examples, stage settings) and then the
// truth for every retry and for the model's provenance; examplesFrom is not read again.
func (r *DistillationJobReconciler) reconcileWorkspace(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) error {
	if err := r.checkDerivedNames(ctx, dj, o); err != nil {
		return err
	}
	config := o.configMap
	if config == nil {
		examples, err := r.examples(ctx, dj)
		if err != nil {
			return err
		}
		config = stageConfigMap(dj, examples)
	}
	type child struct{ current, desired client.Object }
	// Two rounds of independent applies: a RoleBinding is admitted only once its Role exists (the
	// apiserver's RBAC escalation check reads it), so it waits for the first round.
	first := []child{
		{o.configMap, config},
		{o.progress, progressConfigMap(dj)},
		{o.report, reportConfigMap(dj)},
		{o.serviceAccount, stageServiceAccount(dj)},
		{o.role, stageRole(dj)},
	}
	if ledger := budgetConfigMap(dj, ledgerEstimateSpend(dj, o)); ledger != nil {
		first = append(first, child{o.budget, ledger})
	}
	if pvc := workspaceClaim(dj, o.model); pvc != nil {
		first = append(first, child{o.claim, pvc})
	}
	for _, round := range [][]child{first, {{o.roleBinding, stageRoleBinding(dj)}}} {
		var g errgroup.Group // no shared cancellation: one failed apply must not abort the others
		for _, ch := range round {
			g.Go(func() error {
				if _, err := ensure(ctx, r.Client, ch.current, ch.desired); err != nil {
					return fmt.Errorf("ensuring workspace: %w", err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	o.configMap = config
	return nil
}

// examples are the job's few-shot examples, inline or read (uncached) from spec.task.examplesFrom. Only
// the snapshot reads them, once.
func (r *DistillationJobReconciler) examples(ctx context.Context, dj *v1alpha1.DistillationJob) ([]contract.Example, error) {
	ref := dj.Spec.Task.ExamplesFrom
	if ref == nil {
		return InlineExamples(dj), nil
	}
	var cm corev1.ConfigMap
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: dj.Namespace, Name: ref.Name}, &cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading spec.task.examplesFrom ConfigMap %s: %w", ref.Name, err)
		}
		// Not there yet: GitOps tools may apply it after the job; wait for it.
		return nil, &specError{msg: fmt.Sprintf("spec.task.examplesFrom: ConfigMap %s not found", ref.Name)}
	}
	data, ok := cm.Data[ref.Key]
	if !ok {
		return nil, &specError{msg: fmt.Sprintf("spec.task.examplesFrom: ConfigMap %s has no key %q", ref.Name, ref.Key), permanent: true}
	}
	ex, err := ParseExamplesJSONL(fmt.Sprintf("spec.task.examplesFrom (ConfigMap %s key %s)", ref.Name, ref.Key), data)
	if err != nil {
		return nil, &specError{msg: err.Error(), permanent: true}
	}
	return ex, nil
}

// snapshot is the job's rendered annotate.json, read back from its config ConfigMap.
func snapshot(cm *corev1.ConfigMap) (contract.AnnotateConfig, error) {
	var cfg contract.AnnotateConfig
	if cm == nil {
		return cfg, errors.New("the job's config ConfigMap is missing")
	}
	if err := json.Unmarshal([]byte(cm.Data[annotateConfigKey]), &cfg); err != nil {
		return cfg, fmt.Errorf("reading %s of ConfigMap %s: %w", annotateConfigKey, cm.Name, err)
	}
	return cfg, nil
}

// specError is a problem with what the user wrote (or with names the job needs); waiting may fix it
// (the ConfigMap may appear, the garbage collector may delete an old job's leftovers). reason is the
// condition reason; empty means ReasonInvalidSpec.
type specError struct {
	msg       string
	permanent bool
	reason    v1alpha1.ConditionReason
}

func (e *specError) Error() string { return e.msg }

func (e *specError) conditionReason() v1alpha1.ConditionReason {
	if e.reason == "" {
		return v1alpha1.ReasonInvalidSpec
	}
	return e.reason
}

// updateAnnotationStatus sums finished shards' summaries and running shards' progress. The spend never
// goes down: it is the larger of the live reports, the summaries and what status said before (a pod that
// vanished, an annotation Job run again after a raised budget).
func updateAnnotationStatus(dj *v1alpha1.DistillationJob, o *observed) {
	sum, shardsDone := annotationResults(o.annotation.pods)
	live := annotationProgress(o.progress)
	done, total := int64(live.Done), int64(live.Total)
	prev := dj.Status.Annotation
	a := &v1alpha1.AnnotationStatus{
		Total: max(total, int64(sum.Total)), Done: max(done, int64(sum.Total)),
		OK: int64(sum.OK), Rejected: int64(sum.Unparseable + sum.LabelMismatch), TeacherErrors: int64(sum.TeacherErrors),
		SkippedLines: int64(sum.SkippedLines), ShardsSucceeded: int32(shardsDone), ShardsTotal: dj.Spec.Annotation.Shards,
		DatasetHash: datasetHashes(o.annotation.pods), EvalTotal: int64(sum.EvalTotal),
		BudgetExceeded: sum.BudgetExceeded || live.BudgetExceeded, Unasked: int64(sum.Unasked),
	}
	// Pods of finished shards can vanish (node loss, manual deletion): never report less than before.
	if prev != nil && prev.ShardsSucceeded > a.ShardsSucceeded {
		a = prev.DeepCopy()
		a.Done, a.Total = max(a.Done, done), max(a.Total, total)
	}
	setSpend(dj, a, prev, sum, live)
	dj.Status.Annotation = a
}

// reconcileStudentModel creates the job's StudentModel, with what only the job knows (metrics,
// provenance from the snapshot) in its spec, and completes the job.
func (r *DistillationJobReconciler) reconcileStudentModel(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) error {
	if o.model == nil {
		if err := r.checkDerivedNames(ctx, dj, o); err != nil {
			return err
		}
	}
	if o.model == nil {
		snap, err := snapshot(o.configMap)
		if err != nil {
			return err
		}
		if _, err := ensure(ctx, r.Client, nil, studentModel(dj, snap)); err != nil {
			return fmt.Errorf("creating StudentModel: %w", err)
		}
		return nil // the StudentModel's watch event brings the next pass
	}
	dj.Status.StudentModel = o.model.Name
	setCondition(dj, v1alpha1.ConditionComplete, true, v1alpha1.ReasonSucceeded,
		fmt.Sprintf("student model %s is trained; serve it at its StudentModel's endpoint", o.model.Name))
	setCondition(dj, v1alpha1.ConditionFailed, false, v1alpha1.ReasonSucceeded, "the job succeeded")
	markFinished(dj, r.Clock.Now())
	return nil
}

// stageOf is the human summary of where the job is.
func stageOf(dj *v1alpha1.DistillationJob, o *observed) v1alpha1.Stage {
	c := dj.Status.Conditions
	switch {
	case isTrue(c, v1alpha1.ConditionFailed):
		return v1alpha1.StageFailed
	case isTrue(c, v1alpha1.ConditionComplete):
		return v1alpha1.StageSucceeded
	case isTrue(c, v1alpha1.ConditionSuspended):
		return v1alpha1.StageSuspended
	case isTrue(c, v1alpha1.ConditionTrained) && dj.Spec.Experiments != nil:
		return v1alpha1.StageReporting
	case isTrue(c, v1alpha1.ConditionAnnotated):
		return v1alpha1.StageTraining
	case o != nil && o.annotation.job != nil:
		return v1alpha1.StageAnnotating
	case o != nil && o.estimate.job != nil:
		return v1alpha1.StageEstimating
	}
	return v1alpha1.StagePending
}
