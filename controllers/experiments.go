package controllers

import (
	"fmt"
	"math"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The sweep policy (spec.experiments): which training runs a job has, in which order, what its status
// table says of each, and which one is served. A job without spec.experiments has one run, the single
// run (index singleRun), whose Job, config key and folder keep their names (<job>-train, train.json, the
// job folder); a sweep's points are <job>-train-<index>, train-<index>.json and points/<index>. The
// training stage (stage_jobs.go) runs both the same way.

// singleRun is the index of a job's only training run when it has no spec.experiments.
const singleRun = -1

// trainingPoint is one training run's settings.
type trainingPoint struct {
	// index is the point's number in the sweep, or singleRun.
	index int
	// total is how many points the sweep has (1 for a single run).
	total int
	// fraction and rationaleWeight are the spec's decimal strings.
	fraction        string
	mode            v1alpha1.TrainingMode
	rationaleWeight string
	student         v1alpha1.ExperimentStudent
	seed            int32
}

// inSweep reports whether the run is a point of spec.experiments.
func (p trainingPoint) inSweep() bool { return p.index != singleRun }

// trainingPoints are the job's training runs: its single run, or the Cartesian product of
// spec.experiments in index order: baseModels, modes, rationaleWeights, dataFractions, seeds, the last
// varying fastest, each list in the order written. A list left out is the single value of spec.training
// (spec.student for baseModels, "1" for dataFractions).
func trainingPoints(dj *v1alpha1.DistillationJob) []trainingPoint {
	t := dj.Spec.Training
	single := trainingPoint{
		index: singleRun, total: 1, fraction: "1", mode: t.Mode, rationaleWeight: t.RationaleWeight, seed: t.Seed,
		student: v1alpha1.ExperimentStudent{BaseModel: dj.Spec.Student.BaseModel, BaseModelFrom: dj.Spec.Student.BaseModelFrom},
	}
	e := dj.Spec.Experiments
	if e == nil {
		return []trainingPoint{single}
	}
	students := orOne(e.BaseModels, single.student)
	modes := orOne(e.Modes, single.mode)
	weights := orOne(e.RationaleWeights, single.rationaleWeight)
	fractions := orOne(e.DataFractions, single.fraction)
	seeds := orOne(e.Seeds, single.seed)
	total := len(students) * len(modes) * len(weights) * len(fractions) * len(seeds)
	out := make([]trainingPoint, 0, total)
	for _, st := range students {
		for _, m := range modes {
			for _, w := range weights {
				for _, f := range fractions {
					for _, sd := range seeds {
						out = append(out, trainingPoint{index: len(out), total: total, fraction: f, mode: m,
							rationaleWeight: w, student: st, seed: sd})
					}
				}
			}
		}
	}
	return out
}

// orOne is the list, or the one default value when the list is not set.
func orOne[T any](list []T, def T) []T {
	if len(list) == 0 {
		return []T{def}
	}
	return list
}

// servedTrainingPoint is the run whose model the job serves: its single run, or the sweep's point in
// status.servedExperiment.
func servedTrainingPoint(dj *v1alpha1.DistillationJob) trainingPoint {
	points := trainingPoints(dj)
	if s := dj.Status.ServedExperiment; s != nil && int(*s) < len(points) && int(*s) >= 0 {
		return points[*s]
	}
	return points[0]
}

// studentDescription names a run's student the way a user would find it again: the hub id, or
// "pvc/<claim>/<path>".
func studentDescription(s v1alpha1.ExperimentStudent) string {
	if from := s.BaseModelFrom; from != nil {
		return "pvc/" + from.ClaimName + "/" + from.Path
	}
	return s.BaseModel
}

// updateExperiments fills status.experiments, one row per point, from the points' training Jobs and the
// trainers' termination summaries. A row that reached Succeeded or Failed keeps what it said (its pods
// may be gone; see keepRow).
func updateExperiments(dj *v1alpha1.DistillationJob, o *observed) {
	prev := map[int32]v1alpha1.ExperimentStatus{}
	for _, row := range dj.Status.Experiments {
		prev[row.Index] = row
	}
	points := trainingPoints(dj)
	rows := make([]v1alpha1.ExperimentStatus, 0, len(points))
	for _, p := range points {
		run := o.training[p.index]
		if old, ok := prev[int32(p.index)]; ok && keepRow(old, run) {
			rows = append(rows, old)
			continue
		}
		row := experimentRow(dj, p, run)
		if live, ok := pointProgress(o.progress, p.index); ok && row.State == v1alpha1.ExperimentRunning {
			row.Steps, row.TotalSteps = int64(live.Step), int64(live.TotalSteps)
		}
		rows = append(rows, row)
	}
	dj.Status.Experiments = rows
}

// keepRow says whether a finished row stands as it is: a failed one, a succeeded one with its trainer's
// summary, or one whose pods are gone. A succeeded row without a summary is read again while its pods
// remain, since the pod cache may have lagged the Job's for the pass that wrote it.
func keepRow(old v1alpha1.ExperimentStatus, run *jobPods) bool {
	if !finishedState(old.State) {
		return false
	}
	return old.State == v1alpha1.ExperimentFailed || old.Steps > 0 || run == nil || len(run.pods) == 0
}

// experimentRow is a point's row as its Job and pods say now.
func experimentRow(dj *v1alpha1.DistillationJob, p trainingPoint, run *jobPods) v1alpha1.ExperimentStatus {
	row := pendingRow(p)
	switch {
	case run == nil || run.job == nil:
	case jobCondition(run.job, batchv1.JobFailed):
		row.State = v1alpha1.ExperimentFailed
		row.Message = failedStage(run.job, run.pods, v1alpha1.ReasonTrainingFailed, pointWhat(p)).message
	case jobCondition(run.job, batchv1.JobComplete):
		if res, ok := trainResult(run.pods); ok {
			RecordPointResult(dj, &row, res)
		} else {
			row.State = v1alpha1.ExperimentSucceeded
			row.Message = "the trainer saved the model but left no summary"
		}
	default:
		row.State = v1alpha1.ExperimentRunning
	}
	return row
}

// pendingRow is a point's row before it ran: its settings.
func pendingRow(p trainingPoint) v1alpha1.ExperimentStatus {
	return v1alpha1.ExperimentStatus{
		Index: int32(p.index), Fraction: p.fraction, Mode: p.mode, RationaleWeight: p.rationaleWeight,
		BaseModel: studentDescription(p.student), Seed: p.seed, State: v1alpha1.ExperimentPending,
	}
}

// ExperimentRows are a sweep's status.experiments before any point ran: one row per point, in index
// order, with its settings and state Pending (none for a job without spec.experiments).
func ExperimentRows(dj *v1alpha1.DistillationJob) []v1alpha1.ExperimentStatus {
	if dj.Spec.Experiments == nil {
		return nil
	}
	var rows []v1alpha1.ExperimentStatus
	for _, p := range trainingPoints(dj) {
		rows = append(rows, pendingRow(p))
	}
	return rows
}

// RecordPointResult marks a point's row Succeeded with its trainer's summary: the scores, steps, best
// step and wall time.
func RecordPointResult(dj *v1alpha1.DistillationJob, row *v1alpha1.ExperimentStatus, res contract.TrainResult) {
	row.State = v1alpha1.ExperimentSucceeded
	ev := evaluationStatus(dj, res)
	row.Accuracy, row.Agreement, row.ExactMatch = ev.Accuracy, ev.Agreement, ev.ExactMatch
	row.Steps, row.BestStep = int64(res.Steps), int64(res.BestStep)
	row.WallSeconds = int64(math.Round(res.WallSeconds))
}

func finishedState(s v1alpha1.ExperimentState) bool {
	return s == v1alpha1.ExperimentSucceeded || s == v1alpha1.ExperimentFailed
}

// pointWhat names a training run in messages.
func pointWhat(p trainingPoint) string {
	if !p.inSweep() {
		return "training"
	}
	return fmt.Sprintf("training point %d", p.index)
}

// ServedPoint chooses the sweep's point to serve from its rows: spec.experiments.servePoint when that
// point succeeded; else the succeeded point with the best score (rowScore), the lowest index on a tie.
// It returns -1 when no point succeeded; note says why a named point is not served.
func ServedPoint(dj *v1alpha1.DistillationJob) (served int, note string) {
	rows := dj.Status.Experiments
	if named := dj.Spec.Experiments.ServePoint; named != nil {
		for _, row := range rows {
			if row.Index == *named && row.State == v1alpha1.ExperimentSucceeded {
				return int(row.Index), ""
			}
		}
		note = fmt.Sprintf("point %d, named in spec.experiments.servePoint, did not succeed; serving the best point instead", *named)
	}
	served, best, bestScored := -1, 0.0, false
	for _, row := range rows {
		if row.State != v1alpha1.ExperimentSucceeded {
			continue
		}
		score, ok := rowScore(row)
		switch {
		case served < 0, ok && !bestScored, ok && score > best:
			served, best, bestScored = int(row.Index), score, ok
		}
	}
	return served, note
}

// rowScore is a point's primary score on the eval split: accuracy with gold labels, exact match for a
// Generation task, else agreement with the teacher (the trainer reports only what applies).
func rowScore(row v1alpha1.ExperimentStatus) (float64, bool) {
	for _, s := range []string{row.Accuracy, row.ExactMatch, row.Agreement} {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// markServed records the served point in status: its row, servedExperiment, and its evaluation and
// training numbers as the job's own.
func markServed(dj *v1alpha1.DistillationJob, o *observed, served int) {
	var res *contract.TrainResult
	if r, ok := trainResult(podsOf(o.training[served])); ok {
		res = &r
	}
	ServeExperiment(dj, served, res)
}

// ServeExperiment records point served as the one the job serves: status.servedExperiment, its row's
// served, and its evaluation and training numbers as the job's own, from its trainer's summary res, or,
// with none, from its row.
func ServeExperiment(dj *v1alpha1.DistillationJob, served int, res *contract.TrainResult) {
	dj.Status.ServedExperiment = ptr.To(int32(served))
	for i := range dj.Status.Experiments {
		row := &dj.Status.Experiments[i]
		row.Served = int(row.Index) == served
		if !row.Served {
			continue
		}
		if res != nil {
			recordTrainResult(dj, *res)
			continue
		}
		dj.Status.Evaluation = &v1alpha1.EvaluationStatus{Metric: rowMetric(*row), Accuracy: row.Accuracy,
			Agreement: row.Agreement, ExactMatch: row.ExactMatch, BestStep: row.BestStep}
	}
}

// rowMetric is the primary metric of a row whose trainer summary is gone.
func rowMetric(row v1alpha1.ExperimentStatus) v1alpha1.EvaluationMetric {
	switch {
	case row.Accuracy != "":
		return v1alpha1.MetricAccuracy
	case row.ExactMatch != "":
		return v1alpha1.MetricExactMatch
	}
	return v1alpha1.MetricAgreement
}

// SweepSummary is the Trained condition's message of a sweep that has a point to serve.
func SweepSummary(dj *v1alpha1.DistillationJob, served int, note string) string {
	failed := 0
	for _, row := range dj.Status.Experiments {
		if row.State == v1alpha1.ExperimentFailed {
			failed++
		}
	}
	p := trainingPoints(dj)[served]
	msg := fmt.Sprintf("%d of %d points trained (%d failed); serving point %d (fraction %s, mode %s, rationaleWeight %s, baseModel %s, seed %d)",
		len(dj.Status.Experiments)-failed, len(dj.Status.Experiments), failed, served, p.fraction, p.mode, p.rationaleWeight,
		studentDescription(p.student), p.seed)
	if ev := dj.Status.Evaluation; ev != nil {
		msg += "; " + evaluationSummary(ev)
	}
	if note != "" {
		msg += "; " + note
	}
	return msg
}

// evaluationStatus is a trainer's summary in status's form. A trainer of the last release reports only
// evalAccuracy: it is the label accuracy against gold labels where there are any, else agreement with
// the teacher, else (Generation) exact match.
func evaluationStatus(dj *v1alpha1.DistillationJob, res contract.TrainResult) *v1alpha1.EvaluationStatus {
	ev := &v1alpha1.EvaluationStatus{BestStep: int64(res.BestStep)}
	e := res.Evaluation
	if e == nil {
		ev.Examples = int64(res.EvalExamples)
		score := formatDecimal(res.EvalAccuracy, 4)
		switch {
		case dj.Spec.Task.Type == v1alpha1.TaskTypeGeneration:
			ev.Metric, ev.ExactMatch = v1alpha1.MetricExactMatch, score
		case dj.Spec.Dataset.LabelField != "":
			ev.Metric, ev.Accuracy = v1alpha1.MetricAccuracy, score
		default:
			ev.Metric, ev.Agreement = v1alpha1.MetricAgreement, score
		}
		return ev
	}
	switch e.Metric {
	case contract.MetricAccuracy, contract.MetricAgreement, contract.MetricExactMatch:
		ev.Metric = v1alpha1.EvaluationMetric(e.Metric)
	}
	ev.Examples = int64(e.Examples)
	ev.Accuracy = optionalDecimal(e.StudentAccuracy)
	ev.TeacherAccuracy = optionalDecimal(e.TeacherAccuracy)
	ev.Agreement = optionalDecimal(e.Agreement)
	ev.ExactMatch = optionalDecimal(e.ExactMatch)
	ev.TokenF1 = optionalDecimal(e.TokenF1)
	return ev
}

// optionalDecimal renders a score that may not apply ("" when absent).
func optionalDecimal(f *float64) string {
	if f == nil || math.IsNaN(*f) || math.IsInf(*f, 0) {
		return ""
	}
	return formatDecimal(*f, 4)
}

// evaluationSummary says the scores for a condition message, under their own names.
func evaluationSummary(ev *v1alpha1.EvaluationStatus) string {
	msg := fmt.Sprintf("on %d eval examples:", ev.Examples)
	for _, s := range []struct{ name, value string }{
		{"student accuracy", ev.Accuracy}, {"teacher accuracy", ev.TeacherAccuracy}, {"agreement with the teacher", ev.Agreement},
		{"exact match", ev.ExactMatch}, {"token F1", ev.TokenF1},
	} {
		if s.value != "" {
			msg += fmt.Sprintf(" %s %s,", s.name, s.value)
		}
	}
	if ev.BestStep > 0 {
		msg += fmt.Sprintf(" best step %d,", ev.BestStep)
	}
	return msg[:len(msg)-1]
}
