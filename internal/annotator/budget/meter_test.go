package budget

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/distillery-dev/distillery/internal/contract"
)

// memoryLedger is a ledger in memory, for the meter's own tests; FileLedger and ConfigMapLedger are tested
// against a file and the API server.
type memoryLedger struct {
	mu     sync.Mutex
	caps   contract.BudgetCaps
	shares map[int]contract.BudgetShare
}

func (l *memoryLedger) Update(_ context.Context, shard int, change func(State) (contract.BudgetShare, error)) (State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := State{Caps: l.caps, Shares: map[int]contract.BudgetShare{}}
	for k, v := range l.shares {
		s.Shares[k] = v
	}
	share, err := change(s)
	if err != nil {
		return State{}, err
	}
	if l.shares == nil {
		l.shares = map[int]contract.BudgetShare{}
	}
	l.shares[shard], s.Shares[shard] = share, share
	return s, nil
}

// spendUntilExceeded runs workers on each of shards meters, each asking for requests of the usage that
// next gives until its meter says the budget is spent; it returns what each shard spent.
func spendUntilExceeded(t *testing.T, ledger Ledger, caps contract.BudgetCaps, shards, workers, maxCompletion int, next func() contract.Usage) []contract.Spend {
	t.Helper()
	meters := make([]*Meter, shards)
	var g errgroup.Group
	for i := range shards {
		meters[i] = New(ledger, i, shards, maxCompletion, caps, contract.Spend{})
		for range workers {
			g.Go(func() error {
				for {
					res, err := meters[i].Start(context.Background(), 400)
					if IsExceeded(err) {
						return nil
					}
					if err != nil {
						return err
					}
					u := next()
					meters[i].Settle(res, &u)
				}
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	out := make([]contract.Spend, shards)
	for i, m := range meters {
		if !m.Exceeded() {
			t.Errorf("shard %d stopped without its meter saying the budget is spent", i)
		}
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		out[i] = m.Used()
	}
	return out
}

func sum(s []contract.Spend) contract.Spend {
	var out contract.Spend
	for _, x := range s {
		out = out.Add(x)
	}
	return out
}

func TestARequestsCapIsNeverOvershot(t *testing.T) {
	caps := contract.BudgetCaps{MaxRequests: 500}
	used := spendUntilExceeded(t, &memoryLedger{caps: caps}, caps, 4, 8, 64,
		func() contract.Usage { return contract.Usage{PromptTokens: 80, CompletionTokens: 20} })
	// A request holds exactly one request of the claim while in flight, so the caps are met exactly.
	if got := sum(used).Requests; got != caps.MaxRequests {
		t.Errorf("the shards made %d requests under a cap of %d (per shard %v)", got, caps.MaxRequests, used)
	}
}

func TestATokenCapIsOvershotByAtMostOneRequestPerShard(t *testing.T) {
	const shards, maxCompletion = 4, 64
	caps := contract.BudgetCaps{MaxTokens: 20_000}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	largest := 0
	next := func() contract.Usage {
		mu.Lock()
		defer mu.Unlock()
		u := contract.Usage{PromptTokens: 60 + rng.IntN(40), CompletionTokens: 5 + rng.IntN(maxCompletion-5)}
		largest = max(largest, u.PromptTokens+u.CompletionTokens)
		return u
	}
	used := sum(spendUntilExceeded(t, &memoryLedger{caps: caps}, caps, shards, 8, maxCompletion, next))
	// The one request a shard starts last may pass its claim by its own cost, at most the largest.
	worst := int64(shards * largest)
	if used.Tokens() > caps.MaxTokens+worst {
		t.Errorf("the shards spent %d tokens under a cap of %d: more than one request per shard (%d) beyond it", used.Tokens(), caps.MaxTokens, worst)
	}
	if used.Tokens() < caps.MaxTokens-worst {
		t.Errorf("the shards stopped at %d tokens of %d: budget left unused", used.Tokens(), caps.MaxTokens)
	}
}

func TestACostCapCountsPromptAndCompletionAtTheirPrices(t *testing.T) {
	caps := contract.BudgetCaps{MaxCost: 1, PromptPricePerMillion: 3, CompletionPricePerMillion: 15}
	used := sum(spendUntilExceeded(t, &memoryLedger{caps: caps}, caps, 2, 4, 50,
		func() contract.Usage { return contract.Usage{PromptTokens: 1000, CompletionTokens: 50} }))
	// One request costs 0.00375; 1 buys 266 of them, the cap is passed by at most one per shard.
	if cost := caps.Cost(used); cost > caps.MaxCost+2*0.00375+1e-9 || used.Requests < 266-2 {
		t.Errorf("spent %.5f in %d requests under a cap of %.2f", cost, used.Requests, caps.MaxCost)
	}
}

func TestARaisedCapLetsTheShardsContinue(t *testing.T) {
	ledger := &memoryLedger{caps: contract.BudgetCaps{MaxRequests: 40}}
	usage := func() contract.Usage { return contract.Usage{PromptTokens: 10, CompletionTokens: 10} }
	first := sum(spendUntilExceeded(t, ledger, ledger.caps, 4, 2, 16, usage))
	ledger.caps = contract.BudgetCaps{MaxRequests: 100} // the operator writes the raised caps
	// New meters, as restarted shards: what they spent before comes from the ledger.
	second := sum(spendUntilExceeded(t, ledger, ledger.caps, 4, 2, 16, usage))
	if first.Requests != 40 || second.Requests != 100 {
		t.Errorf("spent %d requests, then %d in all after the raise; want 40, then 100", first.Requests, second.Requests)
	}
}

func TestALedgerFailureIsAnErrorNotExceeded(t *testing.T) {
	m := New(failingLedger{}, 0, 1, 16, contract.BudgetCaps{MaxTokens: 10}, contract.Spend{})
	if _, err := m.Start(context.Background(), 10); err == nil || IsExceeded(err) {
		t.Errorf("Start on a broken ledger = %v, want the ledger's error", err)
	}
}

type failingLedger struct{}

func (failingLedger) Update(context.Context, int, func(State) (contract.BudgetShare, error)) (State, error) {
	return State{}, errors.New("forbidden")
}

func TestAShardWithoutCapsNeverWaits(t *testing.T) {
	ledger := &memoryLedger{caps: contract.BudgetCaps{PromptPricePerMillion: 1}}
	m := New(ledger, 0, 1, 16, ledger.caps, contract.Spend{})
	for range 1000 {
		res, err := m.Start(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		m.Settle(res, &contract.Usage{PromptTokens: 1000, CompletionTokens: 1000})
	}
	if got := m.Used(); got.Requests != 1000 || got.Tokens() != 2_000_000 {
		t.Errorf("used %+v", got)
	}
}

func TestFileLedgerKeepsEveryUpdateOfConcurrentShards(t *testing.T) {
	path := filepath.Join(t.TempDir(), contract.BudgetLedgerFileName)
	var g errgroup.Group
	for shard := range 4 {
		for range 25 {
			g.Go(func() error {
				// Each its own ledger value, as separate processes would have.
				l := &FileLedger{Path: path}
				_, err := l.Update(context.Background(), shard, func(s State) (contract.BudgetShare, error) {
					sh := s.Shares[shard]
					sh.Used.Requests++
					return sh, nil
				})
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	s, err := (&FileLedger{Path: path}).read()
	if err != nil {
		t.Fatal(err)
	}
	for shard := range 4 {
		if got := s.Shares[shard].Used.Requests; got != 25 {
			t.Errorf("shard %d: %d updates kept of 25", shard, got)
		}
	}
}

func TestTheExceededErrorNamesSpendAndCaps(t *testing.T) {
	caps := contract.BudgetCaps{MaxTokens: 12000, MaxCost: 0.35, PromptPricePerMillion: 10, CompletionPricePerMillion: 30}
	got := contract.DescribeSpend(caps, contract.Spend{Requests: 41, PromptTokens: 10000, CompletionTokens: 2040})
	want := "12040 of 12000 tokens, 41 requests, cost 0.1612 of 0.3500"
	if got != want {
		t.Errorf("DescribeSpend = %q, want %q", got, want)
	}
	err := &ExceededError{Caps: caps, Used: contract.Spend{Requests: 41, PromptTokens: 10000, CompletionTokens: 2040}}
	if err.Error() != "teacher budget reached: "+want {
		t.Errorf("ExceededError = %q", err)
	}
}
