package contract

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
