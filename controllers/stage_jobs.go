package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The stage-Job policy: annotation and training are each one batch Job. A stageJob describes a stage
// once (its builder, where its Job and pods are observed, how its results are read, which condition and
// reasons report it) and reconcileStageJob runs either of them the same way.

// stageJob describes one stage that runs as a batch Job.
type stageJob struct {
	// what names the stage in messages ("annotation").
	what string
	// condition reports the stage; True once it succeeded.
	condition v1alpha1.ConditionType
	// running and failed are the condition's reasons while the Job runs and when it failed.
	running, failed v1alpha1.ConditionReason
	// runningMessage says what runs.
	runningMessage string
	// build is the stage's pure Job builder; service, when set, the headless Service its pods need.
	build   func(*v1alpha1.DistillationJob, Config) *batchv1.Job
	service func(*v1alpha1.DistillationJob) *corev1.Service
	// job and pods are the stage's Job and pods as observed.
	job  func(*observed) *batchv1.Job
	pods func(*observed) []corev1.Pod
	// report writes the stage's live status (progress, sums of finished pods).
	report func(*v1alpha1.DistillationJob, *observed)
	// succeeded reads the results of a completed Job: the reason and message of the stage's success, or a
	// failure when the results are unusable.
	succeeded func(*v1alpha1.DistillationJob, *observed) (v1alpha1.ConditionReason, string, *stageFailure)
}

// stageJobs are the job's Job stages, in order.
var stageJobs = []*stageJob{annotationStage, trainingStage}

var annotationStage = &stageJob{
	what: "annotation", condition: v1alpha1.ConditionAnnotated,
	running: v1alpha1.ReasonAnnotating, failed: v1alpha1.ReasonAnnotationFailed,
	runningMessage: "annotation shards are running",
	build:          annotationJob,
	job:            func(o *observed) *batchv1.Job { return o.annotationJob },
	pods:           func(o *observed) []corev1.Pod { return o.annotationPods },
	report:         updateAnnotationStatus,
	succeeded:      annotationSucceeded,
}

var trainingStage = &stageJob{
	what: "training", condition: v1alpha1.ConditionTrained,
	running: v1alpha1.ReasonTraining, failed: v1alpha1.ReasonTrainingFailed,
	runningMessage: "the trainer is running",
	build:          trainingJob,
	service:        trainingService,
	job:            func(o *observed) *batchv1.Job { return o.trainingJob },
	pods:           func(o *observed) []corev1.Pod { return o.trainingPods },
	report:         updateTrainingProgress,
	succeeded:      trainingSucceeded,
}

// reconcileStageJob runs one stage Job and reports whether the stage is done.
func (r *DistillationJobReconciler) reconcileStageJob(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed, s *stageJob) (bool, ctrl.Result, error) {
	if isTrue(dj.Status.Conditions, s.condition) {
		return true, ctrl.Result{}, nil
	}
	if s.job(o) == nil { // about to create it: its names must be free (ownership.go)
		if err := r.checkDerivedNames(ctx, dj, o); err != nil {
			return false, ctrl.Result{}, err
		}
	}
	if s.service != nil {
		if svc := s.service(dj); svc != nil {
			if _, err := ensure(ctx, r.Client, o.trainingService, svc); err != nil {
				return false, ctrl.Result{}, fmt.Errorf("ensuring %s service: %w", s.what, err)
			}
		}
	}
	if err := r.ensureStageJob(ctx, dj, s.job(o), s.build(dj, r.Config)); err != nil {
		return false, ctrl.Result{}, fmt.Errorf("ensuring %s job: %w", s.what, err)
	}
	now := r.Clock.Now()
	markStarted(dj, now)
	s.report(dj, o)
	job, pods := s.job(o), s.pods(o)
	switch {
	case jobCondition(job, batchv1.JobFailed):
		failStage(dj, s, failedStage(job, pods, s.failed, s.what), now)
		return false, ctrl.Result{}, nil
	case jobCondition(job, batchv1.JobComplete):
		reason, msg, f := s.succeeded(dj, o)
		if f != nil {
			failStage(dj, s, *f, now)
			return false, ctrl.Result{}, nil
		}
		setCondition(dj, s.condition, true, reason, msg)
		return true, ctrl.Result{}, nil
	}
	if msg := queuedMessage(dj, job); msg != "" {
		setCondition(dj, s.condition, false, v1alpha1.ReasonQueued, msg)
		return false, ctrl.Result{}, nil
	}
	if msg := unschedulable(pods); msg != "" {
		setCondition(dj, s.condition, false, v1alpha1.ReasonUnschedulable, msg)
		return false, ctrl.Result{}, nil
	}
	fail, wait, retryIn := stuckStage(pods, now, r.Config.podStartGrace())
	if fail != nil {
		f := *fail
		f.message = fmt.Sprintf("%s cannot start: %s", s.what, f.message)
		failStage(dj, s, f, now)
		return false, ctrl.Result{}, r.deleteStageJobs(ctx, o)
	}
	if wait != nil {
		msg := wait.String()
		if m := mountProblem(ctx, r.APIReader, dj.Namespace, wait, now, r.Config.podStartGrace()); m != "" {
			msg = m
		}
		setCondition(dj, s.condition, false, v1alpha1.ReasonPodsWaiting, withRetryNote(s.runningMessage+"; "+msg, pods))
		return false, ctrl.Result{RequeueAfter: retryIn}, nil
	}
	setCondition(dj, s.condition, false, s.running, withRetryNote(s.runningMessage, pods))
	return false, ctrl.Result{}, nil
}

// admitStagePods asks the apiserver, before the first stage starts, whether it would admit each stage's
// pod (a server-side dry run of a pod from the stage Job's template): limit ranges, quota, Pod Security
// and pod validation refuse a pod only when the Job controller creates it, which would leave the stage
// waiting silently, and for training only after the teacher was paid. A refusal fails the job with
// InvalidSpec, naming the stage Job.
func (r *DistillationJobReconciler) admitStagePods(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) error {
	if o.annotationJob != nil {
		return nil // checked before the annotation Job was created
	}
	for _, s := range stageJobs {
		job := s.build(dj, r.Config)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: job.Name + "-0-", Namespace: dj.Namespace,
				Labels: job.Spec.Template.Labels, Annotations: job.Spec.Template.Annotations,
			},
			Spec: *job.Spec.Template.Spec.DeepCopy(),
		}
		if job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion {
			pod.Spec.Hostname = job.Name + "-0" // what the Job controller sets on Indexed pods
		}
		if err := r.Create(ctx, pod, client.DryRunAll); err != nil {
			return fmt.Errorf("%s pod of Job %s: %w", s.what, job.Name, err)
		}
	}
	return nil
}

// annotationSucceeded: a completed annotation Job succeeded if some answer is usable for training. The
// message also names the skipped dataset lines, if any.
func annotationSucceeded(dj *v1alpha1.DistillationJob, o *observed) (v1alpha1.ConditionReason, string, *stageFailure) {
	a := dj.Status.Annotation
	sum, _ := annotationResults(o.annotationPods)
	skipped := ""
	if note := skippedNote(sum); note != "" {
		skipped = "; " + note
	}
	if a.OK == 0 {
		return "", "", &stageFailure{reason: v1alpha1.ReasonNoUsableAnnotations, message: fmt.Sprintf(
			"annotation finished with no usable answer: %d inputs, %d rejected, %d teacher errors%s", a.Total, a.Rejected, a.TeacherErrors, skipped)}
	}
	return v1alpha1.ReasonAnnotationSucceeded, fmt.Sprintf("%d of %d inputs annotated usably (%d rejected, %d teacher errors, %d cache hits)%s",
		a.OK, a.Total, a.Rejected, a.TeacherErrors, a.CacheHits, skipped), nil
}

// updateTrainingProgress copies rank 0's live progress report into status.
func updateTrainingProgress(dj *v1alpha1.DistillationJob, o *observed) {
	if p, ok := trainingProgress(o.progress); ok {
		dj.Status.Training = &v1alpha1.TrainingStatus{
			Step: int64(p.Step), TotalSteps: int64(p.TotalSteps),
			Loss: formatDecimal(p.Loss, 4), LabelLoss: formatDecimal(p.LabelLoss, 4), RationaleLoss: formatDecimal(p.RationaleLoss, 4),
		}
	}
}

// trainingSucceeded reads the trainer's summary of a completed training Job into status.
func trainingSucceeded(dj *v1alpha1.DistillationJob, o *observed) (v1alpha1.ConditionReason, string, *stageFailure) {
	res, ok := trainResult(o.trainingPods)
	if !ok {
		return v1alpha1.ReasonTrainingSucceeded, "the trainer saved the model", nil
	}
	dj.Status.Evaluation = &v1alpha1.EvaluationStatus{Accuracy: formatDecimal(res.EvalAccuracy, 4), Examples: int64(res.EvalExamples)}
	if dj.Status.Training == nil {
		dj.Status.Training = &v1alpha1.TrainingStatus{}
	}
	dj.Status.Training.Step, dj.Status.Training.TotalSteps = int64(res.Steps), int64(res.Steps)
	dj.Status.Training.Loss = formatDecimal(res.TrainLoss, 4)
	return v1alpha1.ReasonTrainingSucceeded, fmt.Sprintf("trained %d steps; eval accuracy %s on %d examples",
		res.Steps, formatDecimal(res.EvalAccuracy, 4), res.EvalExamples), nil
}

// markStarted records when the job first ran a stage.
func markStarted(dj *v1alpha1.DistillationJob, now time.Time) {
	if dj.Status.StartTime == nil {
		t := metav1.NewTime(now)
		dj.Status.StartTime = &t
	}
}
