package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// DistillationJobReconciler runs a DistillationJob's stages.
type DistillationJobReconciler struct {
	client.Client
	// APIReader reads objects the operator does not cache: the user's examplesFrom ConfigMap, and the
	// derived names of children before they are created (ownership.go).
	APIReader client.Reader
	Recorder  record.EventRecorder
	Config    Config
	// Clock tells the time of every timed decision (deadline, TTL, start and completion times, pod-start
	// grace); tests inject a fake one.
	Clock clock.PassiveClock
}

// +kubebuilder:rbac:groups=distillery.dev,resources=distillationjobs,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=distillery.dev,resources=distillationjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=distillery.dev,resources=studentmodels,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts;persistentvolumeclaims,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch;list
// +kubebuilder:rbac:groups=kueue.x-k8s.io,resources=workloads,verbs=get;list;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile fetches the job, runs one pass of its stages and writes its status once.
func (r *DistillationJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var dj v1alpha1.DistillationJob
	if err := r.Get(ctx, req.NamespacedName, &dj); err != nil {
		if apierrors.IsNotFound(err) {
			forgetSpend(req.Namespace, req.Name) // a deleted job's series leave /metrics
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !dj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // children are garbage collected through their owner references
	}
	orig := dj.DeepCopy()
	result, err := r.reconcile(ctx, &dj)
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil // this pass's view was stale
	}
	if err == nil {
		dj.Status.ObservedGeneration = dj.Generation
	}
	setJobHealth(&dj, err)
	if serr := r.writeStatus(ctx, orig, &dj); serr != nil {
		if apierrors.IsConflict(serr) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, errors.Join(err, serr)
	}
	return result, err
}

// reconcile is one pass: finished jobs only wait for their TTL; running ones go through the stages in
// order until one is not done yet.
func (r *DistillationJobReconciler) reconcile(ctx context.Context, dj *v1alpha1.DistillationJob) (ctrl.Result, error) {
	now := r.Clock.Now()
	reopenWithRaisedBudget(dj)
	if finished(dj) {
		return r.reconcileFinished(ctx, dj, now)
	}
	o, err := observe(ctx, r.Client, dj)
	if err != nil {
		return ctrl.Result{}, err
	}
	if left, ok := deadlineLeft(dj, now); ok && left <= 0 {
		markFailed(dj, v1alpha1.ReasonDeadlineExceeded, deadlineMessage(dj), now)
		dj.Status.Stage, dj.Status.Rate = stageOf(dj, o), nil
		return ctrl.Result{RequeueAfter: stopRunningAfter}, nil
	}
	setInProgress(dj)
	res, err := r.runStages(ctx, dj, o)
	// Suspending acts even when the stages' pass failed: the user suspends to stop the spending.
	wait, noKueue, suspendErr := r.reconcileQueuedSuspend(ctx, dj, o)
	if wait > 0 {
		res.RequeueAfter = minPositive(res.RequeueAfter, wait)
	}
	if err == nil {
		err = suspendErr
	}
	setSuspendedCondition(dj, noKueue) // after the stages: its message says whether the estimate is in
	dj.Status.Stage = stageOf(dj, o)
	dj.Status.Progress = progressString(&dj.Status)
	var stale time.Duration
	if dj.Status.Rate, stale = updateRate(dj.Status.Rate, runningStageReport(dj, o.progress), now); stale > 0 {
		res.RequeueAfter = minPositive(res.RequeueAfter, stale)
	}
	if left, ok := deadlineLeft(dj, now); ok && !finished(dj) {
		res.RequeueAfter = minPositive(res.RequeueAfter, left)
	}
	if left, ok := ttlLeft(dj, now); ok {
		res.RequeueAfter = minPositive(res.RequeueAfter, left)
	}
	if isTrue(dj.Status.Conditions, v1alpha1.ConditionFailed) {
		res.RequeueAfter = minPositive(res.RequeueAfter, stopRunningAfter)
	}
	return res, err
}

// stopRunningAfter is when a job that failed in a pass comes back to stop its running stage Jobs
// (reconcileFinished): only once the failure is persisted, so a pass whose status write loses a race
// never leaves a job that looks pending with its stage Job gone.
const stopRunningAfter = time.Second

// runStages runs workspace, annotation (again, under a raised budget), training and model in order,
// stopping at the first not done.
// Before anything is created, the operator's own refusals (spec_policy.go) are checked; before the first
// stage starts, the apiserver is asked whether it would admit every stage's pod. Either way a spec that
// cannot run fails before the teacher is paid.
func (r *DistillationJobReconciler) runStages(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) (ctrl.Result, error) {
	if err := jobSpecRefusal(dj, r.Config); err != nil {
		return r.specProblem(dj, err)
	}
	if err := r.reconcileWorkspace(ctx, dj, o); err != nil {
		return r.specProblem(dj, err)
	}
	if err := r.admitStagePods(ctx, dj, o); err != nil {
		return r.specProblem(dj, err)
	}
	if wait, err := r.continueWithRaisedBudget(ctx, dj, o); err != nil || wait {
		return ctrl.Result{RequeueAfter: time.Second}, err // the Job's deletion brings the next pass sooner
	}
	for _, s := range stageJobs {
		done, res, err := r.reconcileStageJob(ctx, dj, o, s)
		if err != nil {
			return r.specProblem(dj, err)
		}
		if !done {
			return res, nil
		}
	}
	if err := r.reconcileStudentModel(ctx, dj, o); err != nil {
		return r.specProblem(dj, err)
	}
	return ctrl.Result{}, nil
}

// reconcileFinished stops what still runs of a failed job, deletes an expired job and otherwise waits for
// its TTL.
func (r *DistillationJobReconciler) reconcileFinished(ctx context.Context, dj *v1alpha1.DistillationJob, now time.Time) (ctrl.Result, error) {
	if isTrue(dj.Status.Conditions, v1alpha1.ConditionFailed) {
		o, err := observe(ctx, r.Client, dj)
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := r.deleteStageJobs(ctx, o); err != nil {
			return ctrl.Result{}, err
		}
	}
	left, ok := ttlLeft(dj, now)
	if !ok {
		return ctrl.Result{}, nil
	}
	if left > 0 {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	// Preconditions: delete exactly the object whose expiry this pass computed, not a newer one of the
	// same name, nor one whose spec changed since (as JobSet's TTL does).
	if err := r.Delete(ctx, dj, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &dj.UID, ResourceVersion: &dj.ResourceVersion}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("deleting expired job: %w", err)
	}
	return ctrl.Result{}, nil
}

// setInProgress keeps the summary conditions present (kstatus) while the job runs.
func setInProgress(dj *v1alpha1.DistillationJob) {
	if findCondition(dj, v1alpha1.ConditionComplete) == nil || !isTrue(dj.Status.Conditions, v1alpha1.ConditionComplete) {
		setCondition(dj, v1alpha1.ConditionComplete, false, v1alpha1.ReasonInProgress, "the job has not finished")
	}
	if !isTrue(dj.Status.Conditions, v1alpha1.ConditionFailed) {
		setCondition(dj, v1alpha1.ConditionFailed, false, v1alpha1.ReasonInProgress, "the job has not failed")
	}
}

// writeStatus persists the pass's status once, if it changed, then emits the events of the condition
// transitions it recorded.
func (r *DistillationJobReconciler) writeStatus(ctx context.Context, orig, dj *v1alpha1.DistillationJob) error {
	if equality.Semantic.DeepEqual(orig.Status, dj.Status) {
		return nil
	}
	// The patch carries the resourceVersion the pass read: a pass working from a stale object loses
	// (Conflict, requeued) instead of overwriting what a newer pass wrote.
	if err := r.Status().Patch(ctx, dj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	emitTransitionEvents(r.Recorder, dj, orig.Status.Conditions, dj.Status.Conditions)
	recordOutcome(orig, dj)
	recordSpend(orig, dj)
	return nil
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return max(b, time.Second)
	}
	return min(a, max(b, time.Second))
}

// SetupWithManager watches jobs, the children they own, their stage pods and their StudentModels.
func (r *DistillationJobReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if err := indexByLabel(context.Background(), mgr.GetFieldIndexer(), indexJob, LabelJob,
		&batchv1.Job{}, &corev1.Pod{}, &corev1.ConfigMap{}, &corev1.PersistentVolumeClaim{}, &corev1.ServiceAccount{},
		&rbacv1.Role{}, &rbacv1.RoleBinding{}, &corev1.Service{}, &v1alpha1.StudentModel{}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.DistillationJob{}, builder.WithPredicates(jobSpecOrStatusChanged())).
		Owns(&batchv1.Job{}, builder.WithPredicates(stageJobChanged())).
		Owns(&corev1.ConfigMap{}, builder.WithPredicates(skipCreate())).
		Owns(&corev1.ServiceAccount{}, builder.WithPredicates(skipCreate())).
		Owns(&rbacv1.Role{}, builder.WithPredicates(skipCreate())).
		Owns(&rbacv1.RoleBinding{}, builder.WithPredicates(skipCreate())).
		Owns(&corev1.Service{}, builder.WithPredicates(skipCreate())).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(requestForJobLabel), builder.WithPredicates(podLifecycleChanged())).
		Watches(&v1alpha1.StudentModel{}, handler.EnqueueRequestsFromMapFunc(requestForJobLabel)).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(r)
}
