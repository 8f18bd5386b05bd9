package localrun

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

// sampleJob is the demo job of config/samples, as `make dev` applies it.
var sampleJob = filepath.Join("..", "..", "config", "samples", "distillery_v1alpha1_distillationjob.yaml")

// dataDir lays out the files the sample's references name under a --data folder, with a one-line dataset.
func dataDir(t *testing.T) string {
	t.Helper()
	return dataDirWith(t, `{"id":"1","input":"First: 1\nSecond: 2","label":"second"}`+"\n")
}

// compareDataDir is dataDir with the fake teacher's 40-line compare-numbers dataset.
func compareDataDir(t *testing.T) string {
	t.Helper()
	var lines bytes.Buffer
	if err := faketeacher.WriteCompareDataset(&lines, 40, 5); err != nil {
		t.Fatal(err)
	}
	return dataDirWith(t, lines.String())
}

func dataDirWith(t *testing.T, dataset string) string {
	t.Helper()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "compare-numbers-data", "train.jsonl"), dataset)
	if err := os.MkdirAll(filepath.Join(dir, "distillery-models", "tiny-t5"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestThePlanIsTheOperatorsConfigsWithLocalFolders(t *testing.T) {
	data, out := dataDir(t), t.TempDir()
	p, err := NewPlan(context.Background(), Options{JobFile: sampleJob, DataDir: data, OutputDir: out, TeacherEndpoint: "http://127.0.0.1:9/v1"})
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(out, "compare-numbers")
	a, tr := p.Annotate, p.Train
	if a.Dataset.Path != filepath.Join(data, "compare-numbers-data", "train.jsonl") ||
		a.Output.JobDir != run || a.Output.Dir != filepath.Join(run, "annotations") || a.Output.CacheDir != filepath.Join(out, ".cache") {
		t.Errorf("annotate.json paths: dataset %s, output %+v", a.Dataset.Path, a.Output)
	}
	if a.Teacher.Endpoint != "http://127.0.0.1:9/v1" {
		t.Errorf("endpoint %s, want the override", a.Teacher.Endpoint)
	}
	if tr.Student.BaseModel != filepath.Join(data, "distillery-models", "tiny-t5") || tr.Output.ModelDir != filepath.Join(run, "model") ||
		tr.Data.AnnotationsDir != a.Output.Dir || tr.Output.JobDir != run {
		t.Errorf("train.json paths: base model %s, data %+v, output %+v", tr.Student.BaseModel, tr.Data, tr.Output)
	}
	// Everything else is what the operator renders for the same job: the renderer is the same function.
	paths := controllers.StagePaths{JobDir: run, CacheDir: filepath.Join(out, ".cache"),
		Dataset: a.Dataset.Path, BaseModelDir: p.Layout.claimFile}
	want := controllers.RenderAnnotateConfig(p.Job, controllers.InlineExamples(p.Job), paths)
	want.JobUID = a.JobUID
	want.Teacher.Endpoint = a.Teacher.Endpoint
	if want.Teacher != a.Teacher || want.Task.Instruction != a.Task.Instruction || want.Shards != 2 || a.Shards != 2 ||
		a.Teacher.MaxConcurrency != 16 || a.Teacher.MaxTokens != 128 {
		t.Errorf("annotate.json differs from the operator's: %+v vs %+v", a.Teacher, want.Teacher)
	}
	if tr.Training.MaxSteps != 600 || tr.Training.BatchSize != 32 || tr.Training.Epochs != 3 {
		t.Errorf("training %+v: the sample's, with the CRD's default of 3 epochs", tr.Training)
	}
	if !strings.HasPrefix(a.JobUID, "local-") || a.JobUID != tr.JobUID {
		t.Errorf("job UIDs %q and %q", a.JobUID, tr.JobUID)
	}
}

func TestMissingDataNamesTheFieldAndTheFile(t *testing.T) {
	data := dataDir(t)
	os.RemoveAll(filepath.Join(data, "distillery-models"))
	_, err := NewPlan(context.Background(), Options{JobFile: sampleJob, DataDir: data, OutputDir: t.TempDir()})
	want := "spec.student.baseModelFrom reads " + filepath.Join(data, "distillery-models", "tiny-t5")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to contain %q", err, want)
	}
	_, err = NewPlan(context.Background(), Options{JobFile: sampleJob, DataDir: t.TempDir(), OutputDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "spec.dataset.configMap reads") {
		t.Errorf("err = %v, want the dataset's ConfigMap reference", err)
	}
}

func TestAnInvalidJobIsRefusedWithKubectlsMessage(t *testing.T) {
	b, err := os.ReadFile(sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	mustWrite(t, bad, strings.Replace(string(b), "maxConcurrency: 16", "maxConcurrency: 0", 1))
	_, err = LoadJob(context.Background(), bad)
	want := `The DistillationJob "compare-numbers" is invalid: spec.teacher.maxConcurrency: Invalid value: 0: spec.teacher.maxConcurrency in body should be greater than or equal to 1`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestTheLocalUIDFollowsTheImmutableSpec(t *testing.T) {
	dj, err := LoadJob(context.Background(), sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	uid := localUID(dj)
	same := dj.DeepCopy()
	same.Spec.Suspend, same.Spec.Serving.Replicas = new(bool), new(int32)
	if localUID(same) != uid {
		t.Error("a change of mutable fields (suspend, serving) changed the run's identity")
	}
	other := dj.DeepCopy()
	other.Spec.Training.LearningRate = "0.001"
	if localUID(other) == uid {
		t.Error("a change of the training settings kept the run's identity: its checkpoints would be resumed")
	}
}

func TestAChangedSpecIsNotResumedUnlessFresh(t *testing.T) {
	data, out := dataDir(t), t.TempDir()
	o := Options{JobFile: sampleJob, DataDir: data, OutputDir: out}
	p, err := NewPlan(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := prepare(p.Layout, p.Job, false, p.Annotate, p.Train); err != nil {
		t.Fatal(err)
	}
	if err := prepare(p.Layout, p.Job, false, p.Annotate, p.Train); err != nil {
		t.Fatalf("the same spec again (a resume): %v", err)
	}
	changed := p.Annotate
	changed.JobUID = "local-other"
	err = prepare(p.Layout, p.Job, false, changed, p.Train)
	if err == nil || !strings.Contains(err.Error(), "--fresh") {
		t.Errorf("another spec in the same folder: %v, want a refusal pointing at --fresh", err)
	}
	if err := prepare(p.Layout, p.Job, true, changed, p.Train); err != nil {
		t.Errorf("--fresh: %v", err)
	}
	if b, err := os.ReadFile(p.Layout.annotateConfig()); err != nil || !strings.Contains(string(b), "local-other") {
		t.Errorf("annotate.json after --fresh: %s, %v", b, err)
	}
}

func TestTrainerProgressLines(t *testing.T) {
	line := `2026-11-30 06:56:57,636 INFO progress train-0 {"step":214,"totalSteps":600,"loss":0.3,"labelLoss":0.1,"rationaleLoss":0.2,"updatedAt":"2026-11-30T06:56:57Z"}`
	p, ok := parseTrainProgress(line)
	if !ok || p.Step != 214 || p.TotalSteps != 600 {
		t.Errorf("parseTrainProgress = %+v, %v", p, ok)
	}
	point := `INFO progress point-3-train-0 {"step":7,"totalSteps":40,"loss":0.3,"labelLoss":0.1,"rationaleLoss":0.2,"updatedAt":"2026-11-30T06:56:57Z"}`
	if p, ok := parseTrainProgress(point); !ok || p.Step != 7 || p.TotalSteps != 40 {
		t.Errorf("a sweep point's line: parseTrainProgress = %+v, %v", p, ok)
	}
	for _, l := range []string{"2026-11-30 INFO step 50/600 loss 0.3", "progress train-0 {not json", "",
		`progress train-1 {"step":1,"totalSteps":2}`, `progress point-3-train-1 {"step":1,"totalSteps":2}`} {
		if _, ok := parseTrainProgress(l); ok {
			t.Errorf("%q read as progress", l)
		}
	}
}

func TestShardResultsSumAsTheOperatorSumsThem(t *testing.T) {
	sum := sumResults([]contract.AnnotateResult{
		{Total: 10, OK: 7, Unparseable: 1, LabelMismatch: 1, TeacherErrors: 1, CacheHits: 2, PromptTokens: 100, CompletionTokens: 20, SkippedLines: 1, FirstSkippedLine: 9, FirstSkippedError: "nine"},
		{Total: 5, OK: 5, PromptTokens: 50, CompletionTokens: 10, SkippedLines: 2, FirstSkippedLine: 4, FirstSkippedError: "four"},
	})
	want := contract.AnnotateResult{Stage: "annotate", Total: 15, OK: 12, Unparseable: 1, LabelMismatch: 1, TeacherErrors: 1, CacheHits: 2,
		PromptTokens: 150, CompletionTokens: 30, SkippedLines: 3, FirstSkippedLine: 4, FirstSkippedError: "four"}
	if sum != want {
		t.Errorf("sum = %+v\nwant  %+v", sum, want)
	}
}

func TestTheEndpointOverrideFollowsTheAdmissionRules(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8000/v1", "https://api.openai.com/v1"} {
		if err := checkEndpoint(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for endpoint, want := range map[string]string{
		"ftp://host/v1":  "http:// or https://",
		"localhost:8000": "http:// or https://",
		"https://user:sk-secret@api.example.com/v1":   "must not carry credentials",
		"https://api.example.com/v1?key=sk-secret":    "must not carry credentials",
		"https://api.example.com/v1/chat/completions": "base URL ending in /v1",
	} {
		err := checkEndpoint(endpoint)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v, want %q without the URL", endpoint, err, want)
		}
	}
}

func TestTheKeyVariableIsTheOneTheOperatorRenders(t *testing.T) {
	dj, err := LoadJob(context.Background(), sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	dj.Spec.Teacher.APIKeySecretRef = &v1alpha1.SecretKeyRef{Name: "teacher", Key: "apiKey"}
	if got := controllers.RenderAnnotateConfig(dj, nil, controllers.StagePaths{}).Teacher.APIKeyEnv; got != teacherKeyEnv {
		t.Errorf("the operator renders apiKeyEnv %q, distillery run names %q", got, teacherKeyEnv)
	}
	t.Setenv(teacherKeyEnv, "")
	if _, err := teacherKey(contract.AnnotateConfig{Teacher: contract.Teacher{APIKeyEnv: teacherKeyEnv}}); err == nil ||
		!strings.Contains(err.Error(), "export the teacher's API key as "+teacherKeyEnv) {
		t.Errorf("no key exported: %v", err)
	}
}

func TestABudgetRaisedInTheYAMLResumesTheSameRun(t *testing.T) {
	dj, err := LoadJob(context.Background(), sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	raised := dj.DeepCopy()
	more := int64(5000000)
	raised.Spec.Teacher.Budget.MaxTokens = &more
	if localUID(raised) != localUID(dj) {
		t.Error("a raised budget changed the run's identity: the run could not resume under it")
	}
}

func TestTheBudgetPolicyIsTheOperators(t *testing.T) {
	dj, err := LoadJob(context.Background(), sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	b := &contract.Budget{BudgetCaps: contract.BudgetCaps{MaxTokens: 1000, PromptPricePerMillion: 3, CompletionPricePerMillion: 15}}
	stopped := contract.AnnotateResult{Total: 8, OK: 7, Requests: 8, PromptTokens: 900, CompletionTokens: 150, BudgetExceeded: true, Unasked: 992}
	var out strings.Builder
	err = budgetPolicy(&out, dj, b, stopped)
	want := "BudgetExceeded: teacher budget reached (1050 of 1000 tokens, 8 requests, cost 0.0050): the shards stopped asking the teacher and kept every record; 8 of 1000 inputs annotated, 992 not asked"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("onExceeded Fail: %v\nwant %s", err, want)
	}
	dj.Spec.Teacher.Budget.OnExceeded = v1alpha1.BudgetActionTrain
	if err := budgetPolicy(&out, dj, b, stopped); err != nil || !strings.Contains(out.String(), "training on the 7 usable annotations of 1000 inputs") {
		t.Errorf("onExceeded Train: %v, %q", err, out.String())
	}
	if err := budgetPolicy(&out, dj, b, contract.AnnotateResult{Total: 1000, OK: 1000}); err != nil {
		t.Errorf("within the budget: %v", err)
	}
}
