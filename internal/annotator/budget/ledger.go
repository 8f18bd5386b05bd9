// Package budget enforces the teacher budget across a job's annotation shards (docs/workloads.md, "The
// teacher budget"). The shards share a ledger (a ConfigMap in a cluster, a file outside one) that holds the
// caps and one share per shard: what the shard claimed and what it spent. A shard asks the teacher only
// within its claim, and claims a slice of what is left, under optimistic concurrency, when its claim is
// used up; no slice is left once the claims of all shards reach the caps. A request in flight holds an
// estimate of its cost (its prompt's bytes at the largest tokens per byte answered so far, one token per
// byte before the first answer, plus the completion limit), and a shard starts a request only while its
// claim has room beyond its spend and the estimates in flight. The estimates are upper bounds, so what a
// shard spends passes its claim by at most the cost of the one request that started last, and the job
// passes its caps by at most one request per shard.
package budget

import (
	"context"
	"fmt"

	"github.com/distillery-dev/distillery/internal/contract"
)

// State is the ledger as an update sees it: the caps and every shard's share.
type State struct {
	Caps contract.BudgetCaps
	// Shares are the shards' shares by index, and at EstimateShare what the estimate's sample spent.
	Shares map[int]contract.BudgetShare
}

// EstimateShare is the index in State.Shares of what the estimate stage's sample spent (ledger key
// contract.BudgetEstimateKey): no shard's, so every shard counts it among the others' claims.
const EstimateShare = -1

// Ledger is the shards' shared book. Update reads it, lets change compute shard's new share from it, and
// stores that share, atomically against the other shards' updates (change runs again on a conflict). It
// returns the state as stored.
type Ledger interface {
	Update(ctx context.Context, shard int, change func(State) (contract.BudgetShare, error)) (State, error)
}

// measure is spend in the capped measures.
func measure(caps contract.BudgetCaps, s contract.Spend) contract.BudgetAmount {
	return contract.BudgetAmount{Requests: s.Requests, Tokens: s.Tokens(), Cost: caps.Cost(s)}
}

func addAmount(a, b contract.BudgetAmount) contract.BudgetAmount {
	return contract.BudgetAmount{Requests: a.Requests + b.Requests, Tokens: a.Tokens + b.Tokens, Cost: a.Cost + b.Cost}
}

func subAmount(a, b contract.BudgetAmount) contract.BudgetAmount {
	return contract.BudgetAmount{Requests: a.Requests - b.Requests, Tokens: a.Tokens - b.Tokens, Cost: a.Cost - b.Cost}
}

func maxAmount(a, b contract.BudgetAmount) contract.BudgetAmount {
	return contract.BudgetAmount{Requests: max(a.Requests, b.Requests), Tokens: max(a.Tokens, b.Tokens), Cost: max(a.Cost, b.Cost)}
}

// claimOf is what a share holds of the caps: its grant, or its spend where that went beyond.
func claimOf(caps contract.BudgetCaps, s contract.BudgetShare) contract.BudgetAmount {
	return maxAmount(s.Granted, measure(caps, s.Used))
}

// capsAmount is the caps as an amount.
func capsAmount(c contract.BudgetCaps) contract.BudgetAmount {
	return contract.BudgetAmount{Requests: c.MaxRequests, Tokens: c.MaxTokens, Cost: c.MaxCost}
}

// below reports whether a is below b in every capped measure.
func below(caps contract.BudgetCaps, a, b contract.BudgetAmount) bool {
	return (caps.MaxRequests <= 0 || a.Requests < b.Requests) &&
		(caps.MaxTokens <= 0 || a.Tokens < b.Tokens) &&
		(caps.MaxCost <= 0 || a.Cost < b.Cost)
}

// left is what the caps leave beyond every other shard's claim and mine.
func left(s State, shard int, mine contract.BudgetAmount) contract.BudgetAmount {
	out := subAmount(capsAmount(s.Caps), mine)
	for i, sh := range s.Shares {
		if i != shard {
			out = subAmount(out, claimOf(s.Caps, sh))
		}
	}
	return out
}

// slice is how much of what is left one claim takes: a share of it that keeps the claims few but leaves
// room for the other shards (half of it spread over the shards), and at least one request's worth (est)
// while that much is left.
func slice(caps contract.BudgetCaps, left, est contract.BudgetAmount, shards int) contract.BudgetAmount {
	n := int64(2 * max(shards, 1))
	pick := func(l, e int64) int64 { return max(l/n, min(l, e)) }
	out := contract.BudgetAmount{}
	if caps.MaxRequests > 0 {
		out.Requests = pick(left.Requests, est.Requests)
	}
	if caps.MaxTokens > 0 {
		out.Tokens = pick(left.Tokens, est.Tokens)
	}
	if caps.MaxCost > 0 {
		out.Cost = max(left.Cost/float64(n), min(left.Cost, est.Cost))
	}
	return out
}

// totalUsed is what every shard spent, as the ledger knows it.
func totalUsed(s State) contract.Spend {
	var sum contract.Spend
	for _, sh := range s.Shares {
		sum = sum.Add(sh.Used)
	}
	return sum
}

// ExceededError says the budget has no room left for this shard.
type ExceededError struct {
	Caps contract.BudgetCaps
	// Used is what all shards had spent, as the ledger knew it.
	Used contract.Spend
}

func (e *ExceededError) Error() string {
	return "teacher budget reached: " + contract.DescribeSpend(e.Caps, e.Used)
}

// Unavailable is a ledger that cannot be reached; every update fails with Err, so no request starts.
type Unavailable struct{ Err error }

// Update implements Ledger.
func (u Unavailable) Update(context.Context, int, func(State) (contract.BudgetShare, error)) (State, error) {
	return State{}, fmt.Errorf("the budget ledger is unavailable: %w", u.Err)
}
