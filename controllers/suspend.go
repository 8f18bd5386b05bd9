package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The suspend policy.
//
// Without Kueue, spec.suspend is mirrored onto the stage Jobs: batch Jobs delete their pods when
// suspended and start them again when resumed; annotator and trainer resume from their files.
//
// A job with Kueue's queue-name label leaves its stage Jobs' spec.suspend to Kueue: Kueue's webhook
// creates them suspended and Kueue unsuspends them when it admits their Workload. Writing suspend on such
// a Job would fight Kueue, which unsuspends any admitted Job. So spec.suspend: true deactivates the
// Workloads of the job's unfinished stage Jobs instead (Workload spec.active: false, Kueue's own way to
// stop a workload without requeueing it): Kueue evicts the Workload, suspends the Job, frees its quota and
// keeps it suspended. Resuming reactivates the Workloads the operator deactivated (and only those: they
// carry AnnotationDeactivatedBy), and Kueue queues them again. A suspended queued job starts no new stage
// Job, so Kueue never admits a stage the user has stopped.
//
// A queue-labelled job in a cluster without Kueue (no Workload API) has nothing to suspend its stage Jobs
// for it, so spec.suspend goes on the Job itself: suspending sets spec.suspend: true on each unfinished stage
// Job and marks it (AnnotationDeactivatedBy), and resuming unsuspends only Jobs so marked. Applying the
// Job never touches the field (the builders leave it out), so the two do not fight.
//
// The estimate stage (spec.annotation.estimate, estimateStage.runsWhileSuspended) is the exception: it runs
// while the job is suspended, since its result is what the user reads before resuming. Without Kueue its
// Job's spec.suspend is false; with Kueue it carries the queue label and Kueue admits it on its own like
// any stage Job (before, and independently of, the annotation's admission), and spec.suspend never
// deactivates its Workload.

// workloadGVK is Kueue's Workload, the version Kueue v0.15+ stores (tested with v0.17).
var workloadGVK = schema.GroupVersionKind{Group: "kueue.x-k8s.io", Version: "v1beta2", Kind: "Workload"}

// deactivatedForSuspend is the value of AnnotationDeactivatedBy on Workloads deactivated for spec.suspend.
const deactivatedForSuspend = "spec.suspend"

// workloadPollInterval is how soon a suspended queued job looks again for a Workload Kueue has not made yet.
const workloadPollInterval = 2 * time.Second

// stageSuspended is whether spec.suspend holds the job.
func stageSuspended(dj *v1alpha1.DistillationJob) bool {
	return ptr.Deref(dj.Spec.Suspend, false)
}

// queuedByKueue reports whether Kueue admits the job's stage Jobs (the job has Kueue's queue-name label).
func queuedByKueue(dj *v1alpha1.DistillationJob) bool {
	_, ok := dj.Labels[LabelKueueQueue]
	return ok
}

// stageSuspendField is what the builders put in a stage Job's spec.suspend: nil leaves it to Kueue.
func stageSuspendField(dj *v1alpha1.DistillationJob) *bool {
	if queuedByKueue(dj) {
		return nil
	}
	return ptr.To(stageSuspended(dj))
}

// holdsNewStageJobs reports whether a stage Job that does not exist yet must wait for the job to resume.
func holdsNewStageJobs(dj *v1alpha1.DistillationJob) bool {
	return queuedByKueue(dj) && stageSuspended(dj)
}

// queuedMessage says that a queued job's stage Job waits for Kueue to admit it, or is empty: the Job is
// suspended while the job itself is not (Kueue's webhook created it suspended, or Kueue evicted it).
func queuedMessage(dj *v1alpha1.DistillationJob, j *batchv1.Job) string {
	if !queuedByKueue(dj) || j == nil || !ptr.Deref(j.Spec.Suspend, false) || (stageSuspended(dj) && !runsWhileSuspended(j)) {
		return ""
	}
	return fmt.Sprintf("stage job %s waits for Kueue to admit it (LocalQueue %s)", j.Name, dj.Labels[LabelKueueQueue])
}

// ensureStageJob applies a stage Job, except that a suspended queued job creates none (but the Job of a
// stage that runs while suspended, the estimate).
func (r *DistillationJobReconciler) ensureStageJob(ctx context.Context, dj *v1alpha1.DistillationJob, s *stageJob, current, desired *batchv1.Job) error {
	if current == nil && holdsNewStageJobs(dj) && !s.runsWhileSuspended {
		return nil
	}
	_, err := ensure(ctx, r.Client, current, desired)
	return err
}

// reconcileQueuedSuspend makes each unfinished stage Job's Kueue Workload follow spec.suspend, or the Job
// itself where the cluster has no Kueue. It returns how soon to look again (a suspended job's Workload does
// not exist yet, or a cached stage Job was stale) and whether the cluster has no Kueue, which it asks only
// while that matters: the job is suspended, or a stage Job is.
func (r *DistillationJobReconciler) reconcileQueuedSuspend(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) (time.Duration, bool, error) {
	if !queuedByKueue(dj) {
		return 0, false, nil
	}
	suspend := stageSuspended(dj)
	var jobs []*batchv1.Job
	for _, j := range o.stageJobsFound() {
		// Only a suspended Job can have been deactivated by this operator (Kueue suspends the Job of an
		// inactive Workload); a running one needs a look only when the user suspends.
		if !jobFinished(j) && (suspend || ptr.Deref(j.Spec.Suspend, false)) && !runsWhileSuspended(j) {
			jobs = append(jobs, j)
		}
	}
	if !suspend && len(jobs) == 0 {
		return 0, false, nil
	}
	noKueue, err := r.kueueMissing()
	if err != nil {
		return 0, false, err
	}
	var wait time.Duration
	for _, j := range jobs {
		var w time.Duration
		if noKueue {
			w, err = r.suspendWithoutKueue(ctx, j, suspend)
		} else {
			w, err = r.suspendThroughKueue(ctx, j, suspend)
		}
		if err != nil {
			return 0, noKueue, err
		}
		wait = max(wait, w)
	}
	return wait, noKueue, nil
}

// kueueMissing reports whether the cluster serves no Kueue Workload API at all. One that serves Workloads
// without v1beta2 (Kueue before v0.15) is an error: that Kueue manages the Jobs, so the operator must not
// suspend them itself, and it cannot reach their Workloads.
func (r *DistillationJobReconciler) kueueMissing() (bool, error) {
	mappings, err := r.RESTMapper().RESTMappings(workloadGVK.GroupKind())
	if meta.IsNoMatchError(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up Kueue's Workload API: %w", err)
	}
	for _, m := range mappings {
		if m.GroupVersionKind.Version == workloadGVK.Version {
			return false, nil
		}
	}
	return false, fmt.Errorf("the cluster serves Kueue's Workload API without %s: queued jobs need Kueue v0.15 or later", workloadGVK.Version)
}

// suspendThroughKueue makes a queued stage Job's Workloads follow spec.suspend. It returns how soon to look
// again when a suspended job's Workload does not exist yet.
func (r *DistillationJobReconciler) suspendThroughKueue(ctx context.Context, j *batchv1.Job, suspend bool) (time.Duration, error) {
	workloads, err := r.stageWorkloads(ctx, j)
	if err != nil {
		return 0, fmt.Errorf("listing the Kueue Workloads of stage job %s: %w", j.Name, err)
	}
	for _, wl := range workloads {
		patch := workloadActivationPatch(&wl, suspend)
		if patch == nil {
			continue
		}
		if err := r.Patch(ctx, &wl, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); client.IgnoreNotFound(err) != nil {
			return 0, fmt.Errorf("setting spec.active of Kueue Workload %s (stage job %s): %w", wl.GetName(), j.Name, err)
		}
	}
	if len(workloads) == 0 && suspend {
		return workloadPollInterval, nil // Kueue makes the Workload just after the Job
	}
	return 0, nil
}

// suspendWithoutKueue makes a queued stage Job follow spec.suspend itself, in a cluster without Kueue. It
// returns how soon to look again when the cache's Job was older than the API server's.
func (r *DistillationJobReconciler) suspendWithoutKueue(ctx context.Context, j *batchv1.Job, suspend bool) (time.Duration, error) {
	patch := jobSuspendPatch(j, suspend)
	if patch == nil {
		return 0, nil
	}
	err := r.Patch(ctx, j, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner))
	if apierrors.IsConflict(err) {
		return staleJobRetry, nil // the cache's Job was stale: the next pass reads the newer one
	}
	if client.IgnoreNotFound(err) != nil {
		return 0, fmt.Errorf("setting spec.suspend of stage job %s (the cluster has no Kueue Workload API): %w", j.Name, err)
	}
	return 0, nil
}

// staleJobRetry is how soon a pass whose cached stage Job was stale looks again.
const staleJobRetry = time.Second

// jobSuspendPatch is the merge patch that makes a stage Job follow spec.suspend where no Kueue does it, or
// nil when it does already: suspending suspends and marks the Job; resuming unsuspends only a Job so marked.
// The Job is read from the cache, so the patch holds its resourceVersion: a Job someone else suspended
// meanwhile is not marked as the operator's.
func jobSuspendPatch(j *batchv1.Job, suspend bool) []byte {
	// A Job is active when it is not suspended.
	return activationPatch(!ptr.Deref(j.Spec.Suspend, false), j.Annotations[AnnotationDeactivatedBy] == deactivatedForSuspend,
		suspend, j.ResourceVersion, func(active bool) map[string]any { return map[string]any{"suspend": !active} })
}

// runsWhileSuspended reports whether a stage Job is the estimate's, the one stage that spec.suspend does not
// hold (its Kueue Workload is never deactivated).
func runsWhileSuspended(j *batchv1.Job) bool {
	return j.Labels[LabelStage] == StageEstimate && estimateStage.runsWhileSuspended
}

// stageWorkloads are the Kueue Workloads of a stage Job, read from the API server (not cached: they are
// read only while a queued job is suspended or waits to be admitted again).
func (r *DistillationJobReconciler) stageWorkloads(ctx context.Context, j *batchv1.Job) ([]unstructured.Unstructured, error) {
	var list unstructured.UnstructuredList
	list.SetGroupVersionKind(workloadGVK.GroupVersion().WithKind(workloadGVK.Kind + "List"))
	if err := r.List(ctx, &list, client.InNamespace(j.Namespace), client.MatchingLabels{LabelKueueJobUID: string(j.UID)}); err != nil {
		return nil, err
	}
	var owned []unstructured.Unstructured
	for _, wl := range list.Items {
		if metav1.IsControlledBy(&wl, j) {
			owned = append(owned, wl)
		}
	}
	return owned, nil
}

// workloadActivationPatch is the merge patch that makes a Workload follow spec.suspend, or nil when it
// does already. Suspending deactivates an active Workload and marks it; resuming reactivates only a
// Workload so marked, so an administrator's deactivation stands.
func workloadActivationPatch(wl *unstructured.Unstructured, suspend bool) []byte {
	active, found, _ := unstructured.NestedBool(wl.Object, "spec", "active")
	active = active || !found // Kueue's default is true
	return activationPatch(active, wl.GetAnnotations()[AnnotationDeactivatedBy] == deactivatedForSuspend, suspend, "",
		func(active bool) map[string]any { return map[string]any{"active": active} })
}

// activationPatch is the merge patch that deactivates an active object for spec.suspend and marks it, or
// reactivates one so marked on resume; nil when there is nothing to do. spec gives the object's spec
// fields for an activity; a resourceVersion, when given, makes the patch fail with a conflict on any newer
// object.
func activationPatch(active, marked, suspend bool, resourceVersion string, spec func(active bool) map[string]any) []byte {
	var patch map[string]any
	switch {
	case suspend && active:
		patch = map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{AnnotationDeactivatedBy: deactivatedForSuspend}},
			"spec":     spec(false),
		}
	case !suspend && marked:
		patch = map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{AnnotationDeactivatedBy: nil}},
			"spec":     spec(true),
		}
	default:
		return nil
	}
	if resourceVersion != "" { // the patch applies only to the object as read
		patch["metadata"].(map[string]any)["resourceVersion"] = resourceVersion
	}
	b, _ := json.Marshal(patch) // maps of strings and bools always marshal
	return b
}

// setSuspendedCondition records whether the job is held by spec.suspend; noKueue says a queued job's
// cluster has no Kueue (reconcileQueuedSuspend suspended its stage Job itself).
func setSuspendedCondition(dj *v1alpha1.DistillationJob, noKueue bool) {
	if stageSuspended(dj) {
		msg := "spec.suspend is true: stage pods are stopped"
		switch {
		case queuedByKueue(dj) && noKueue:
			msg = "spec.suspend is true: the stage job is suspended directly, since this cluster has no Kueue (no kueue.x-k8s.io Workload API) to queue it"
		case queuedByKueue(dj):
			msg = "spec.suspend is true: the stage's Kueue Workload is deactivated, so Kueue stops its pods and frees its quota"
		}
		if dj.Spec.Annotation.Estimate != nil && !isTrue(dj.Status.Conditions, v1alpha1.ConditionAnnotated) {
			msg = "spec.suspend is true: the estimate runs (spec.annotation.estimate); annotation starts once spec.suspend is false"
			if isTrue(dj.Status.Conditions, v1alpha1.ConditionEstimated) {
				msg = "spec.suspend is true: the estimate is in status.estimate; set spec.suspend to false to start annotation"
			}
		}
		setCondition(dj, v1alpha1.ConditionSuspended, true, v1alpha1.ReasonSuspended, msg)
		return
	}
	// Once resumed, the reason stays Resumed (not NotSuspended) so the condition does not flip again.
	if c := findCondition(dj, v1alpha1.ConditionSuspended); c != nil && (c.Status == "True" || c.Reason == string(v1alpha1.ReasonResumed)) {
		setCondition(dj, v1alpha1.ConditionSuspended, false, v1alpha1.ReasonResumed, "spec.suspend is false: the job runs")
		return
	}
	setCondition(dj, v1alpha1.ConditionSuspended, false, v1alpha1.ReasonNotSuspended, "the job is not suspended")
}
