package annotator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/distillery-dev/distillery/internal/contract"
)

// runShardsAtOnce runs every shard of f concurrently, as the pods of an Indexed Job run, without the cache
// (every answer is paid for).
func runShardsAtOnce(t *testing.T, f *fixture) []contract.AnnotateResult {
	t.Helper()
	results := make([]contract.AnnotateResult, f.cfg.Shards)
	var g errgroup.Group
	for shard := range f.cfg.Shards {
		g.Go(func() error {
			opts := f.options(shard)
			opts.Config = f.cfg
			opts.CacheDir = ""
			res, err := Run(context.Background(), opts)
			results[shard] = res
			if err != nil {
				return fmt.Errorf("shard %d: %w", shard, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return results
}

// spendOf sums what the records of every shard file cost, and returns the largest cost of one.
func spendOf(t *testing.T, f *fixture) (s contract.Spend, largest int, recs []contract.Record) {
	t.Helper()
	for shard := range f.cfg.Shards {
		for _, r := range f.records(t, shard) {
			recs = append(recs, r)
			s = s.Add(contract.Spend{Requests: 1, PromptTokens: int64(r.Usage.PromptTokens), CompletionTokens: int64(r.Usage.CompletionTokens)})
			largest = max(largest, r.Usage.PromptTokens+r.Usage.CompletionTokens)
		}
	}
	return s, largest, recs
}

func TestABudgetStopsEveryShardWithinOneRequestPerShardAndAResumeContinues(t *testing.T) {
	const n, shards = 240, 4
	f := newFixture(t, n, shards, nil)
	f.fake.Latency = 3 * time.Millisecond // requests overlap, as they do against a real teacher
	const capTokens = 9000                // about a third of what the dataset costs
	f.cfg.Budget = &contract.Budget{BudgetCaps: contract.BudgetCaps{MaxTokens: capTokens}}

	results := runShardsAtOnce(t, f)
	spent, largest, recs := spendOf(t, f)
	var fromResults contract.Spend
	unasked := 0
	for i, r := range results {
		fromResults = fromResults.Add(r.Spend())
		unasked += r.Unasked
		if !r.BudgetExceeded || r.Unasked == 0 {
			t.Errorf("shard %d: budgetExceeded %v with %d inputs unasked; every shard should run out", i, r.BudgetExceeded, r.Unasked)
		}
		if r.Total+r.Unasked != n/shards {
			t.Errorf("shard %d: %d records and %d unasked of its %d inputs", i, r.Total, r.Unasked, n/shards)
		}
	}
	// Nothing lost: every answer the teacher gave is a record, and the summaries count what the files hold.
	if len(recs) != f.fake.Calls() || fromResults != spent {
		t.Errorf("%d records for %d teacher calls; the summaries say %+v, the records %+v", len(recs), f.fake.Calls(), fromResults, spent)
	}
	for id, c := range countIDs(recs) {
		if c != 1 {
			t.Errorf("input %s has %d records", id, c)
		}
	}
	// The one request a shard starts last may pass its claim by its own cost.
	worst := int64(shards * largest)
	if spent.Tokens() > capTokens+worst {
		t.Errorf("spent %d tokens under a cap of %d: more than one request per shard (%d) beyond it", spent.Tokens(), capTokens, worst)
	}
	if spent.Tokens() < capTokens-worst {
		t.Errorf("stopped at %d tokens of a cap of %d: budget left unused", spent.Tokens(), capTokens)
	}
	t.Logf("spent %d tokens in %d requests under a cap of %d (one request per shard at most %d); %d inputs unasked",
		spent.Tokens(), spent.Requests, capTokens, worst/shards, unasked)

	// The budget raised (locally the config is the raise): the shards resume from their files and ask only
	// what was left.
	calls := f.fake.Calls()
	f.cfg.Budget.MaxTokens = 1_000_000
	results = runShardsAtOnce(t, f)
	_, _, recs = spendOf(t, f)
	for i, r := range results {
		if r.BudgetExceeded || r.Unasked != 0 || r.Total != n/shards {
			t.Errorf("shard %d after the raise: %+v", i, r)
		}
	}
	if len(recs) != n || f.fake.Calls()-calls != unasked {
		t.Errorf("after the raise %d records of %d inputs, %d new teacher calls for the %d unasked", len(recs), n, f.fake.Calls()-calls, unasked)
	}
	for input, asked := range f.fake.Seen() {
		if asked != 1 {
			t.Errorf("input %q was asked %d times", input, asked)
		}
	}
}

func TestARequestsCapIsMetExactlyAndCacheHitsAreFree(t *testing.T) {
	f := newFixture(t, 60, 3, nil)
	f.cfg.Budget = &contract.Budget{BudgetCaps: contract.BudgetCaps{MaxRequests: 25}}
	results := runShardsAtOnce(t, f)
	var s contract.Spend
	for _, r := range results {
		s = s.Add(r.Spend())
	}
	if s.Requests != 25 || f.fake.Calls() != 25 {
		t.Errorf("%d paid requests (%d teacher calls) under a cap of 25 requests", s.Requests, f.fake.Calls())
	}

	// A second job on the same cache: the 25 cached answers cost nothing, the budget pays the rest.
	opts := f.options(0)
	opts.Config.Shards = 1
	opts.Config.Budget = &contract.Budget{BudgetCaps: contract.BudgetCaps{MaxRequests: 10}}
	opts.OutputDir = t.TempDir()
	for shard := range 3 { // fill the shared cache with the first job's answers
		o := f.options(shard)
		o.Config.Budget = &contract.Budget{BudgetCaps: contract.BudgetCaps{MaxRequests: 1000}}
		o.OutputDir = t.TempDir()
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	calls := f.fake.Calls()
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.CacheHits != 60 || res.Requests != 0 || res.BudgetExceeded || f.fake.Calls() != calls || res.CacheSavedPromptTokens == 0 {
		t.Errorf("a job answered from the cache: %+v (%d new calls)", res, f.fake.Calls()-calls)
	}
}
