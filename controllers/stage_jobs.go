package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The stage-Job policy: the estimate (spec.annotation.estimate), annotation, training and (for a sweep) its
// report are each batch Jobs. A stageJob
// describes a stage once (the Jobs it runs, how many at a time, how its results are read, which condition
// and reasons report it) and reconcileStageJob runs any of them the same way. A stage has one Job, except
// training in a sweep: one Job per point (experiments.go). The stage succeeds once every Job finished and
// one succeeded; it fails when every Job failed. An optional stage (the report) never fails the job: its
// failure is recorded on its condition and the job goes on.

// stageJob describes one stage that runs as batch Jobs.
type stageJob struct {
	// what names the stage in messages ("annotation").
	what string
	// condition reports the stage; True once it succeeded.
	condition v1alpha1.ConditionType
	// running and failed are the condition's reasons while the Jobs run and when the stage failed.
	running, failed v1alpha1.ConditionReason
	// runningMessage says what runs.
	runningMessage string
	// optional stages record their failure on their condition instead of failing the job.
	optional bool
	// runsWhileSuspended stages run whatever spec.suspend says (the estimate: it is what the user reads
	// before resuming); their Jobs' spec.suspend is set by their builder and their Kueue Workloads are left
	// active (suspend.go).
	runsWhileSuspended bool
	// runs are the stage's Jobs, built by the stage's pure builders, with what observe found of each; none
	// when the stage does not apply to the job.
	runs func(*v1alpha1.DistillationJob, *observed, Config) []stageRun
	// maxParallel is how many of the stage's Jobs may run at once; nil: all of them.
	maxParallel func(*v1alpha1.DistillationJob) int
	// report writes the stage's live status (progress, sums of finished pods, a sweep's rows).
	report func(*v1alpha1.DistillationJob, *observed)
	// succeeded reads the results once every Job finished and one succeeded: the reason and message of the
	// stage's success, or a failure when the results are unusable.
	succeeded func(*v1alpha1.DistillationJob, *observed) (v1alpha1.ConditionReason, string, *stageFailure)
}

// stageRun is one Job of a stage: what the builder wants and what exists of it.
type stageRun struct {
	// what names the Job in messages ("training point 3").
	what    string
	desired *batchv1.Job
	// companion is what the Job needs applied before it (the headless Service of multi-worker training,
	// the report's config), and companionCurrent what exists of it; companion is nil when nothing.
	companion, companionCurrent client.Object
	jobPods
}

// stageJobs are the job's Job stages, in order.
var stageJobs = []*stageJob{estimateStage, annotationStage, trainingStage, reportStage}

var estimateStage = &stageJob{
	what: "estimate", condition: v1alpha1.ConditionEstimated,
	running: v1alpha1.ReasonEstimating, failed: v1alpha1.ReasonEstimateFailed,
	runningMessage:     "the estimate Job asks the teacher about a sample of the dataset",
	runsWhileSuspended: true,
	runs: func(dj *v1alpha1.DistillationJob, o *observed, cfg Config) []stageRun {
		if dj.Spec.Annotation.Estimate == nil {
			return nil
		}
		return []stageRun{{what: "estimate", desired: estimateJob(dj, cfg), jobPods: o.estimate}}
	},
	report:    func(*v1alpha1.DistillationJob, *observed) {},
	succeeded: estimateSucceeded,
}

var annotationStage = &stageJob{
	what: "annotation", condition: v1alpha1.ConditionAnnotated,
	running: v1alpha1.ReasonAnnotating, failed: v1alpha1.ReasonAnnotationFailed,
	runningMessage: "annotation shards are running",
	runs: func(dj *v1alpha1.DistillationJob, o *observed, cfg Config) []stageRun {
		return []stageRun{{what: "annotation", desired: annotationJob(dj, cfg), jobPods: o.annotation}}
	},
	report:    updateAnnotationStatus,
	succeeded: annotationSucceeded,
}

var trainingStage = &stageJob{
	what: "training", condition: v1alpha1.ConditionTrained,
	running: v1alpha1.ReasonTraining, failed: v1alpha1.ReasonTrainingFailed,
	runningMessage: "the trainer is running",
	runs:           trainingRuns,
	maxParallel: func(dj *v1alpha1.DistillationJob) int {
		if e := dj.Spec.Experiments; e != nil {
			return int(e.MaxParallel)
		}
		return 1
	},
	report:    updateTrainingStatus,
	succeeded: trainingSucceeded,
}

var reportStage = &stageJob{
	what: "report", condition: v1alpha1.ConditionReported,
	running: v1alpha1.ReasonReporting, failed: v1alpha1.ReasonReportFailed,
	runningMessage: "the report Job is drawing the sweep's report",
	optional:       true,
	runs:           reportRuns,
	report:         func(*v1alpha1.DistillationJob, *observed) {},
	succeeded: func(dj *v1alpha1.DistillationJob, _ *observed) (v1alpha1.ConditionReason, string, *stageFailure) {
		return v1alpha1.ReasonReportSucceeded, fmt.Sprintf("the report is in ConfigMap %s (keys %s, %s)",
			contract.ReportConfigMapName(dj.Name), contract.ReportJSONKey, contract.ReportSVGKey), nil
	},
}

// trainingRuns are the job's training Jobs: its single run, or one per point of its sweep.
func trainingRuns(dj *v1alpha1.DistillationJob, o *observed, cfg Config) []stageRun {
	points := trainingPoints(dj)
	runs := make([]stageRun, 0, len(points))
	for _, p := range points {
		run := stageRun{what: pointWhat(p), desired: trainingJob(dj, cfg, p)}
		if found := o.training[p.index]; found != nil {
			run.jobPods = *found
		}
		if svc := trainingService(dj, p); svc != nil {
			run.companion = svc
			if cur := o.trainingServices[p.index]; cur != nil {
				run.companionCurrent = cur
			}
		}
		runs = append(runs, run)
	}
	return runs
}

// reportRuns is a sweep's report Job, once its served point is known; a single run has none (its trainer
// writes the report).
func reportRuns(dj *v1alpha1.DistillationJob, o *observed, cfg Config) []stageRun {
	if dj.Spec.Experiments == nil || dj.Status.ServedExperiment == nil || o.configMap == nil {
		return nil
	}
	return []stageRun{{what: "report", desired: reportJob(dj, cfg), jobPods: o.reportJob,
		companion: reportStageConfig(dj, o.configMap), companionCurrent: o.configMap}}
}

// reconcileStageJob runs one stage's Jobs and reports whether the stage is done.
func (r *DistillationJobReconciler) reconcileStageJob(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed, s *stageJob) (bool, ctrl.Result, error) {
	if stageDone(dj, s) {
		return true, ctrl.Result{}, nil
	}
	runs := s.runs(dj, o, r.Config)
	if len(runs) == 0 {
		return true, ctrl.Result{}, nil
	}
	if err := r.startRuns(ctx, dj, o, s, runs); err != nil {
		return false, ctrl.Result{}, err
	}
	if err := r.settlePods(ctx, dj, o, runs); err != nil { // a finished Job's pods, all of them (settle.go)
		return false, ctrl.Result{}, err
	}
	now := r.Clock.Now()
	markStarted(dj, now)
	s.report(dj, o)
	return r.judgeStage(ctx, dj, o, s, runs, now)
}

// stageDone reports whether the stage needs nothing more: it succeeded, or an optional stage failed.
func stageDone(dj *v1alpha1.DistillationJob, s *stageJob) bool {
	c := findCondition(dj, s.condition)
	return c != nil && (c.Status == metav1.ConditionTrue || (s.optional && c.Reason == string(s.failed)))
}

// startRuns applies the stage's Jobs: those that run are kept as wanted (suspend), and new ones start in
// order while fewer than maxParallel run. Finished Jobs are left alone.
func (r *DistillationJobReconciler) startRuns(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed, s *stageJob, runs []stageRun) error {
	limit := len(runs)
	if s.maxParallel != nil {
		limit = max(s.maxParallel(dj), 1)
	}
	active, missing := 0, false
	for _, run := range runs {
		if run.job == nil {
			missing = true
		} else if !jobFinished(run.job) {
			active++
		}
	}
	if missing && active < limit { // about to create a Job: its names must be free (ownership.go)
		if err := r.checkDerivedNames(ctx, dj, o); err != nil {
			return err
		}
		runs = s.runs(dj, o, r.Config) // with what the check adopted
	}
	for _, run := range runs {
		if jobFinished(run.job) {
			continue
		}
		if run.job == nil {
			if active >= limit {
				continue
			}
			active++
		}
		if run.companion != nil {
			if _, err := ensure(ctx, r.Client, run.companionCurrent, run.companion); err != nil {
				return fmt.Errorf("ensuring what the %s job needs: %w", run.what, err)
			}
		}
		if err := r.ensureStageJob(ctx, dj, s, run.job, run.desired); err != nil {
			return fmt.Errorf("ensuring %s job: %w", run.what, err)
		}
	}
	return nil
}

// judgeStage decides about a stage from its Jobs: done once every Job finished and one succeeded; failed
// once every Job failed; otherwise its condition says what runs or waits.
func (r *DistillationJobReconciler) judgeStage(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed, s *stageJob, runs []stageRun, now time.Time) (bool, ctrl.Result, error) {
	var failures []stageFailure
	var live []stageRun
	for _, run := range runs {
		switch {
		case jobCondition(run.job, batchv1.JobFailed):
			failures = append(failures, failedStage(run.job, run.pods, s.failed, run.what))
		case !jobCondition(run.job, batchv1.JobComplete):
			live = append(live, run)
		}
	}
	switch {
	case len(failures) == len(runs):
		return r.stageFailed(dj, s, allFailed(failures, s.failed), now), ctrl.Result{}, nil
	case len(live) == 0:
		reason, msg, f := s.succeeded(dj, o)
		if f != nil {
			return r.stageFailed(dj, s, *f, now), ctrl.Result{}, nil
		}
		setCondition(dj, s.condition, true, reason, msg)
		return true, ctrl.Result{}, nil
	}
	judged, stuck := pointsToJudge(runs, live, now, r.Config.podStartGrace())
	if err := stopPoints(ctx, r.Client, stuck); err != nil {
		return false, ctrl.Result{}, err
	}
	var pods []corev1.Pod
	for _, run := range judged {
		pods = append(pods, run.pods...)
	}
	running := s.runningMessage + sweepNote(runs, live, failures)
	if queued := allQueued(dj, live); queued != "" {
		setCondition(dj, s.condition, false, v1alpha1.ReasonQueued, queued)
		return false, ctrl.Result{}, nil
	}
	if msg := unschedulable(pods); msg != "" && !runningPod(judged) {
		setCondition(dj, s.condition, false, v1alpha1.ReasonUnschedulable, msg)
		return false, ctrl.Result{}, nil
	}
	fail, wait, retryIn := stuckStage(pods, now, r.Config.podStartGrace())
	if fail != nil && !s.optional { // an optional stage's Job has its own deadline
		f := *fail
		f.message = fmt.Sprintf("%s cannot start: %s", s.what, f.message)
		failStage(dj, s, f, now)
		return false, ctrl.Result{}, nil // its running stage Jobs are stopped once this is persisted
	}
	if wait != nil {
		msg := wait.String()
		if m := mountProblem(ctx, r.APIReader, dj.Namespace, wait, now, r.Config.podStartGrace()); m != "" {
			msg = m
		}
		setCondition(dj, s.condition, false, v1alpha1.ReasonPodsWaiting, withRetryNote(running+"; "+msg, pods))
		return false, ctrl.Result{RequeueAfter: retryIn}, nil
	}
	setCondition(dj, s.condition, false, s.running, withRetryNote(running, pods))
	return false, ctrl.Result{}, nil
}

// stageFailed records a failed stage: an optional stage on its own condition (done: the job goes on),
// any other by failing the job.
func (r *DistillationJobReconciler) stageFailed(dj *v1alpha1.DistillationJob, s *stageJob, f stageFailure, now time.Time) bool {
	if s.optional {
		setCondition(dj, s.condition, false, s.failed, f.message)
		return true
	}
	failStage(dj, s, f, now)
	return false
}

// allFailed is the failure of a stage every Job of which failed: the one Job's own, or, for a sweep, every
// point's in one message, with their common reason (else the stage's).
func allFailed(fs []stageFailure, reason v1alpha1.ConditionReason) stageFailure {
	if len(fs) == 1 {
		return fs[0]
	}
	msgs := make([]string, 0, len(fs))
	common := fs[0].reason
	for _, f := range fs {
		msgs = append(msgs, f.message)
		if f.reason != common {
			common = reason
		}
	}
	return stageFailure{reason: common, message: fmt.Sprintf("every one of the %d points failed: %s", len(fs), strings.Join(msgs, "; "))}
}

// PointFailure is why one training run failed: the reason its failure gives (FailureReason) and a
// message naming the run.
type PointFailure struct {
	Reason  v1alpha1.ConditionReason
	Message string
}

// AllPointsFailed is the training stage's failure once every one of its runs failed (fs, one per run):
// the reason and message the job fails with.
func AllPointsFailed(fs []PointFailure) PointFailure {
	sf := make([]stageFailure, 0, len(fs))
	for _, f := range fs {
		sf = append(sf, stageFailure{reason: f.Reason, message: f.Message})
	}
	f := allFailed(sf, v1alpha1.ReasonTrainingFailed)
	return PointFailure{Reason: f.reason, Message: f.message}
}

// sweepNote counts a sweep's points for the running message; "" for a stage of one Job.
func sweepNote(runs, live []stageRun, failures []stageFailure) string {
	if len(runs) < 2 {
		return ""
	}
	started := 0
	for _, run := range live {
		if run.job != nil {
			started++
		}
	}
	return fmt.Sprintf(" (points: %d finished, %d failed, %d running, %d waiting for a slot of spec.experiments.maxParallel)",
		len(runs)-len(live), len(failures), started, len(live)-started)
}

// allQueued is the queued message of the first unfinished Job when every one of them waits for Kueue to
// admit it, else "".
func allQueued(dj *v1alpha1.DistillationJob, live []stageRun) string {
	first := ""
	for _, run := range live {
		msg := queuedMessage(dj, run.job)
		if msg == "" {
			return ""
		}
		if first == "" {
			first = msg
		}
	}
	return first
}

// jobFinished reports whether a stage Job completed or failed (false for none).
func jobFinished(j *batchv1.Job) bool {
	return jobCondition(j, batchv1.JobComplete) || jobCondition(j, batchv1.JobFailed)
}

// admitStagePods asks the apiserver, before the first stage starts, whether it would admit each stage's
// pod (a server-side dry run of a pod from the stage Job's template): limit ranges, quota, Pod Security
// and pod validation refuse a pod only when the Job controller creates it, which would leave the stage
// waiting silently, and for training only after the teacher was paid. A refusal fails the job with
// InvalidSpec, naming the stage Job.
func (r *DistillationJobReconciler) admitStagePods(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) error {
	if o.estimate.job != nil || o.annotation.job != nil {
		return nil // checked before the first stage Job was created
	}
	for _, s := range stageJobs {
		runs := s.runs(dj, o, r.Config)
		if len(runs) == 0 {
			continue // a stage that does not run yet (a sweep's report)
		}
		job := runs[0].desired // a sweep's points differ only in their config key and base model
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
	sum, _ := annotationResults(o.annotation.pods)
	skipped := ""
	if note := skippedNote(sum); note != "" {
		skipped = "; " + note
	}
	if sum.BudgetExceeded {
		return budgetStopped(dj, a, skipped)
	}
	if a.OK == 0 {
		return "", "", &stageFailure{reason: v1alpha1.ReasonNoUsableAnnotations, message: fmt.Sprintf(
			"annotation finished with no usable answer: %d inputs, %d rejected, %d teacher errors%s", a.Total, a.Rejected, a.TeacherErrors, skipped)}
	}
	return v1alpha1.ReasonAnnotationSucceeded, fmt.Sprintf("%d of %d inputs annotated usably (%d rejected, %d teacher errors, %d cache hits)%s",
		a.OK, a.Total, a.Rejected, a.TeacherErrors, a.CacheHits, skipped), nil
}

// updateTrainingStatus writes the training stage's live status: a single run's progress, or a sweep's
// rows (each running point's step of its total, from its own progress key).
func updateTrainingStatus(dj *v1alpha1.DistillationJob, o *observed) {
	if dj.Spec.Experiments != nil {
		updateExperiments(dj, o)
		return
	}
	if p, ok := trainingProgress(o.progress); ok {
		dj.Status.Training = &v1alpha1.TrainingStatus{
			Step: int64(p.Step), TotalSteps: int64(p.TotalSteps),
			Loss: formatDecimal(p.Loss, 4), LabelLoss: formatDecimal(p.LabelLoss, 4), RationaleLoss: formatDecimal(p.RationaleLoss, 4),
		}
	}
}

// trainingSucceeded reads the trainers' summaries into status once every training Job finished and one
// succeeded: a single run's, or the sweep's served point's (chosen here).
func trainingSucceeded(dj *v1alpha1.DistillationJob, o *observed) (v1alpha1.ConditionReason, string, *stageFailure) {
	if dj.Spec.Experiments != nil {
		served, note := ServedPoint(dj)
		if served < 0 {
			return "", "", &stageFailure{reason: v1alpha1.ReasonTrainingFailed, message: "no point of the sweep succeeded"}
		}
		markServed(dj, o, served)
		return v1alpha1.ReasonTrainingSucceeded, SweepSummary(dj, served, note), nil
	}
	res, ok := trainResult(podsOf(o.training[singleRun]))
	if !ok {
		return v1alpha1.ReasonTrainingSucceeded, "the trainer saved the model", nil
	}
	recordTrainResult(dj, res)
	return v1alpha1.ReasonTrainingSucceeded, fmt.Sprintf("trained %d steps; %s", res.Steps, evaluationSummary(dj.Status.Evaluation)), nil
}

// recordTrainResult puts a trainer's summary (the single run's, or the served point's) into status.
func recordTrainResult(dj *v1alpha1.DistillationJob, res contract.TrainResult) {
	dj.Status.Evaluation = evaluationStatus(dj, res)
	if dj.Status.Training == nil {
		dj.Status.Training = &v1alpha1.TrainingStatus{}
	}
	dj.Status.Training.Step, dj.Status.Training.TotalSteps = int64(res.Steps), int64(res.Steps)
	dj.Status.Training.Loss = formatDecimal(res.TrainLoss, 4)
}

// markStarted records when the job first ran a stage.
func markStarted(dj *v1alpha1.DistillationJob, now time.Time) {
	if dj.Status.StartTime == nil {
		t := metav1.NewTime(now)
		dj.Status.StartTime = &t
	}
}
