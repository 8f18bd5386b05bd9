package annotator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

// fixture is a synthetic dataset, a fake teacher and the config that joins them.
type fixture struct {
	dir    string
	fake   *faketeacher.Server
	cfg    contract.AnnotateConfig
	inputs map[string]string // id -> input
	gold   map[string]string // id -> gold label
}

func newFixture(t *testing.T, n, shards int, script faketeacher.Script) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), fake: &faketeacher.Server{Script: script, RecordInputs: true}, inputs: map[string]string{}, gold: map[string]string{}}
	srv := httptest.NewServer(f.fake)
	t.Cleanup(srv.Close)
	var data bytes.Buffer
	if err := faketeacher.WriteCompareDataset(&data, n, 7); err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(data.Bytes()), []byte("\n")) {
		var l faketeacher.CompareLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		f.inputs[l.ID], f.gold[l.ID] = l.Input, l.Label
	}
	datasetPath := filepath.Join(f.dir, "data.jsonl")
	if err := os.WriteFile(datasetPath, data.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f.cfg = contract.AnnotateConfig{
		Job: "demo", Shards: shards,
		Teacher: contract.Teacher{
			Endpoint: srv.URL + "/v1", Model: "fake", MaxConcurrency: 8, MaxTokens: 64, TimeoutSeconds: 5, MaxRetries: 2,
		},
		Task:    faketeacher.CompareTask(),
		Dataset: contract.DatasetRef{Path: datasetPath, IDField: "id", InputField: "input", LabelField: "label"},
		Filter:  contract.Filter{DropLabelMismatch: true},
		Output:  contract.AnnotateOut{Dir: filepath.Join(f.dir, "annotations"), CacheDir: filepath.Join(f.dir, "cache")},
	}
	return f
}

func (f *fixture) options(shard int) Options {
	return Options{
		Config: f.cfg, Shard: shard, CacheDir: f.cfg.Output.CacheDir,
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
		Progress: &capturedProgress{}, Log: logr.Discard(),
	}
}

func (f *fixture) run(t *testing.T, opts Options) (contract.AnnotateResult, error) {
	t.Helper()
	return Run(context.Background(), opts)
}

func (f *fixture) records(t *testing.T, shard int) []contract.Record {
	t.Helper()
	return readRecords(t, filepath.Join(f.cfg.Output.Dir, contract.ShardFileName(shard, f.cfg.Shards)))
}

func readRecords(t *testing.T, path string) []contract.Record {
	t.Helper()
	file, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var recs []contract.Record
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var r contract.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// countIDs returns how often each id appears.
func countIDs(recs []contract.Record) map[string]int {
	n := map[string]int{}
	for _, r := range recs {
		n[r.ID]++
	}
	return n
}

// assertUsable checks the rule that nothing unusable is ok, and that every other status says why.
func assertUsable(t *testing.T, f *fixture, recs []contract.Record) {
	t.Helper()
	for _, r := range recs {
		if r.Input != f.inputs[r.ID] || r.GoldLabel != f.gold[r.ID] {
			t.Errorf("record %s does not carry its input and gold label: %+v", r.ID, r)
		}
		if r.Status == contract.StatusOK && (r.Rationale == "" || r.TeacherLabel != r.GoldLabel) {
			t.Errorf("record %s is ok but unusable: %+v", r.ID, r)
		}
		if r.Status != contract.StatusOK && r.Error == "" {
			t.Errorf("record %s is %s without an error", r.ID, r.Status)
		}
	}
}

type capturedProgress struct {
	mu      sync.Mutex
	reports []contract.AnnotateProgress
}

func (c *capturedProgress) Report(_ context.Context, p contract.AnnotateProgress) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reports = append(c.reports, p)
	return nil
}

func (c *capturedProgress) last() contract.AnnotateProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reports) == 0 {
		return contract.AnnotateProgress{}
	}
	return c.reports[len(c.reports)-1]
}
