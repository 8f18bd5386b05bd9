package localrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

// sweepJob is the sweep of config/samples: 2 data fractions x 2 modes, maxParallel 2.
var sweepJob = filepath.Join("..", "..", "config", "samples", "distillery_v1alpha1_distillationjob_sweep.yaml")

// fakeRuntime stands in for the student runtime's interpreter (--python): `-c ...` (the import check)
// succeeds; `-m distillery_student train` records the point it trains and how many trainers run at that
// moment, sleeps (until SIGTERM when i is $FAKE_HANG), then writes the model, metrics.json and its summary, scoring point i 0.5 + 0.1*i, or
// fails (exit 3, reason InvalidInput) when i is in $FAKE_FAIL; `-m distillery_student report` saves its
// config and writes report.json and report.svg into its jobDir.
const fakeRuntime = `
import json, os, sys, time
args = sys.argv[1:]
if args[0] == "-c":
    sys.exit(0)
cmd, opts = args[2], dict(zip(args[3::2], args[4::2]))
calls = os.environ["FAKE_DIR"]
cfg = json.load(open(opts["--config"]))
def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
if cmd == "report":
    write(os.path.join(calls, "report-config.json"), cfg)
    with open(os.path.join(calls, "calls"), "a") as f:
        f.write("report\n")
    write(os.path.join(cfg["jobDir"], "report.json"), {"servedIndex": cfg["servedIndex"], "points": []})
    open(os.path.join(cfg["jobDir"], "report.svg"), "w").write("<svg/>")
    write(opts["--termination-log"], {"stage": "report"})
    sys.exit(0)
i = cfg["point"]["index"]
running = os.path.join(calls, "running")
os.makedirs(running, exist_ok=True)
open(os.path.join(running, str(i)), "w").close()
with open(os.path.join(calls, "calls"), "a") as f:
    f.write("train %d %d\n" % (i, len(os.listdir(running))))
if str(i) == os.environ.get("FAKE_HANG"):
    time.sleep(60)  # until SIGTERM
for step in (5, 10):
    time.sleep(0.4)
    print("INFO progress train-0 " + json.dumps({"step": step, "totalSteps": 10}), flush=True)
os.remove(os.path.join(running, str(i)))
if str(i) in os.environ.get("FAKE_FAIL", "").split(","):
    write(opts["--termination-log"], {"stage": "train", "error": "point %d: bad data" % i, "reason": "InvalidInput"})
    sys.exit(3)
acc = 0.5 + 0.1 * i
ev = {"metric": "accuracy", "examples": 4, "studentAccuracy": acc, "teacherAccuracy": 0.9, "agreement": acc}
out = cfg["output"]
summary = {"stage": "train", "steps": 10, "trainLoss": 0.1, "modelDir": out["modelDir"], "bestStep": 10,
           "wallSeconds": 1, "evaluation": ev, "evalAccuracy": acc, "evalExamples": 4}
write(os.path.join(out["modelDir"], "distillery.json"), {"job": cfg["job"]})
write(out["metricsPath"], dict(summary, settings={"mode": cfg["training"]["mode"], "fraction": cfg["data"]["fraction"]}))
write(opts["--termination-log"], summary)
`

// sweepRun is one `distillery run` of the sample sweep with the fake runtime; it returns the result,
// the run's output and the trainer and report calls it made (each "train <index> <trainers running>").
type sweepRun struct {
	t             *testing.T
	data, out     string
	python, calls string
	endpoint      string
}

func newSweepRun(t *testing.T) *sweepRun {
	t.Helper()
	fake := &faketeacher.Server{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	data := compareDataDir(t)
	py3, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("the fake runtime is a Python script: %v", err)
	}
	dir := t.TempDir()
	python := filepath.Join(dir, "python")
	mustWrite(t, python, "#!"+py3+"\n"+fakeRuntime)
	if err := os.Chmod(python, 0o755); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(dir, "calls")
	t.Setenv("FAKE_DIR", dir)
	return &sweepRun{t: t, data: data, out: t.TempDir(), python: python, calls: calls, endpoint: srv.URL + "/v1"}
}

func (s *sweepRun) run(fail string, parallel int) (Result, string, []string, error) {
	s.t.Helper()
	return s.runCtx(context.Background(), fail, parallel)
}

func (s *sweepRun) runCtx(ctx context.Context, fail string, parallel int) (Result, string, []string, error) {
	s.t.Helper()
	s.t.Setenv("FAKE_FAIL", fail)
	_ = os.Remove(s.calls)
	var out bytes.Buffer
	res, err := Run(ctx, Options{JobFile: sweepJob, DataDir: s.data, OutputDir: s.out,
		TeacherEndpoint: s.endpoint, Python: s.python, Parallel: parallel, Out: &out})
	b, _ := os.ReadFile(s.calls)
	return res, out.String(), strings.Split(strings.TrimSpace(string(b)), "\n"), err
}

// trainCalls are the points the trainer ran, in order, and the most trainers that ran at once.
func trainCalls(t *testing.T, calls []string) (points []int, most int) {
	t.Helper()
	for _, c := range calls {
		f := strings.Fields(c)
		if len(f) != 3 || f[0] != "train" {
			continue
		}
		i, _ := strconv.Atoi(f[1])
		n, _ := strconv.Atoi(f[2])
		points, most = append(points, i), max(most, n)
	}
	slices.Sort(points)
	return points, most
}

// The sample sweep on one machine: one annotation, one trainer per point on the operator's
// train-<index>.json, at most maxParallel at once; a failed point leaves the others to report and the
// best of them served; the report command gets the operator's report config; a rerun trains only what
// is not done.
func TestASweepTrainsEachPointOnceAtMostMaxParallelAtOnce(t *testing.T) {
	s := newSweepRun(t)
	res, out, calls, err := s.run("3", 0)
	if err != nil {
		t.Fatalf("a sweep with one failed point of 4: %v\n%s", err, out)
	}
	points, most := trainCalls(t, calls)
	if fmt.Sprint(points) != "[0 1 2 3]" {
		t.Errorf("the trainer ran for points %v, want each of the 4 once (calls %v)", points, calls)
	}
	if most != 2 {
		t.Errorf("%d trainers ran at once, want spec.experiments.maxParallel = 2", most)
	}
	run := filepath.Join(s.out, "compare-numbers-sweep")
	for i := range 4 {
		cfg, err := readJSON(filepath.Join(run, "config", fmt.Sprintf("train-%d.json", i)))
		if err != nil {
			t.Fatal(err)
		}
		if cfg["output"].(map[string]any)["modelDir"] != filepath.Join(run, "points", strconv.Itoa(i), "model") {
			t.Errorf("train-%d.json output %v: not the operator's points/<index>", i, cfg["output"])
		}
	}

	// Point 3 (the best score) failed: the others report and point 2 is served.
	if res.Served == nil || *res.Served != 2 || res.ModelDir != filepath.Join(run, "points", "2", "model") {
		t.Fatalf("served %v, model %s; want point 2", res.Served, res.ModelDir)
	}
	states := []v1alpha1.ExperimentState{}
	for _, row := range res.Experiments {
		states = append(states, row.State)
	}
	if fmt.Sprint(states) != "[Succeeded Succeeded Succeeded Failed]" || !strings.Contains(res.Experiments[3].Message, "point 3: bad data") ||
		res.Experiments[2].Accuracy != "0.7000" || !res.Experiments[2].Served || res.Experiments[1].Served {
		t.Errorf("rows %+v", res.Experiments)
	}
	for _, want := range []string{"SERVED", "Failed", "point 3: bad data", "3 of 4 points trained (1 failed); serving point 2 (fraction 0.5, mode Standard",
		"serve:   distillery serve " + res.ModelDir} {
		if !strings.Contains(out, want) {
			t.Errorf("the output has no %q:\n%s", want, out)
		}
	}

	// The report command got the operator's report config for these rows, with this run's folders.
	var got contract.ReportConfig
	b, err := os.ReadFile(filepath.Join(filepath.Dir(s.calls), "report-config.json"))
	if err != nil || json.Unmarshal(b, &got) != nil {
		t.Fatalf("the report command was not run: %v", err)
	}
	p, err := NewPlan(context.Background(), Options{JobFile: sweepJob, DataDir: s.data, OutputDir: s.out})
	if err != nil {
		t.Fatal(err)
	}
	dj := p.Job.DeepCopy()
	dj.Status.Experiments = controllers.ExperimentRows(dj)
	for i := range 3 {
		dj.Status.Experiments[i].State = v1alpha1.ExperimentSucceeded
	}
	served := int32(2)
	dj.Status.ServedExperiment = &served
	want := controllers.RenderReportConfig(dj, p.Paths)
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("report config\n%+v\nwant the operator's\n%+v", got, want)
	}
	if len(got.Points) != 3 || got.ServedIndex != 2 || got.JobDir != run || got.Points[2].MetricsPath != filepath.Join(run, "points", "2", "metrics.json") ||
		got.ReportConfigMap != "compare-numbers-sweep-report" {
		t.Errorf("report config %+v", got)
	}
	if _, err := os.Stat(filepath.Join(run, "report.svg")); err != nil {
		t.Errorf("no report.svg in the run folder: %v", err)
	}
	if m, err := ModelDir(run); err != nil || m != res.ModelDir {
		t.Errorf("distillery serve on the run folder: %s, %v; want the served point's model", m, err)
	}

	// Again, point 3 now succeeding: only it trains, and as the best it is served.
	res, out, calls, err = s.run("", 0)
	if err != nil {
		t.Fatalf("the rerun: %v\n%s", err, out)
	}
	if points, _ := trainCalls(t, calls); fmt.Sprint(points) != "[3]" {
		t.Errorf("the rerun trained points %v, want only the failed point 3", points)
	}
	if res.Served == nil || *res.Served != 3 || !strings.Contains(out, "point 0   already done") {
		t.Errorf("the rerun served %v:\n%s", res.Served, out)
	}
}

// Every point failed: the run fails as the operator fails the job, quoting every point; --parallel
// replaces maxParallel.
func TestASweepFailsOnlyWhenEveryPointFails(t *testing.T) {
	s := newSweepRun(t)
	_, out, calls, err := s.run("0,1,2,3", 1)
	want := "InvalidInput: every one of the 4 points failed: training point 0 failed (InvalidInput): point 0: bad data"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "point 3: bad data") {
		t.Fatalf("err = %v\nwant %s ...\n%s", err, want, out)
	}
	points, most := trainCalls(t, calls)
	if fmt.Sprint(points) != "[0 1 2 3]" || most != 1 {
		t.Errorf("points %v, %d at once with --parallel 1", points, most)
	}
	if slices.Contains(calls, "report") {
		t.Error("the report ran for a sweep with no point to report")
	}
}

// Ctrl-C while a point trains: the run stops, resumable; run again, it trains the points not finished
// and not the one that was.
func TestAnInterruptedSweepResumesWithoutTheFinishedPoints(t *testing.T) {
	s := newSweepRun(t)
	t.Setenv("FAKE_HANG", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	running := filepath.Join(filepath.Dir(s.calls), "running", "1")
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(running); err == nil {
				cancel() // point 0 finished (--parallel 1), point 1 trains
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, out, calls, err := s.runCtx(ctx, "", 1)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted: %v\n%s", err, out)
	}
	if points, _ := trainCalls(t, calls); fmt.Sprint(points) != "[0 1]" {
		t.Errorf("before the interruption the trainer ran for points %v, want [0 1]", points)
	}
	t.Setenv("FAKE_HANG", "")
	if err := os.Remove(running); err != nil { // the killed fake left its mark
		t.Fatal(err)
	}
	res, out, calls, err := s.run("", 0)
	if err != nil {
		t.Fatalf("the resumed run: %v\n%s", err, out)
	}
	if points, _ := trainCalls(t, calls); fmt.Sprint(points) != "[1 2 3]" {
		t.Errorf("the resumed run trained points %v, want [1 2 3]", points)
	}
	if res.Served == nil || *res.Served != 3 {
		t.Errorf("served %v, want the best point, 3", res.Served)
	}
}
