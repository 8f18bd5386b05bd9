package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/distillery-dev/distillery/internal/localrun"
)

func newRunCommand(streams IO) *cobra.Command {
	o := localrun.Options{Out: streams.Out, Terminal: streams.Terminal}
	cmd := &cobra.Command{
		Use:   "run JOB.yaml",
		Short: "Run a DistillationJob's whole pipeline on this machine, without a cluster",
		Long: `run annotates, trains and evaluates a DistillationJob on this machine from the same YAML a cluster
takes. The CRD's defaults and rules apply as in the cluster; the operator's own renderers write the stage
configs; the annotator runs in this process (every shard at once) and the student runtime as
"python3 -m distillery_student train" from the active Python environment (install it with
"pip install ./student") or --python.

References to cluster data resolve under --data DIR: configMap {name: N, key: K} reads DIR/N/K and
persistentVolumeClaim {claimName: C, path: P} reads DIR/C/P (also spec.task.examplesFrom and
spec.student.baseModelFrom). A teacher API key (spec.teacher.apiKeySecretRef) is read from
$DISTILLERY_TEACHER_API_KEY.

Everything goes under OUTPUT/<job name>/: annotations/, model/, metrics.json, summary.json, the rendered
config/ and logs/. Ctrl-C stops the run and keeps its files; the same command resumes it (the teacher is
not asked again for what it answered, training continues from its newest checkpoint).

A sweep (spec.experiments) is annotated once, then each point trains in a trainer process of its own
(config/train-<index>.json, points/<index>/), at most spec.experiments.maxParallel (or --parallel) at
once; a failed point fails the run only when every point failed. The report command then writes
report.json and report.svg (the data-efficiency curve), and the run ends with the sweep table and the
served point (the best, or spec.experiments.servePoint). A resumed sweep does not train again the points
whose model is written; failed points are tried again.`,
		Example: `  distillery run job.yaml --data ./data
  distillery run config/samples/distillery_v1alpha1_distillationjob.yaml --data ./data --teacher-endpoint http://localhost:8000/v1
  distillery serve distillery-runs/compare-numbers`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.JobFile = args[0]
			_, err := localrun.Run(cmd.Context(), o)
			if errors.Is(err, localrun.ErrInterrupted) {
				return &exitError{code: 130, err: err}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data", ".", "folder the job's ConfigMap (DIR/name/key) and PVC (DIR/claimName/path) references resolve in")
	f.StringVarP(&o.OutputDir, "output", "o", "distillery-runs", "folder of the run folders (OUTPUT/<job name>) and the shared teacher cache")
	f.StringVar(&o.TeacherEndpoint, "teacher-endpoint", "", "use this OpenAI-compatible base URL instead of spec.teacher.endpoint")
	f.StringVar(&o.Python, "python", "", "the Python interpreter with the student runtime (default: python3 of the active environment)")
	f.IntVar(&o.Parallel, "parallel", 0, "a sweep's points trained at once (default: spec.experiments.maxParallel)")
	f.BoolVar(&o.Fresh, "fresh", false, "remove the job's run folder first and start over (the teacher cache stays)")
	return cmd
}

func newServeCommand(streams IO) *cobra.Command {
	o := localrun.ServeOptions{Stdout: streams.Out, Stderr: streams.Err}
	cmd := &cobra.Command{
		Use:   "serve DIR [-- SERVER FLAGS...]",
		Short: "Serve a trained student on this machine (the StudentModel's server)",
		Long: `serve starts the student server ("python3 -m distillery_student serve") on a model directory, or on the
run folder of "distillery run". It answers POST /v1/predict {"inputs": [...], "explain": true} and the
OpenAI API (/v1/chat/completions, /v1/completions, /v1/models). Flags after -- go to the server.`,
		Example: `  distillery serve distillery-runs/compare-numbers
  curl -s localhost:8080/v1/predict -d '{"inputs":["First: 12\nSecond: 48"],"explain":true}'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir, o.Args = args[0], args[1:]
			return localrun.Serve(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Host, "host", "127.0.0.1", "address to listen on (0.0.0.0 for every interface)")
	f.IntVar(&o.Port, "port", 8080, "port to listen on")
	f.StringVar(&o.Name, "name", "", "model id of the OpenAI routes (default: the job's name)")
	f.StringVar(&o.Python, "python", "", "the Python interpreter with the student runtime (default: python3 of the active environment)")
	return cmd
}
