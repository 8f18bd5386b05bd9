package contract

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"
)

// vectors is the folder of contract examples that the Go and Python tests both read.
var vectors = filepath.Join("..", "..", "testdata", "contract")

func readVector(t *testing.T, name string, into any) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// assertRoundTrip checks that the Go type keeps every field of the vector.
func assertRoundTrip(t *testing.T, name string, raw []byte, v any) {
	t.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	// A score that does not apply is absent; a vector may spell it null (termination-train.json does).
	want, got = withoutNulls(want), withoutNulls(got)
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s does not round-trip:\nwant %v\ngot  %v", name, want, got)
	}
}

// withoutNulls drops the object keys whose value is null, at every depth.
func withoutNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, child := range x {
			if child != nil {
				out[k] = withoutNulls(child)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, child := range x {
			out[i] = withoutNulls(child)
		}
		return out
	}
	return v
}

func TestVectorsRoundTrip(t *testing.T) {
	cases := map[string]func() any{
		"annotate.json":                    func() any { return &AnnotateConfig{} },
		"train.json":                       func() any { return &TrainConfig{} },
		"termination-annotate.json":        func() any { return &AnnotateResult{} },
		"termination-annotate-failed.json": func() any { return &AnnotateResult{} },
		"termination-annotate-budget.json": func() any { return &AnnotateResult{} },
		"budget-caps.json":                 func() any { return &BudgetCaps{} },
		"budget-share.json":                func() any { return &BudgetShare{} },
		"termination-train.json":           func() any { return &TrainResult{} },
		"termination-estimate.json":        func() any { return &EstimateResult{} },
		"report-config.json":               func() any { return &ReportConfig{} },
		"progress-annotate.json":           func() any { return &AnnotateProgress{} },
		"progress-train.json":              func() any { return &TrainProgress{} },
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			v := mk()
			raw := readVector(t, name, v)
			assertRoundTrip(t, name, raw, v)
		})
	}
}

func TestRecordsVector(t *testing.T) {
	f, err := os.Open(filepath.Join(vectors, "records.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	statuses := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		assertRoundTrip(t, "record "+r.ID, sc.Bytes(), &r)
		statuses[r.Status]++
		if r.Status == StatusOK && (r.Rationale == "" || r.TeacherLabel == "") {
			t.Errorf("record %s is ok without a rationale and a teacher label", r.ID)
		}
		if r.Status != StatusOK && r.Error == "" {
			t.Errorf("record %s has status %s but no error", r.ID, r.Status)
		}
	}
	for _, s := range []string{StatusOK, StatusUnparseable, StatusLabelMismatch, StatusTeacherError} {
		if statuses[s] == 0 {
			t.Errorf("records.jsonl has no %s record", s)
		}
	}
}

func TestPromptHashMatchesTrainVector(t *testing.T) {
	var a AnnotateConfig
	var tr TrainConfig
	readVector(t, "annotate.json", &a)
	readVector(t, "train.json", &tr)
	if got := PromptHash(a.Task); got != tr.Provenance.PromptHash {
		t.Errorf("PromptHash(annotate.json task) = %s, train.json says %s", got, tr.Provenance.PromptHash)
	}
	changed := a.Task
	changed.Instruction += " "
	if PromptHash(changed) == PromptHash(a.Task) {
		t.Error("PromptHash ignores the instruction")
	}
}

func TestNormalizeLabelVector(t *testing.T) {
	var pairs [][2]string
	readVector(t, "normalize.json", &pairs)
	for _, p := range pairs {
		if got := NormalizeLabel(p[0]); got != p[1] {
			t.Errorf("NormalizeLabel(%q) = %q, want %q", p[0], got, p[1])
		}
	}
}

// TestProgressKeysVector: the trainer's progress keys, as the Python side makes them (test_contract.py).
func TestProgressKeysVector(t *testing.T) {
	var keys []struct {
		Rank  int  `json:"rank"`
		Point *int `json:"point"`
		Key   string
	}
	readVector(t, "progress-keys.json", &keys)
	for _, k := range keys {
		got := TrainProgressKey(k.Rank)
		if k.Point != nil {
			got = PointProgressKey(*k.Point, k.Rank)
		}
		if got != k.Key {
			t.Errorf("rank %d point %v: %q, want %q", k.Rank, k.Point, got, k.Key)
		}
	}
}

func TestShardFileNameAndInShard(t *testing.T) {
	if got := ShardFileName(3, 8); got != "shard-00003-of-00008.jsonl" {
		t.Errorf("ShardFileName(3, 8) = %s", got)
	}
	seen := make([]int, 100)
	for shard := 0; shard < 7; shard++ {
		for pos := range seen {
			if InShard(pos, shard, 7) {
				seen[pos]++
			}
		}
	}
	for pos, n := range seen {
		if n != 1 {
			t.Fatalf("position %d is in %d shards", pos, n)
		}
	}
}

func TestJobStampVector(t *testing.T) {
	var s JobStamp
	raw := readVector(t, JobFileName, &s)
	assertRoundTrip(t, JobFileName, raw, &s)
	var a AnnotateConfig
	var tr TrainConfig
	readVector(t, "annotate.json", &a)
	readVector(t, "train.json", &tr)
	want := filepath.Join("/workspace", JobDir(s.Job, s.UID))
	if a.JobUID != s.UID || tr.JobUID != s.UID || a.Output.JobDir != want || tr.Output.JobDir != want {
		t.Errorf("annotate.json (uid %s, jobDir %s) and train.json (uid %s, jobDir %s) disagree with job.json's folder %s",
			a.JobUID, a.Output.JobDir, tr.JobUID, tr.Output.JobDir, want)
	}
	for _, p := range []string{a.Output.Dir, tr.Data.AnnotationsDir, tr.Output.CheckpointDir, tr.Output.ModelDir, tr.Output.MetricsPath} {
		if filepath.Dir(p) != want {
			t.Errorf("%s is not directly inside the job folder %s", p, want)
		}
	}
	if a.Output.CacheDir != filepath.Join("/workspace", CacheDir) {
		t.Errorf("the cache %s is not the shared one", a.Output.CacheDir)
	}
}

func TestClaimJobDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), JobDir("anli", "uid-1"))
	mine := JobStamp{Job: "anli", UID: "uid-1"}
	if err := ClaimJobDir(dir, mine); err != nil {
		t.Fatalf("claiming a new folder: %v", err)
	}
	var written JobStamp
	b, err := os.ReadFile(filepath.Join(dir, JobFileName))
	if err != nil || json.Unmarshal(b, &written) != nil || written != mine {
		t.Fatalf("job.json = %q (%v), want %+v", b, err, mine)
	}
	if err := ClaimJobDir(dir, mine); err != nil {
		t.Errorf("the same run claiming again (a retried pod): %v", err)
	}
	err = ClaimJobDir(dir, JobStamp{Job: "anli", UID: "uid-2"})
	var conflict *WorkspaceConflictError
	if !errors.As(err, &conflict) || !strings.Contains(err.Error(), "uid-1") || !strings.Contains(err.Error(), "uid-2") {
		t.Errorf("another run's claim: %v, want a WorkspaceConflictError naming both uids", err)
	}
}

func TestClaimJobDirConcurrently(t *testing.T) {
	dir := filepath.Join(t.TempDir(), JobDir("anli", "uid-1"))
	mine := JobStamp{Job: "anli", UID: "uid-1"}
	var g errgroup.Group
	for range 16 { // the shards of one run start together
		g.Go(func() error { return ClaimJobDir(dir, mine) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// The termination vector carries the evaluation the operator puts in status: absent scores are nil, and
// the primary metric is repeated in evalAccuracy for the operators of the last release.
func TestTrainResultVectorEvaluation(t *testing.T) {
	var r TrainResult
	readVector(t, "termination-train.json", &r)
	e := r.Evaluation
	if e == nil || e.Metric != MetricAccuracy || e.Examples != 400 || e.StudentAccuracy == nil || *e.StudentAccuracy != 0.875 ||
		e.TeacherAccuracy == nil || *e.TeacherAccuracy != 0.9 || e.Agreement == nil || *e.Agreement != 0.91 ||
		e.ExactMatch != nil || e.TokenF1 != nil {
		t.Fatalf("evaluation = %+v", e)
	}
	if r.EvalAccuracy != *e.StudentAccuracy || r.EvalExamples != e.Examples || r.BestStep != 1200 || r.WallSeconds != 812.5 {
		t.Errorf("termination-train.json = %+v", r)
	}
	b, _ := json.Marshal(Evaluation{Metric: MetricAgreement, Examples: 3})
	if strings.Contains(string(b), "Accuracy") || strings.Contains(string(b), "null") {
		t.Errorf("absent scores are written: %s", b)
	}
}

// A sweep's names: per-point config keys and folders, and the report ConfigMap.
func TestSweepNames(t *testing.T) {
	if got := TrainConfigKey(-1); got != "train.json" {
		t.Errorf("TrainConfigKey(-1) = %s", got)
	}
	if got := TrainConfigKey(12); got != "train-12.json" {
		t.Errorf("TrainConfigKey(12) = %s", got)
	}
	if got := PointDir(3); got != "points/3" {
		t.Errorf("PointDir(3) = %s", got)
	}
	if got := ReportConfigMapName("anli-t5"); got != "anli-t5-report" {
		t.Errorf("ReportConfigMapName = %s", got)
	}
	if got := EvalShardFileName(3, 8); got != "eval-shard-00003-of-00008.jsonl" {
		t.Errorf("EvalShardFileName(3, 8) = %s", got)
	}
	var tr TrainConfig
	var rc ReportConfig
	readVector(t, "train.json", &tr)
	readVector(t, "report-config.json", &rc)
	if tr.Output.ReportConfigMap != ReportConfigMapName(tr.Job) || rc.ReportConfigMap != ReportConfigMapName(tr.Job) {
		t.Errorf("report ConfigMaps %s and %s, want %s", tr.Output.ReportConfigMap, rc.ReportConfigMap, ReportConfigMapName(tr.Job))
	}
	if tr.Data.ValidationFraction != 0.1 || tr.Data.Fraction != 1 || tr.Point == nil || tr.Point.Index != 2 || tr.Point.Total != 8 {
		t.Errorf("train.json data %+v point %+v", tr.Data, tr.Point)
	}
	for _, p := range rc.Points {
		if want := filepath.Join(rc.JobDir, PointDir(p.Index), "metrics.json"); p.MetricsPath != want {
			t.Errorf("point %d: metricsPath %s, want %s", p.Index, p.MetricsPath, want)
		}
	}
}

func TestAnnotateResultAddSumsShardsAndKeepsTheLowestSkippedLine(t *testing.T) {
	var sum AnnotateResult
	sum.Add(AnnotateResult{Total: 5, OK: 4, Requests: 4, PromptTokens: 40, SkippedLines: 1, FirstSkippedLine: 9, FirstSkippedError: "b"})
	sum.Add(AnnotateResult{Total: 3, OK: 3, Requests: 2, PromptTokens: 20, BudgetExceeded: true, Unasked: 7,
		SkippedLines: 2, FirstSkippedLine: 4, FirstSkippedError: "a"})
	sum.Add(AnnotateResult{Total: 1, SkippedLines: 1, FirstSkippedLine: 12, FirstSkippedError: "c"})
	want := AnnotateResult{Total: 9, OK: 7, Requests: 6, PromptTokens: 60, BudgetExceeded: true, Unasked: 7,
		SkippedLines: 4, FirstSkippedLine: 4, FirstSkippedError: "a"}
	if sum != want {
		t.Errorf("sum = %+v, want %+v", sum, want)
	}
	var p AnnotateProgress
	p.Add(AnnotateProgress{Done: 2, Total: 5, UpdatedAt: "2026-11-30T07:00:01Z"})
	p.Add(AnnotateProgress{Done: 1, Total: 4, BudgetExceeded: true, UpdatedAt: "2026-11-30T07:00:00Z"})
	if p.Done != 3 || p.Total != 9 || !p.BudgetExceeded || p.UpdatedAt != "2026-11-30T07:00:01Z" {
		t.Errorf("progress sum = %+v", p)
	}
}
