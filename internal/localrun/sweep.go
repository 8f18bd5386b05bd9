package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/reportview"
)

// A sweep (spec.experiments) on one machine, as the operator runs it in a cluster: after the one
// annotation, a trainer process per point on its train-<index>.json (controllers.RenderTrainConfigs),
// at most spec.experiments.maxParallel (or --parallel) at once, in index order; the points' rows,
// the served point and the all-failed decision from the operator's own functions (controllers.
// ExperimentRows, RecordPointResult, ServedPoint, ServeExperiment, AllPointsFailed); then the report
// command on the operator's report config (controllers.RenderReportConfig), which writes report.json and
// report.svg into the run folder. A point whose model and metrics are written is not trained again.

// pointOutcome is how one point's training ended.
type pointOutcome struct {
	res contract.TrainResult
	// summary: the trainer's summary was read (a point trained by an earlier run may have lost it).
	summary bool
	err     error
}

// sweepResult is a finished sweep: the job with status.experiments, servedExperiment and evaluation
// filled in as the operator fills them, and the served point's trainer summary.
type sweepResult struct {
	job     *v1alpha1.DistillationJob
	served  int
	note    string
	trained contract.TrainResult
}

// runSweep trains the sweep's points and draws its report. It fails only when every point failed, or
// when it was interrupted (the points trained so far stay done).
func runSweep(ctx context.Context, py Python, p Plan, o Options) (sweepResult, error) {
	limit := int(p.Job.Spec.Experiments.MaxParallel)
	if o.Parallel > 0 {
		limit = o.Parallel
	}
	limit = max(limit, 1)
	fmt.Fprintf(o.Out, "train     %d points, at most %d at once\n", len(p.Points), limit)
	outcomes := trainPoints(ctx, py, p, limit, o.Out, o.Terminal)
	if ctx.Err() != nil {
		return sweepResult{}, stageError(ctx, ctx.Err(), "training")
	}
	dj := p.Job.DeepCopy()
	dj.Status.Experiments = controllers.ExperimentRows(dj)
	var failures []controllers.PointFailure
	for i, out := range outcomes {
		row := &dj.Status.Experiments[i]
		switch {
		case out.err != nil:
			row.State, row.Message = v1alpha1.ExperimentFailed, out.err.Error()
			failures = append(failures, controllers.PointFailure{
				Reason: controllers.FailureReason(out.res.Reason, v1alpha1.ReasonTrainingFailed), Message: row.Message})
		case out.summary:
			controllers.RecordPointResult(dj, row, out.res)
		default:
			row.State, row.Message = v1alpha1.ExperimentSucceeded, "the trainer saved the model but left no summary"
		}
	}
	if len(failures) == len(outcomes) {
		f := controllers.AllPointsFailed(failures)
		writePoints(o.Out, dj.Status.Experiments)
		return sweepResult{job: dj}, fmt.Errorf("%s: %s", f.Reason, f.Message)
	}
	served, note := controllers.ServedPoint(dj)
	var res *contract.TrainResult
	if outcomes[served].summary {
		res = &outcomes[served].res
	}
	controllers.ServeExperiment(dj, served, res)
	return sweepResult{job: dj, served: served, note: note, trained: outcomes[served].res}, nil
}

// trainPoints trains every point not trained yet, at most limit at once, each with its own progress bar,
// and returns how each ended, by index. A failed point does not stop the others; ctx ending stops all.
func trainPoints(ctx context.Context, py Python, p Plan, limit int, out io.Writer, terminal bool) []pointOutcome {
	outcomes := make([]pointOutcome, len(p.Points))
	var todo []int
	for i, cfg := range p.Points {
		if !trained(cfg) {
			todo = append(todo, i)
			continue
		}
		res, err := readTrainResult(p.Layout.trainFiles(i).termination)
		outcomes[i] = pointOutcome{res: res, summary: err == nil}
		fmt.Fprintf(out, "point %-3d already done: %s\n", i, cfg.Output.ModelDir)
	}
	bars := newBarGroup(out, terminal)
	var g errgroup.Group
	g.SetLimit(limit)
	for _, i := range todo {
		g.Go(func() error {
			if ctx.Err() != nil {
				outcomes[i].err = ctx.Err()
				return nil
			}
			bar := bars.add(pointName(p.Points[i]), "steps", i)
			res, err := train(ctx, py, p.Layout.trainFiles(i), p.Job, bar)
			bar.finish(err == nil)
			outcomes[i] = pointOutcome{res: res, summary: err == nil, err: err}
			return nil
		})
	}
	_ = g.Wait() // every point's error is in its outcome
	bars.wait()
	return outcomes
}

// pointName labels a point's progress bar with its settings.
func pointName(cfg contract.TrainConfig) string {
	return fmt.Sprintf("point %d (%s, fraction %g, λ %g, seed %d) ", cfg.Point.Index, cfg.Training.Mode,
		cfg.Data.Fraction, cfg.Training.RationaleWeight, cfg.Training.Seed)
}

// sweepReport runs `python -m distillery_student report` on the operator's report config for the sweep's
// points that succeeded: report.json and report.svg in the run folder. Like the operator's report Job it
// is optional: a failure is said and the sweep stands.
func sweepReport(ctx context.Context, py Python, p Plan, dj *v1alpha1.DistillationJob, out io.Writer) error {
	l := p.Layout
	if err := writeJSON(l.reportConfig(), controllers.RenderReportConfig(dj, p.Paths)); err != nil {
		return err
	}
	logs, err := os.OpenFile(l.reportLog(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logs.Close()
	cmd := py.Command(ctx, "report", "--config", l.reportConfig(), "--termination-log", l.reportTermination())
	cmd.Stdout, cmd.Stderr = logs, logs
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return stageError(ctx, ctx.Err(), "the report")
	case err != nil:
		msg := "the report command " + exitError(err)
		var sum struct{ Error string }
		if b, rerr := os.ReadFile(l.reportTermination()); rerr == nil && json.Unmarshal(b, &sum) == nil && sum.Error != "" {
			msg = sum.Error
		}
		fmt.Fprintf(out, "report    failed (%s; log: %s); the points' results stand\n", msg, l.reportLog())
	}
	return nil
}

// writePoints prints the sweep table: one row per point, its settings, state, scores and whether it is
// served (status.experiments, as `kubectl distillery status` shows it).
func writePoints(w io.Writer, rows []v1alpha1.ExperimentStatus) {
	var points []any
	b, _ := json.Marshal(rows)
	_ = json.Unmarshal(b, &points)
	fmt.Fprintln(w)
	reportview.WritePoints(w, points)
}
