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
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s does not round-trip:\nwant %v\ngot  %v", name, want, got)
	}
}

func TestVectorsRoundTrip(t *testing.T) {
	cases := map[string]func() any{
		"annotate.json":                    func() any { return &AnnotateConfig{} },
		"train.json":                       func() any { return &TrainConfig{} },
		"termination-annotate.json":        func() any { return &AnnotateResult{} },
		"termination-annotate-failed.json": func() any { return &AnnotateResult{} },
		"termination-train.json":           func() any { return &TrainResult{} },
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
	b, err := os.ReadFile(filepath.Join(vectors, "normalize.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pairs); err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if got := NormalizeLabel(p[0]); got != p[1] {
			t.Errorf("NormalizeLabel(%q) = %q, want %q", p[0], got, p[1])
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
