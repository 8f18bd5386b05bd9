package controllers

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The stage policy: workspace, then annotation, then training (once every shard succeeded with usable
// annotations), then the StudentModel. A failed stage fails the job and no further stage starts.

// reconcileWorkspace ensures the PVC, the stage configs, the progress ConfigMap and the stage pods'
// identity. The PVC passes to the StudentModel once it exists, so the model files outlive the job.
func (r *DistillationJobReconciler) reconcileWorkspace(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) error {
	examples, err := r.examples(ctx, dj)
	if err != nil {
		return err
	}
	type child struct{ current, desired client.Object }
	// Two rounds of independent applies: a RoleBinding is admitted only once its Role exists (the
	// apiserver's RBAC escalation check reads it), so it waits for the first round.
	first := []child{
		{o.configMap, stageConfigMap(dj, examples)},
		{o.progress, progressConfigMap(dj)},
		{o.serviceAccount, stageServiceAccount(dj)},
		{o.role, stageRole(dj)},
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
	return nil
}

// examples are the job's few-shot examples, inline or read (uncached) from spec.task.examplesFrom.
func (r *DistillationJobReconciler) examples(ctx context.Context, dj *v1alpha1.DistillationJob) ([]contract.Example, error) {
	ref := dj.Spec.Task.ExamplesFrom
	if ref == nil {
		return inlineExamples(dj), nil
	}
	var cm corev1.ConfigMap
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: dj.Namespace, Name: ref.Name}, &cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading spec.task.examplesFrom ConfigMap %s: %w", ref.Name, err)
		}
		// Not there yet: GitOps tools may apply it after the job; wait for it.
		return nil, &specError{fmt.Sprintf("spec.task.examplesFrom: ConfigMap %s not found", ref.Name), false}
	}
	data, ok := cm.Data[ref.Key]
	if !ok {
		return nil, &specError{fmt.Sprintf("spec.task.examplesFrom: ConfigMap %s has no key %q", ref.Name, ref.Key), true}
	}
	ex, err := parseExamplesJSONL(fmt.Sprintf("spec.task.examplesFrom (ConfigMap %s key %s)", ref.Name, ref.Key), data)
	if err != nil {
		return nil, &specError{err.Error(), true}
	}
	return ex, nil
}

// specError is a problem with what the user wrote; waiting may fix it (the ConfigMap may appear).
type specError struct {
	msg       string
	permanent bool
}

func (e *specError) Error() string { return e.msg }

// updateAnnotationStatus sums finished shards' summaries and running shards' progress.
func updateAnnotationStatus(dj *v1alpha1.DistillationJob, o *observed) {
	sum, shardsDone := annotationResults(o.annotationPods)
	done, total := annotationProgress(o.progress)
	prev := dj.Status.Annotation
	a := &v1alpha1.AnnotationStatus{
		Total: max(total, int64(sum.Total)), Done: max(done, int64(sum.Total)),
		OK: int64(sum.OK), Rejected: int64(sum.Unparseable + sum.LabelMismatch), TeacherErrors: int64(sum.TeacherErrors),
		PromptTokens: sum.PromptTokens, CompletionTokens: sum.CompletionTokens, CacheHits: int64(sum.CacheHits),
		SkippedLines: int64(sum.SkippedLines), ShardsSucceeded: int32(shardsDone), ShardsTotal: dj.Spec.Annotation.Shards,
	}
	// Pods of finished shards can vanish (node loss, manual deletion): never report less than before.
	if prev != nil && prev.ShardsSucceeded > a.ShardsSucceeded {
		a = prev.DeepCopy()
		a.Done, a.Total = max(a.Done, done), max(a.Total, total)
	}
	dj.Status.Annotation = a
}

// reconcileStudentModel creates the job's StudentModel, fills in what only the job knows (metrics,
// provenance) and completes the job.
func (r *DistillationJobReconciler) reconcileStudentModel(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) error {
	desired := studentModel(dj)
	if o.model == nil {
		var existing v1alpha1.StudentModel
		err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), &existing)
		if err == nil && existing.Labels[LabelJobUID] != string(dj.UID) {
			msg := fmt.Sprintf("a StudentModel named %s already exists and was not made by this job; delete or rename it", desired.Name)
			markFailed(dj, v1alpha1.ReasonModelNameTaken, msg, r.Clock.Now())
			return nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("checking for StudentModel %s: %w", desired.Name, err)
		}
		if _, err := ensure(ctx, r.Client, nil, desired); err != nil {
			return fmt.Errorf("creating StudentModel: %w", err)
		}
		return nil // the StudentModel's watch event brings the next pass
	}
	examples, err := r.examples(ctx, dj)
	if err != nil {
		return err
	}
	metrics, source := studentModelStatusFromJob(dj, contract.PromptHash(contractTask(dj, examples)))
	if o.model.Status.Metrics == nil || *o.model.Status.Metrics != metrics || o.model.Status.Source == nil || *o.model.Status.Source != source {
		patch := client.MergeFrom(o.model.DeepCopy())
		o.model.Status.Metrics, o.model.Status.Source = &metrics, &source
		if err := r.Status().Patch(ctx, o.model, patch); err != nil {
			return fmt.Errorf("recording metrics on StudentModel %s: %w", o.model.Name, err)
		}
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
	case isTrue(c, v1alpha1.ConditionAnnotated):
		return v1alpha1.StageTraining
	case o != nil && o.annotationJob != nil:
		return v1alpha1.StageAnnotating
	}
	return v1alpha1.StagePending
}
