package annotator

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

// writeEvalFile writes n eval lines with ids "e0".."e<n-1>" (line i at position i) and points the config
// at it.
func writeEvalFile(t *testing.T, f *fixture, n int) map[string]int {
	t.Helper()
	var data bytes.Buffer
	if err := faketeacher.WriteCompareDataset(&data, n, 11); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	pos := map[string]int{}
	for i, line := range bytes.Split(bytes.TrimSpace(data.Bytes()), []byte("\n")) {
		var l faketeacher.CompareLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		l.ID = "e" + strconv.Itoa(i)
		pos[l.ID] = i
		f.inputs[l.ID], f.gold[l.ID] = l.Input, l.Label
		b, _ := json.Marshal(l)
		out.Write(append(b, '\n'))
	}
	path := filepath.Join(f.dir, "eval.jsonl")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f.cfg.Dataset.EvalPath = path
	return pos
}

func TestTheEvalFileIsAnnotatedByPositionIntoItsOwnShardFiles(t *testing.T) {
	const n, evalN, shards = 30, 11, 3
	f := newFixture(t, n, shards, nil)
	pos := writeEvalFile(t, f, evalN)
	f.cfg.Budget = &contract.Budget{BudgetCaps: contract.BudgetCaps{MaxRequests: 1000}}
	total, evalTotal := 0, 0
	for shard := range shards {
		opts := f.options(shard)
		opts.Config = f.cfg
		res, err := Run(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		evalRecs := readRecords(t, filepath.Join(f.cfg.Output.Dir, contract.EvalShardFileName(shard, shards)))
		assertUsable(t, f, evalRecs)
		for _, r := range evalRecs {
			if p, ok := pos[r.ID]; !ok || !contract.InShard(p, shard, shards) {
				t.Errorf("eval record %s (position %d) is in shard %d's eval file", r.ID, p, shard)
			}
		}
		for _, r := range f.records(t, shard) {
			if _, isEval := pos[r.ID]; isEval {
				t.Errorf("eval input %s is in shard %d's training file", r.ID, shard)
			}
		}
		if res.EvalTotal != len(evalRecs) || res.Total != len(evalRecs)+len(f.records(t, shard)) {
			t.Errorf("shard %d: %+v for %d eval records", shard, res, len(evalRecs))
		}
		total += res.Total
		evalTotal += res.EvalTotal
	}
	// Counted in the totals and paid like the dataset's inputs: the budget saw them too.
	if total != n+evalN || evalTotal != evalN || f.fake.Calls() != n+evalN {
		t.Errorf("%d records (%d eval) for %d inputs and %d eval lines; %d teacher calls", total, evalTotal, n, evalN, f.fake.Calls())
	}
	b, err := os.ReadFile(filepath.Join(f.cfg.Output.Dir, contract.BudgetLedgerFileName))
	var ledger struct {
		Shares map[string]contract.BudgetShare
	}
	if err != nil || json.Unmarshal(b, &ledger) != nil {
		t.Fatalf("reading the budget ledger: %s (%v)", b, err)
	}
	var used contract.Spend
	for _, sh := range ledger.Shares {
		used = used.Add(sh.Used)
	}
	if used.Requests != n+evalN {
		t.Errorf("the budget ledger counts %d requests for %d inputs and %d eval lines", used.Requests, n, evalN)
	}
}

func TestAResumedShardDoesNotAskForEvalLinesAgain(t *testing.T) {
	f := newFixture(t, 10, 1, nil)
	writeEvalFile(t, f, 5)
	opts := f.options(0)
	opts.Config = f.cfg
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	calls := f.fake.Calls()
	opts.CacheDir = "" // only the eval shard file can say the eval lines are done
	res, err := Run(context.Background(), opts)
	if err != nil || f.fake.Calls() != calls || res.EvalTotal != 5 || res.Total != 15 {
		t.Errorf("rerun: %+v, %v, %d new calls", res, err, f.fake.Calls()-calls)
	}
}
