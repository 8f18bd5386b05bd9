package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/reportview"
)

// Options is one `distillery run`.
type Options struct {
	// JobFile is the DistillationJob's YAML, the one a cluster would be given.
	JobFile string
	// DataDir resolves the job's ConfigMap and PVC references (Layout).
	DataDir string
	// OutputDir holds the run folders (<OutputDir>/<job name>) and the teacher cache.
	OutputDir string
	// TeacherEndpoint, when set, replaces spec.teacher.endpoint.
	TeacherEndpoint string
	// Python is the interpreter flag (FindPython).
	Python string
	// Parallel, when above 0, replaces spec.experiments.maxParallel: how many points train at once.
	Parallel int
	// Fresh removes the job's run folder first (the teacher cache stays).
	Fresh bool
	// Out gets the progress bars and the summary; Terminal says whether it is a terminal.
	Out      io.Writer
	Terminal bool
}

// Result is where a finished run put its files, and what the stages reported.
type Result struct {
	RunDir     string
	ModelDir   string
	Annotation contract.AnnotateResult
	Training   contract.TrainResult
	// Metrics is the trainer's metrics.json (a sweep's served point's).
	Metrics map[string]any
	// Experiments are a sweep's rows, as status.experiments; Served the index of the point served.
	Experiments []v1alpha1.ExperimentStatus
	Served      *int
}

// Run runs the job's whole pipeline on this machine: the configs the operator would render, every
// annotation shard in this process, then the student trainer as a subprocess. A run that is interrupted
// (ctx ends) or fails resumes from its files when it is run again.
func Run(ctx context.Context, o Options) (Result, error) {
	p, err := NewPlan(ctx, o)
	if err != nil {
		return Result{}, err
	}
	dj, l := p.Job, p.Layout
	res := Result{RunDir: l.RunDir, ModelDir: p.Train.Output.ModelDir}
	py, err := FindPython(ctx, o.Python)
	if err != nil {
		return res, err
	}
	trains := p.Points
	if trains == nil {
		trains = []contract.TrainConfig{p.Train}
	}
	if err := prepare(l, dj, o.Fresh, p.Annotate, trains...); err != nil {
		return res, err
	}
	fmt.Fprintf(o.Out, "distillery run %s: %s\n", dj.Name, l.RunDir)

	bar := newStageBar(o.Out, o.Terminal, "annotate", "inputs")
	res.Annotation, err = annotate(ctx, p.Annotate, p.APIKey, l.annotateLog(), bar)
	bar.finish(err == nil)
	if err != nil {
		return res, stageError(ctx, err, "annotation")
	}
	writeAnnotationSummary(o.Out, res.Annotation, p.Annotate.Budget)
	if err := budgetPolicy(o.Out, dj, p.Annotate.Budget, res.Annotation); err != nil {
		return res, err
	}
	if res.Annotation.OK == 0 {
		return res, fmt.Errorf("no usable annotation to train on (%d inputs, none ok): see %s", res.Annotation.Total, l.annotateLog())
	}

	if p.Points != nil {
		return runSweepStage(ctx, py, p, o, res)
	}
	if trained(p.Train) {
		fmt.Fprintf(o.Out, "train     already done: %s\n", p.Train.Output.ModelDir)
		res.Training, _ = readTrainResult(l.trainFiles(-1).termination)
	} else {
		bar = newStageBar(o.Out, o.Terminal, "train", "steps")
		res.Training, err = train(ctx, py, l.trainFiles(-1), dj, bar)
		bar.finish(err == nil)
		if err != nil {
			return res, stageError(ctx, err, "training")
		}
	}
	res.Metrics, err = readJSON(p.Train.Output.MetricsPath)
	if err != nil {
		return res, err
	}
	if err := writeJSON(l.summary(), summary(dj.Name, res)); err != nil {
		return res, err
	}
	printReport(o.Out, l, res)
	return res, nil
}

// runSweepStage trains a sweep's points, draws its report and prints its table; the served point's model
// is the run's.
func runSweepStage(ctx context.Context, py Python, p Plan, o Options, res Result) (Result, error) {
	l := p.Layout
	sw, err := runSweep(ctx, py, p, o)
	if sw.job != nil {
		res.Experiments = sw.job.Status.Experiments
	}
	if err != nil {
		return res, err
	}
	res.Served = &sw.served
	res.ModelDir = p.Points[sw.served].Output.ModelDir
	res.Training = sw.trained
	if res.Metrics, err = readJSON(p.Points[sw.served].Output.MetricsPath); err != nil {
		return res, err
	}
	if err := sweepReport(ctx, py, p, sw.job, o.Out); err != nil {
		return res, err
	}
	if err := writeJSON(l.summary(), summary(p.Job.Name, res)); err != nil {
		return res, err
	}
	printReport(o.Out, l, res)
	fmt.Fprintf(o.Out, "sweep:   %s\n", controllers.SweepSummary(sw.job, sw.served, sw.note))
	return res, nil
}

// prepare makes the run folder and writes the rendered configs. The folder belongs to one spec
// (localUID): a changed spec is refused rather than resumed, unless fresh starts over.
func prepare(l Layout, dj *v1alpha1.DistillationJob, fresh bool, a contract.AnnotateConfig, trains ...contract.TrainConfig) error {
	if fresh {
		if err := os.RemoveAll(l.RunDir); err != nil {
			return err
		}
	}
	err := contract.ClaimJobDir(l.RunDir, contract.JobStamp{Job: a.Job, UID: a.JobUID})
	var conflict *contract.WorkspaceConflictError
	if errors.As(err, &conflict) {
		return fmt.Errorf("%s holds a run of another version of %s (its teacher, task, dataset, annotation, student or training settings differ): "+
			"rerun with --fresh to start over (answers already paid for stay in the teacher cache), or pass another --output", l.RunDir, dj.Name)
	}
	if err != nil {
		return err
	}
	for _, dir := range []string{l.configDir(), l.logDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := writeJSON(l.annotateConfig(), a); err != nil {
		return err
	}
	for _, t := range trains {
		if err := writeJSON(l.trainFiles(pointIndex(t)).config, t); err != nil {
			return err
		}
	}
	return nil
}

// stageError says how a stage ended: interrupted (resumable) or failed.
func stageError(ctx context.Context, err error, stage string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s interrupted; run the same command again to resume (%w)", stage, ErrInterrupted)
	}
	return err
}

// budgetPolicy applies spec.teacher.budget.onExceeded when the budget ran out, as the operator does:
// Train goes on with the usable annotations; Fail stops with reason BudgetExceeded, every record kept, and
// the same command with a larger budget resumes (the budget is left out of the run's identity).
func budgetPolicy(w io.Writer, dj *v1alpha1.DistillationJob, b *contract.Budget, r contract.AnnotateResult) error {
	if !r.BudgetExceeded || b == nil {
		return nil
	}
	spent := contract.DescribeSpend(b.BudgetCaps, r.Spend())
	if dj.Spec.Teacher.Budget != nil && dj.Spec.Teacher.Budget.OnExceeded == v1alpha1.BudgetActionTrain && r.OK > 0 {
		fmt.Fprintf(w, "          teacher budget reached (%s): training on the %d usable annotations of %d inputs; %d inputs were not asked\n",
			spent, r.OK, r.Total+r.Unasked, r.Unasked)
		return nil
	}
	return fmt.Errorf("%s: teacher budget reached (%s): the shards stopped asking the teacher and kept every record; %d of %d inputs annotated, %d not asked. "+
		"Raise spec.teacher.budget above the spend and run again to annotate the rest (or set onExceeded: Train)",
		v1alpha1.ReasonBudgetExceeded, spent, r.Total, r.Total+r.Unasked, r.Unasked)
}

// ErrInterrupted ends a run that was stopped (Ctrl-C); its files are kept for the next run to resume.
var ErrInterrupted = errors.New("the files so far are kept")

func writeAnnotationSummary(w io.Writer, r contract.AnnotateResult, b *contract.Budget) {
	fmt.Fprintf(w, "annotate  %d inputs: %d ok, %d unparseable, %d label mismatch, %d teacher errors; %d cache hits\n",
		r.Total, r.OK, r.Unparseable, r.LabelMismatch, r.TeacherErrors, r.CacheHits)
	var caps contract.BudgetCaps
	if b != nil {
		caps = b.BudgetCaps
	}
	fmt.Fprintf(w, "          spent %s (%d prompt + %d completion tokens)\n", contract.DescribeSpend(caps, r.Spend()), r.PromptTokens, r.CompletionTokens)
	if r.SkippedLines > 0 {
		fmt.Fprintf(w, "          %d dataset lines skipped; first: line %d: %s\n", r.SkippedLines, r.FirstSkippedLine, r.FirstSkippedError)
	}
}

func readJSON(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return m, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// summary is summary.json: what each stage reported, the shards summed.
func summary(job string, res Result) map[string]any {
	var annotation map[string]any
	b, _ := json.Marshal(res.Annotation)
	_ = json.Unmarshal(b, &annotation)
	delete(annotation, "shard") // a sum of every shard
	sum := map[string]any{"job": job, "annotation": annotation, "training": res.Training, "metrics": res.Metrics,
		"modelDir": res.ModelDir}
	if res.Served != nil {
		sum["experiments"], sum["servedExperiment"] = res.Experiments, *res.Served
	}
	return sum
}

// printReport shows the eval tables (the trainer's report.json when it writes one, else its
// metrics.json) and where the model and the report are.
func printReport(w io.Writer, l Layout, res Result) {
	doc, where := res.Metrics, ""
	if report, err := readJSON(l.report()); err == nil {
		doc, where = report, l.report()
	}
	fmt.Fprintln(w)
	if res.Served != nil { // the table of every point, the failed ones too, instead of report.json's
		doc = maps.Clone(doc)
		delete(doc, "points")
	}
	reportview.Write(w, doc)
	if res.Served != nil {
		writePoints(w, res.Experiments)
	}
	fmt.Fprintf(w, "\nmodel:   %s\n", res.ModelDir)
	if where != "" {
		fmt.Fprintf(w, "report:  %s\n", where)
	}
	if _, err := os.Stat(l.reportPlot()); err == nil {
		fmt.Fprintf(w, "plot:    %s\n", l.reportPlot())
	}
	fmt.Fprintf(w, "serve:   distillery serve %s\n", serveDir(l, res))
}

// serveDir is what to give `distillery serve`: the run folder, or for a sweep the served point's model.
func serveDir(l Layout, res Result) string {
	if res.Served != nil {
		return res.ModelDir
	}
	return l.RunDir
}
