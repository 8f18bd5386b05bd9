package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
)

func rec(id string) contract.Record {
	return contract.Record{ID: id, Input: "in " + id, Status: contract.StatusOK, Rationale: "r", TeacherLabel: "l"}
}

func TestResumeSkipsDoneIDsAndCutsATornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "annotations", "shard-00000-of-00001.jsonl")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := s.Append(rec(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, path, `{"id":"c","input":"in c","sta`) // the write a kill interrupted

	var tallied []string
	s, err = Open(path, func(r contract.Record) { tallied = append(tallied, r.ID) })
	if err != nil {
		t.Fatal(err)
	}
	if !s.IsDone("a") || !s.IsDone("b") || s.IsDone("c") {
		t.Errorf("done: a=%v b=%v c=%v, want a and b only", s.IsDone("a"), s.IsDone("b"), s.IsDone("c"))
	}
	if s.Existing.Count != 2 || s.Existing.RepairedBytes == 0 || strings.Join(tallied, ",") != "a,b" {
		t.Errorf("existing = %+v, tallied %v", s.Existing, tallied)
	}
	if err := s.Append(rec("c")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], `{"id":"c"`) {
		t.Errorf("file after repair and append:\n%s", b)
	}
}

func TestAnInvalidLastLineWithNewlineIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	appendRaw(t, path, `{"id":"a","input":"x","status":"ok","usage":{"promptTokens":0,"completionTokens":0}}`+"\n"+`{"id":"b",`+"\n")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Existing.Count != 1 || s.IsDone("b") {
		t.Errorf("existing = %+v", s.Existing)
	}
}

func TestCorruptionBeforeTheLastLineStopsTheShard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	appendRaw(t, path, "garbage\n"+`{"id":"a","input":"x","status":"ok"}`+"\n")
	if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("Open = %v, want an error naming line 1", err)
	}
}

func appendRaw(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
