package controllers

import (
	"encoding/json"
	"fmt"
	corev1 "k8s.io/api/core/v1"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Unit tests of the sweep policy (experiments.go) and of the builders of a sweep's children.

// sweepJob is a sweep over 2 fractions x 2 modes (4 points) on the test job.
func sweepJob(name string) *utiltesting.JobWrapper {
	return utiltesting.MakeJob(name, "ns").UID("u1").LabelField("label").Experiments(v1alpha1.ExperimentsSpec{
		DataFractions: []string{"0.5", "1"},
		Modes:         []v1alpha1.TrainingMode{v1alpha1.TrainingModeStepByStep, v1alpha1.TrainingModeStandard},
		MaxParallel:   2,
	})
}

func TestTrainingPointsAreTheProductInTheDocumentedOrder(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").Experiments(v1alpha1.ExperimentsSpec{
		BaseModels: []v1alpha1.ExperimentStudent{{BaseModel: "t5-small"}, {BaseModelFrom: &v1alpha1.VolumeFileRef{ClaimName: "models", Path: "t5-base"}}},
		Modes:      []v1alpha1.TrainingMode{v1alpha1.TrainingModeStandard, v1alpha1.TrainingModeStepByStep},
		// rationaleWeights left out: spec.training's "1.0"
		DataFractions: []string{"0.25", "1"},
		Seeds:         []int32{7, 8},
	}).Obj()
	points := trainingPoints(dj)
	if len(points) != 16 {
		t.Fatalf("%d points, want 2*2*1*2*2 = 16", len(points))
	}
	key := func(p trainingPoint) string {
		return fmt.Sprintf("%s/%s/%s/%s/%d", studentDescription(p.student), p.mode, p.rationaleWeight, p.fraction, p.seed)
	}
	want := map[int]string{
		0:  "t5-small/Standard/1.0/0.25/7",
		1:  "t5-small/Standard/1.0/0.25/8", // seeds vary fastest
		2:  "t5-small/Standard/1.0/1/7",
		4:  "t5-small/StepByStep/1.0/0.25/7",
		8:  "pvc/models/t5-base/Standard/1.0/0.25/7", // base models slowest
		15: "pvc/models/t5-base/StepByStep/1.0/1/8",
	}
	for i, p := range points {
		if p.index != i || p.total != 16 || !p.inSweep() {
			t.Errorf("point %d: index %d, total %d", i, p.index, p.total)
		}
		if w, ok := want[i]; ok && key(p) != w {
			t.Errorf("point %d = %s, want %s", i, key(p), w)
		}
	}

	single := trainingPoints(utiltesting.MakeJob("dj", "ns").Obj())
	if len(single) != 1 || single[0].inSweep() || single[0].fraction != "1" || single[0].mode != v1alpha1.TrainingModeStepByStep {
		t.Errorf("a job without experiments has runs %+v, want its one single run", single)
	}
}

func TestServedPoint(t *testing.T) {
	row := func(i int32, state v1alpha1.ExperimentState, acc, agreement string) v1alpha1.ExperimentStatus {
		return v1alpha1.ExperimentStatus{Index: i, State: state, Accuracy: acc, Agreement: agreement}
	}
	ok, failed := v1alpha1.ExperimentSucceeded, v1alpha1.ExperimentFailed
	cases := []struct {
		name     string
		named    *int32
		rows     []v1alpha1.ExperimentStatus
		want     int
		wantNote bool
	}{
		{name: "the best accuracy", rows: []v1alpha1.ExperimentStatus{row(0, ok, "0.8000", "0.99"), row(1, ok, "0.9000", "0.5"), row(2, failed, "", "")}, want: 1},
		{name: "a tie goes to the lowest index", rows: []v1alpha1.ExperimentStatus{row(0, ok, "0.7000", ""), row(1, ok, "0.9000", ""), row(2, ok, "0.9000", "")}, want: 1},
		{name: "agreement when there are no gold labels", rows: []v1alpha1.ExperimentStatus{row(0, ok, "", "0.6000"), row(1, ok, "", "0.7000")}, want: 1},
		{name: "a scored point beats one without a summary", rows: []v1alpha1.ExperimentStatus{row(0, ok, "", ""), row(1, ok, "0.1000", "")}, want: 1},
		{name: "the only point without a summary", rows: []v1alpha1.ExperimentStatus{row(0, failed, "", ""), row(1, ok, "", "")}, want: 1},
		{name: "the named point", named: ptr.To[int32](0), rows: []v1alpha1.ExperimentStatus{row(0, ok, "0.5000", ""), row(1, ok, "0.9000", "")}, want: 0},
		{name: "a named point that failed: the best, said so", named: ptr.To[int32](0), rows: []v1alpha1.ExperimentStatus{row(0, failed, "", ""), row(1, ok, "0.2000", ""), row(2, ok, "0.3000", "")}, want: 2, wantNote: true},
		{name: "none succeeded", rows: []v1alpha1.ExperimentStatus{row(0, failed, "", ""), row(1, failed, "", "")}, want: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dj := sweepJob("dj").Obj()
			dj.Spec.Experiments.ServePoint = tc.named
			dj.Status.Experiments = tc.rows
			got, note := ServedPoint(dj)
			if got != tc.want || (note != "") != tc.wantNote {
				t.Errorf("servedPoint = %d (note %q), want %d (note: %v)", got, note, tc.want, tc.wantNote)
			}
		})
	}
}

func TestEvaluationStatus(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	gold := utiltesting.MakeJob("dj", "ns").LabelField("label").Obj()
	cases := []struct {
		name string
		dj   *v1alpha1.DistillationJob
		res  contract.TrainResult
		want v1alpha1.EvaluationStatus
	}{
		{name: "gold labels: the student beside the teacher", dj: gold, res: contract.TrainResult{BestStep: 120, Evaluation: &contract.Evaluation{
			Metric: contract.MetricAccuracy, Examples: 400, StudentAccuracy: f(0.875), TeacherAccuracy: f(0.9), Agreement: f(0.91)}},
			want: v1alpha1.EvaluationStatus{Metric: v1alpha1.MetricAccuracy, Examples: 400, Accuracy: "0.8750", TeacherAccuracy: "0.9000", Agreement: "0.9100", BestStep: 120}},
		{name: "no gold labels: agreement, never accuracy", dj: utiltesting.MakeJob("dj", "ns").Obj(), res: contract.TrainResult{Evaluation: &contract.Evaluation{
			Metric: contract.MetricAgreement, Examples: 50, Agreement: f(0.7)}},
			want: v1alpha1.EvaluationStatus{Metric: v1alpha1.MetricAgreement, Examples: 50, Agreement: "0.7000"}},
		{name: "generation", dj: utiltesting.MakeJob("dj", "ns").Generation().Obj(), res: contract.TrainResult{Evaluation: &contract.Evaluation{
			Metric: contract.MetricExactMatch, Examples: 9, ExactMatch: f(0.5), TokenF1: f(0.75)}},
			want: v1alpha1.EvaluationStatus{Metric: v1alpha1.MetricExactMatch, Examples: 9, ExactMatch: "0.5000", TokenF1: "0.7500"}},
		{name: "an unknown metric name is not copied", dj: gold, res: contract.TrainResult{Evaluation: &contract.Evaluation{Metric: "bleu", Examples: 1}},
			want: v1alpha1.EvaluationStatus{Examples: 1}},
		{name: "last release's trainer, gold labels", dj: gold, res: contract.TrainResult{EvalAccuracy: 0.5, EvalExamples: 10},
			want: v1alpha1.EvaluationStatus{Metric: v1alpha1.MetricAccuracy, Examples: 10, Accuracy: "0.5000"}},
		{name: "last release's trainer, no gold labels", dj: utiltesting.MakeJob("dj", "ns").Obj(), res: contract.TrainResult{EvalAccuracy: 0.5, EvalExamples: 10},
			want: v1alpha1.EvaluationStatus{Metric: v1alpha1.MetricAgreement, Examples: 10, Agreement: "0.5000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := evaluationStatus(tc.dj, tc.res); *got != tc.want {
				t.Errorf("evaluationStatus = %+v, want %+v", *got, tc.want)
			}
		})
	}
}

// Every point has its own Job, config key, folder and (multi-worker) Service; the rest is spec.training.
func TestSweepPointBuilders(t *testing.T) {
	dj := sweepJob("sweep").Workers(2).GPUs(1).Obj()
	dj.Spec.Experiments.Seeds = []int32{3}
	dj.Spec.Experiments.BaseModels = []v1alpha1.ExperimentStudent{{BaseModelFrom: &v1alpha1.VolumeFileRef{ClaimName: "models", Path: "tiny-t5"}}}
	points := trainingPoints(dj)
	p := points[2] // fraction 0.5, mode Standard
	if p.fraction != "0.5" || p.mode != v1alpha1.TrainingModeStandard {
		t.Fatalf("point 2 = %+v", p)
	}
	j := trainingJob(dj, testImages, p)
	c := j.Spec.Template.Spec.Containers[0]
	if j.Name != "sweep-train-2" || j.Labels[LabelPoint] != "2" || j.Spec.Template.Labels[LabelPoint] != "2" || j.Labels[LabelStage] != StageTraining {
		t.Errorf("job %s labels %v, pod labels %v", j.Name, j.Labels, j.Spec.Template.Labels)
	}
	if !slices.Contains(c.Command, "/etc/distillery/train-2.json") || j.Spec.Template.Spec.Subdomain != "sweep-train-2" {
		t.Errorf("command %v subdomain %s", c.Command, j.Spec.Template.Spec.Subdomain)
	}
	if env := envByName(c); env["PET_MASTER_ADDR"].Value != "sweep-train-2-0.sweep-train-2" {
		t.Errorf("PET_MASTER_ADDR = %q", env["PET_MASTER_ADDR"].Value)
	}
	if v := volumeByName(j.Spec.Template.Spec)[volBaseModel]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "models" {
		t.Errorf("the point's base model is not mounted: %+v", v)
	}
	svc := trainingService(dj, p)
	if svc.Name != "sweep-train-2" || svc.Spec.Selector[LabelPoint] != "2" || svc.Spec.Selector[LabelStage] != StageTraining {
		t.Errorf("service %s selector %v", svc.Name, svc.Spec.Selector)
	}

	cfg := renderTrainConfig(dj, nil, p)
	dir := "/workspace/jobs/sweep-u1/points/2"
	if cfg.Data.Fraction != 0.5 || cfg.Data.SubsetSeed != 3 || cfg.Training.Seed != 3 || cfg.Training.Mode != contract.ModeStandard ||
		cfg.Data.ValidationFraction != 0.1 || cfg.Student.BaseModel != "/models/base/tiny-t5" {
		t.Errorf("train-2.json data %+v training %+v student %+v", cfg.Data, cfg.Training, cfg.Student)
	}
	if cfg.Output.JobDir != "/workspace/jobs/sweep-u1" || cfg.Output.ModelDir != dir+"/model" || cfg.Output.CheckpointDir != dir+"/checkpoints" ||
		cfg.Output.MetricsPath != dir+"/metrics.json" || cfg.Output.ReportConfigMap != "" || cfg.Data.AnnotationsDir != "/workspace/jobs/sweep-u1/annotations" {
		t.Errorf("train-2.json output %+v", cfg.Output)
	}
	if cfg.Point == nil || *cfg.Point != (contract.TrainPoint{Index: 2, Total: 4}) {
		t.Errorf("train-2.json point = %+v", cfg.Point)
	}

	cm := stageConfigMap(dj, nil)
	var keys []string
	for k := range cm.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "annotate.json,train-0.json,train-1.json,train-2.json,train-3.json" {
		t.Errorf("config keys %v, want annotate.json and one train-<index>.json per point", keys)
	}

	// A single run keeps its names, and its trainer writes the report.
	single := utiltesting.MakeJob("one", "ns").UID("u2").Obj()
	run := trainingPoints(single)[0]
	scfg := renderTrainConfig(single, nil, run)
	if trainingJobName(single, run) != "one-train" || trainingJob(single, testImages, run).Labels[LabelPoint] != "" ||
		scfg.Point != nil || scfg.Output.ReportConfigMap != "one-report" || scfg.Output.ModelDir != "/workspace/jobs/one-u2/model" ||
		scfg.Data.Fraction != 1 {
		t.Errorf("single run: job %s, config point %+v output %+v data %+v", trainingJobName(single, run), scfg.Point, scfg.Output, scfg.Data)
	}
	if _, ok := stageConfigMap(single, nil).Data["train.json"]; !ok {
		t.Errorf("a single run's config has no train.json")
	}
}

// The served point becomes the StudentModel: its folder, its student, its mode, its scores.
func TestStudentModelOfASweepIsTheServedPoint(t *testing.T) {
	dj := sweepJob("sweep").Obj()
	dj.Status.ServedExperiment = ptr.To[int32](3) // fraction 1, Standard
	dj.Status.Evaluation = &v1alpha1.EvaluationStatus{Metric: v1alpha1.MetricAccuracy, Examples: 40, Accuracy: "0.9000", TeacherAccuracy: "0.9500", BestStep: 7}
	sm := studentModel(dj, renderAnnotateConfig(dj, InlineExamples(dj)))
	if sm.Spec.Artifact.Path != "jobs/sweep-u1/points/3/model" || sm.Spec.Provenance.Mode != v1alpha1.TrainingModeStandard || sm.Spec.BaseModel != "google/t5-v1_1-small" {
		t.Errorf("artifact %+v, mode %s, base %s", sm.Spec.Artifact, sm.Spec.Provenance.Mode, sm.Spec.BaseModel)
	}
	if m := sm.Spec.Metrics; m == nil || *m != (v1alpha1.ModelMetrics{Metric: v1alpha1.MetricAccuracy, Accuracy: "0.9000", TeacherAccuracy: "0.9500", EvalExamples: 40, BestStep: 7}) {
		t.Errorf("metrics = %+v", m)
	}
	if got := renderTrainConfig(dj, nil, trainingPoints(dj)[3]).Output.ModelDir; "/workspace/"+sm.Spec.Artifact.Path != got {
		t.Errorf("the StudentModel serves %s, the point's trainer writes %s", sm.Spec.Artifact.Path, got)
	}
}

// The report Job reads report.json, added to the snapshot once the points ended; it lists the points that
// succeeded and the served one, in the shape of testdata/contract/report-config.json.
func TestReportBuilders(t *testing.T) {
	dj := sweepJob("sweep").Obj()
	dj.Status.Experiments = []v1alpha1.ExperimentStatus{
		{Index: 0, State: v1alpha1.ExperimentSucceeded}, {Index: 1, State: v1alpha1.ExperimentFailed},
		{Index: 2, State: v1alpha1.ExperimentSucceeded}, {Index: 3, State: v1alpha1.ExperimentSucceeded},
	}
	dj.Status.ServedExperiment = ptr.To[int32](2)

	j := reportJob(dj, testImages)
	c := j.Spec.Template.Spec.Containers[0]
	if j.Name != "sweep-report" || j.Labels[LabelStage] != StageReport || c.Image != "student:test" ||
		strings.Join(c.Command, " ") != "python3 -m distillery_student report --config /etc/distillery/report.json" ||
		ptr.Deref(j.Spec.ActiveDeadlineSeconds, 0) != reportDeadlineSeconds || ptr.Deref(j.Spec.BackoffLimit, 9) != 1 {
		t.Errorf("report job %s labels %v image %s command %v deadline %v", j.Name, j.Labels, c.Image, c.Command, j.Spec.ActiveDeadlineSeconds)
	}
	if _, gpu := c.Resources.Limits[resourceNvidiaGPU]; gpu {
		t.Errorf("the report asks for a GPU: %+v", c.Resources)
	}
	assertRestricted(t, j.Spec.Template.Spec)

	snapshot := stageConfigMap(dj, nil)
	cm := reportStageConfig(dj, snapshot)
	for k, v := range snapshot.Data {
		if cm.Data[k] != v {
			t.Errorf("the report config changed the snapshot's %s", k)
		}
	}
	if cm.Annotations[AnnotationSpecHash] == snapshot.Annotations[AnnotationSpecHash] {
		t.Errorf("adding report.json does not change the config's spec hash, so it would never be applied")
	}
	rendered := []byte(cm.Data[contract.ReportConfigKey])
	var rc contract.ReportConfig
	decodeStrict(t, rendered, &rc)
	var indexes []int
	for _, p := range rc.Points {
		indexes = append(indexes, p.Index)
	}
	if fmt.Sprint(indexes) != "[0 2 3]" || rc.ServedIndex != 2 || rc.ReportConfigMap != "sweep-report" || rc.JobDir != "/workspace/jobs/sweep-u1" ||
		rc.Points[1].MetricsPath != "/workspace/jobs/sweep-u1/points/2/metrics.json" || rc.Points[1].Mode != contract.ModeStandard || rc.Points[1].Fraction != 0.5 {
		t.Errorf("report.json = %+v", rc)
	}
	vector, err := os.ReadFile(filepath.Join("..", "testdata", "contract", "report-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, want := keysOf(t, rendered), keysOf(t, vector)
	if fmt.Sprint(sortedSet(got)) != fmt.Sprint(sortedSet(want)) {
		t.Errorf("report.json keys %v, vector's %v", sortedSet(got), sortedSet(want))
	}
	var mine, theirs struct{ Points []json.RawMessage }
	if json.Unmarshal(rendered, &mine) != nil || json.Unmarshal(vector, &theirs) != nil || len(mine.Points) == 0 || len(theirs.Points) == 0 {
		t.Fatalf("no points to compare: %s", rendered)
	}
	if got, want := sortedSet(keysOf(t, mine.Points[0])), sortedSet(keysOf(t, theirs.Points[0])); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("a report point has keys %v, the vector's %v", got, want)
	}
}

func sortedSet(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestProgressOfASweep(t *testing.T) {
	st := &v1alpha1.DistillationJobStatus{
		Training: &v1alpha1.TrainingStatus{Step: 5, TotalSteps: 5},
		Experiments: []v1alpha1.ExperimentStatus{{State: v1alpha1.ExperimentSucceeded}, {State: v1alpha1.ExperimentFailed},
			{State: v1alpha1.ExperimentRunning}, {State: v1alpha1.ExperimentPending}},
	}
	if got := progressString(st); got != "points 2/4" {
		t.Errorf("progress = %q, want points 2/4", got)
	}
}

func TestAFinishedRowWithoutItsSummaryIsReadAgainWhileItsPodsRemain(t *testing.T) {
	pod := []corev1.Pod{{}}
	noSummary := v1alpha1.ExperimentStatus{State: v1alpha1.ExperimentSucceeded, Message: "the trainer saved the model but left no summary"}
	scored := v1alpha1.ExperimentStatus{State: v1alpha1.ExperimentSucceeded, Steps: 300, Accuracy: "0.9000"}
	failed := v1alpha1.ExperimentStatus{State: v1alpha1.ExperimentFailed}
	running := v1alpha1.ExperimentStatus{State: v1alpha1.ExperimentRunning}
	for _, c := range []struct {
		name string
		row  v1alpha1.ExperimentStatus
		run  *jobPods
		keep bool
	}{
		{"no summary, pods remain", noSummary, &jobPods{pods: pod}, false},
		{"no summary, pods gone", noSummary, &jobPods{}, true},
		{"no summary, Job gone", noSummary, nil, true},
		{"scored", scored, &jobPods{pods: pod}, true},
		{"failed", failed, &jobPods{pods: pod}, true},
		{"running", running, &jobPods{pods: pod}, false},
	} {
		if got := keepRow(c.row, c.run); got != c.keep {
			t.Errorf("%s: keepRow = %v, want %v", c.name, got, c.keep)
		}
	}
}
