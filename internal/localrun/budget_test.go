package localrun

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/faketeacher"
)

// The sample job with its budget replaced, against the fake teacher: the shards in this process share the
// budget (the annotator's file ledger), stop at it with BudgetExceeded, and the same YAML with a larger
// budget resumes the same run, asking nothing twice.
func TestAnnotationStopsAtTheBudgetAndALargerBudgetResumes(t *testing.T) {
	fake := &faketeacher.Server{RecordInputs: true}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	data, out := compareDataDir(t), t.TempDir()
	sample, err := os.ReadFile(sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(t.TempDir(), "job.yaml")
	withBudget := func(caps string) {
		t.Helper()
		s := strings.Replace(string(sample), "maxTokens: 1000000 ", caps+" ", 1)
		if s == string(sample) {
			t.Fatal("the sample's budget has no maxTokens: 1000000")
		}
		mustWrite(t, job, s)
	}
	annotateOnce := func() error {
		t.Helper()
		p, err := NewPlan(context.Background(), Options{JobFile: job, DataDir: data, OutputDir: out, TeacherEndpoint: srv.URL + "/v1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := prepare(p.Layout, p.Job, false, p.Annotate, p.Train); err != nil {
			t.Fatal(err)
		}
		bar := newStageBar(io.Discard, false, "annotate", "inputs")
		res, err := annotate(context.Background(), p.Annotate, "", p.Layout.annotateLog(), bar)
		bar.finish(err == nil)
		if err != nil {
			t.Fatal(err)
		}
		return budgetPolicy(io.Discard, p.Job, p.Annotate.Budget, res)
	}

	withBudget("maxRequests: 10")
	err = annotateOnce()
	if err == nil || !strings.Contains(err.Error(), "BudgetExceeded: teacher budget reached") {
		t.Fatalf("a budget of 10 requests for 40 inputs: %v", err)
	}
	// Two shards, each may pass the cap by the one request it started last.
	if calls := fake.Calls(); calls < 10 || calls > 12 {
		t.Errorf("the teacher answered %d requests under a budget of 10", calls)
	}

	withBudget("maxRequests: 1000")
	if err := annotateOnce(); err != nil {
		t.Fatalf("the same YAML with a larger budget: %v", err)
	}
	seen := fake.Seen()
	if len(seen) != 40 {
		t.Errorf("%d inputs asked in all, want 40", len(seen))
	}
	for input, n := range seen {
		if n != 1 {
			t.Errorf("input %q asked %d times", input, n)
		}
	}
}
