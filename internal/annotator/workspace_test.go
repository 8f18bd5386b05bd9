package annotator

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
)

// jobOn points the fixture's config at job run (name, uid) in the workspace root ws, laid out as the
// operator renders it: the run's own folder, the shared cache.
func (f *fixture) jobOn(ws, name, uid string) Options {
	cfg := f.cfg
	cfg.Job, cfg.JobUID = name, uid
	dir := filepath.Join(ws, contract.JobDir(name, uid))
	cfg.Output = contract.AnnotateOut{JobDir: dir, Dir: filepath.Join(dir, "annotations"), CacheDir: filepath.Join(ws, contract.CacheDir)}
	opts := f.options(0)
	opts.Config, opts.OutputDir, opts.CacheDir = cfg, "", cfg.Output.CacheDir
	return opts
}

func TestASecondJobOnTheClaimPaysNothingAndKeepsItsOwnFiles(t *testing.T) {
	f := newFixture(t, 30, 1, nil)
	ws := t.TempDir()
	first, err := f.run(t, f.jobOn(ws, "a", "uid-a"))
	if err != nil || first.OK != 30 {
		t.Fatalf("first job: %+v, %v", first, err)
	}
	calls := f.fake.Calls()
	second, err := f.run(t, f.jobOn(ws, "b", "uid-b"))
	if err != nil {
		t.Fatal(err)
	}
	if f.fake.Calls() != calls || second.CacheHits != 30 || second.OK != 30 || second.PromptTokens != 0 {
		t.Errorf("second job: %d teacher calls, result %+v; want 30 cache hits and nothing paid", f.fake.Calls()-calls, second)
	}
	if first.DatasetHash == "" || second.DatasetHash != first.DatasetHash {
		t.Errorf("dataset hashes %q and %q: want the same, set", first.DatasetHash, second.DatasetHash)
	}
	for _, job := range []struct{ name, uid string }{{"a", "uid-a"}, {"b", "uid-b"}} {
		dir := filepath.Join(ws, contract.JobDir(job.name, job.uid))
		recs := readRecords(t, filepath.Join(dir, "annotations", contract.ShardFileName(0, 1)))
		if len(recs) != 30 {
			t.Errorf("job %s has %d records in its own folder, want 30", job.name, len(recs))
		}
		if _, err := os.Stat(filepath.Join(dir, contract.JobFileName)); err != nil {
			t.Errorf("job %s's folder has no %s: %v", job.name, contract.JobFileName, err)
		}
	}
}

// Two jobs' shards annotating at once over one cache (two pods on one claim): both finish with every
// input, and every cache entry they leave is whole.
func TestTwoJobsAnnotateAtOnceOverOneCache(t *testing.T) {
	f := newFixture(t, 200, 1, nil)
	ws := t.TempDir()
	var wg sync.WaitGroup
	results := make([]contract.AnnotateResult, 2)
	errs := make([]error, 2)
	for i, uid := range []string{"uid-a", "uid-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.run(t, f.jobOn(ws, "job-"+uid, uid))
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i].OK != 200 {
			t.Errorf("job %d: %+v, %v", i, results[i], errs[i])
		}
	}
	entries, _ := filepath.Glob(filepath.Join(ws, contract.CacheDir, "*", "*.json"))
	if len(entries) != 200 {
		t.Errorf("%d cache entries, want one per input (200)", len(entries))
	}
	// A third job reads every entry back whole: nothing to pay.
	calls := f.fake.Calls()
	third, err := f.run(t, f.jobOn(ws, "c", "uid-c"))
	if err != nil || third.CacheHits != 200 || f.fake.Calls() != calls {
		t.Errorf("third job: %+v, %v, %d teacher calls", third, err, f.fake.Calls()-calls)
	}
}

func TestAnotherRunsFolderIsNeverResumed(t *testing.T) {
	f := newFixture(t, 10, 1, nil)
	ws := t.TempDir()
	if _, err := f.run(t, f.jobOn(ws, "a", "uid-a")); err != nil {
		t.Fatal(err)
	}
	shard := filepath.Join(ws, contract.JobDir("a", "uid-a"), "annotations", contract.ShardFileName(0, 1))
	before, _ := os.ReadFile(shard)
	opts := f.jobOn(ws, "a", "uid-a")
	opts.Config.JobUID = "uid-a2" // a new job of the same name pointed at the old folder
	calls := f.fake.Calls()
	_, err := f.run(t, opts)
	var fail *Failure
	var conflict *contract.WorkspaceConflictError
	if !errors.As(err, &fail) || fail.Reason != contract.ReasonInvalidInput || !errors.As(err, &conflict) {
		t.Fatalf("err = %v, want an InvalidInput failure wrapping a WorkspaceConflictError", err)
	}
	after, _ := os.ReadFile(shard)
	if string(after) != string(before) || f.fake.Calls() != calls {
		t.Errorf("the refused run touched the old shard file or the teacher (%d calls)", f.fake.Calls()-calls)
	}
}
