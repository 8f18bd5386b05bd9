package controllers

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The settling policy: a finished stage Job's results are read from pods whose final status is known.
//
// A stage is judged once and for good from its pods' termination messages (the shards' sums, the trainer's
// evaluation, a failure's reason). The Job controller counts a pod in the Job's status only after the pod's
// final status is stored, but pods and Jobs reach the operator's cache through separate watches, in no
// common order: a pass woken by the finished Job can still see a pod running, or not see it at all. So when
// the cached pods of a finished Job fall short of its succeeded and failed counts, its pods are read from
// the API server itself before the stage is judged. That read shows every counted pod finished, or
// gone, or being deleted (the Job controller counts a pod it kills at a deadline or with a failed sibling
// as failed while it terminates): nothing more is to come from it. A Job whose pods are gone is read again
// on each pass until its stage is judged (a sweep's other points may keep the stage open).

// settlePods replaces the cached pods of each finished Job of the stage that fall short of its counts with
// the API server's, in runs and in o.
func (r *DistillationJobReconciler) settlePods(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed, runs []stageRun) error {
	for i, run := range runs {
		if !jobFinished(run.job) || podsCounted(run.job, run.pods) || run.job.Annotations[AnnotationStoppedBecause] != "" {
			continue // a stopped point's failure is read from the Job alone (failure_policy.go)
		}
		pods, err := r.livePods(ctx, dj, run.job)
		if err != nil {
			return err
		}
		runs[i].pods = pods
		if found := o.runOf(run.job); found != nil {
			found.pods = pods
		}
	}
	return nil
}

// livePods are a stage Job's pods as the API server holds them now.
func (r *DistillationJobReconciler) livePods(ctx context.Context, dj *v1alpha1.DistillationJob, j *batchv1.Job) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(j.Namespace),
		client.MatchingLabels{LabelJob: dj.Name, LabelStage: j.Labels[LabelStage]}); err != nil {
		return nil, fmt.Errorf("reading the pods of finished stage job %s: %w", j.Name, err)
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == j.UID {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// podsCounted reports whether the pods hold as many succeeded and failed ones as the Job counts.
func podsCounted(j *batchv1.Job, pods []corev1.Pod) bool {
	var succeeded, failed int32
	for _, p := range pods {
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			succeeded++
		case corev1.PodFailed:
			failed++
		}
	}
	return succeeded >= j.Status.Succeeded && failed >= j.Status.Failed
}
