package budget

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distillery-dev/distillery/internal/contract"
)

// Meter is one shard's side of the budget: Start before a teacher request, Settle when it ended, Close
// when the shard is done. It is safe for concurrent use by the shard's workers.
type Meter struct {
	ledger Ledger
	shard  int
	shards int
	// maxCompletion bounds one answer's completion tokens (the request's max_tokens).
	maxCompletion int
	// refreshEvery is how often a shard without caps looks at the ledger again, in case caps appeared.
	refreshEvery time.Duration
	now          func() time.Time

	mu      sync.Mutex
	changed *sync.Cond
	caps    contract.BudgetCaps
	loaded  bool
	lastAt  time.Time
	granted contract.BudgetAmount
	used    contract.Spend
	// inflight is the estimated cost of the requests in flight, inflightN their number.
	inflight  contract.BudgetAmount
	inflightN int
	// ratio is the largest prompt tokens per prompt byte answered so far (1 before the first answer).
	ratio     float64
	ratioSeen bool
	claiming  bool
	poolEmpty bool
	exceeded  *ExceededError
}

// New returns the meter of shard (of shards) on ledger. caps are the config's, used until the ledger is
// read; used is what the shard's records already spent (an earlier attempt's). maxCompletion is the
// teacher's max_tokens.
func New(ledger Ledger, shard, shards, maxCompletion int, caps contract.BudgetCaps, used contract.Spend) *Meter {
	m := &Meter{
		ledger: ledger, shard: shard, shards: shards, maxCompletion: maxCompletion, caps: caps, used: used,
		ratio: 1, refreshEvery: 30 * time.Second, now: time.Now,
	}
	m.changed = sync.NewCond(&m.mu)
	return m
}

// Reservation is one request's hold on the shard's claim, released by Settle.
type Reservation struct {
	est         contract.BudgetAmount
	promptBytes int
}

// Start waits until the shard's claim has room for one more request (claiming a slice from the ledger
// when it has none) and reserves it. It returns an *ExceededError when the budget has no room left: the
// requests still in flight have ended and no slice is left.
func (m *Meter) Start(ctx context.Context, promptBytes int) (*Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if m.exceeded != nil {
			return nil, m.exceeded
		}
		est := m.estimate(promptBytes)
		if m.loaded && m.room() {
			m.inflight = addAmount(m.inflight, est)
			m.inflightN++
			return &Reservation{est: est, promptBytes: promptBytes}, nil
		}
		if m.claiming || (m.poolEmpty && m.inflightN > 0) {
			m.changed.Wait() // a claim, or a request in flight that may leave room, ends first
			continue
		}
		m.claiming = true
		m.mu.Unlock()
		err := m.claim(ctx, est)
		m.mu.Lock()
		m.claiming = false
		m.changed.Broadcast()
		if err != nil {
			return nil, err
		}
	}
}

// Settle ends a request: usage is its answer's cost, nil when the teacher did not answer (a refusal, a
// failure: not billed).
func (m *Meter) Settle(r *Reservation, usage *contract.Usage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inflight = subAmount(m.inflight, r.est)
	m.inflightN--
	if usage != nil {
		m.used = m.used.Add(contract.Spend{Requests: 1, PromptTokens: int64(usage.PromptTokens), CompletionTokens: int64(usage.CompletionTokens)})
		if r.promptBytes > 0 {
			if rt := float64(usage.PromptTokens) / float64(r.promptBytes); !m.ratioSeen || rt > m.ratio {
				m.ratio, m.ratioSeen = rt, true
			}
		}
	}
	m.changed.Broadcast()
}

// Exceeded reports whether the budget ran out for this shard.
func (m *Meter) Exceeded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exceeded != nil
}

// Used is what the shard spent.
func (m *Meter) Used() contract.Spend {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// Close gives back what the shard claimed and did not spend, for the other shards (and a later run).
func (m *Meter) Close(ctx context.Context) error {
	m.mu.Lock()
	loaded, used := m.loaded, m.used
	m.mu.Unlock()
	if !loaded {
		return nil
	}
	_, err := m.ledger.Update(ctx, m.shard, func(s State) (contract.BudgetShare, error) {
		share := s.Shares[m.shard]
		share.Used = share.Used.Max(used)
		share.Granted = measure(s.Caps, share.Used)
		return share, nil
	})
	return err
}

// room reports whether the claim has room beyond what is spent and in flight (always, without caps,
// until it is time to look at the ledger again).
func (m *Meter) room() bool {
	if !m.caps.Capped() {
		return m.now().Sub(m.lastAt) < m.refreshEvery
	}
	return below(m.caps, addAmount(measure(m.caps, m.used), m.inflight), m.granted)
}

// estimate is what one request of promptBytes may cost: its prompt at the largest tokens per byte seen
// so far, and the completion limit.
func (m *Meter) estimate(promptBytes int) contract.BudgetAmount {
	s := contract.Spend{Requests: 1, PromptTokens: int64(float64(promptBytes)*m.ratio + 0.5), CompletionTokens: int64(m.maxCompletion)}
	return measure(m.caps, s)
}

// claim reads the ledger and claims a slice of what is left, or finds that nothing is.
func (m *Meter) claim(ctx context.Context, est contract.BudgetAmount) error {
	m.mu.Lock()
	used := m.used
	m.mu.Unlock()
	var empty bool
	var mine contract.BudgetShare
	state, err := m.ledger.Update(ctx, m.shard, func(s State) (contract.BudgetShare, error) {
		share := s.Shares[m.shard]
		share.Used = share.Used.Max(used) // the ledger may know answers a killed attempt never wrote
		// The estimates in flight never become part of the claim: a request that started within the
		// claim may pass it by its own cost, and the claims must not grow by estimates.
		base := maxAmount(share.Granted, measure(s.Caps, share.Used))
		if !s.Caps.Capped() {
			empty = false
			return share, nil
		}
		l := left(s, m.shard, base)
		empty = !below(s.Caps, contract.BudgetAmount{}, l)
		if empty {
			share.Granted = base
		} else {
			share.Granted = addAmount(base, slice(s.Caps, l, est, m.shards))
		}
		mine = share
		return share, nil
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.caps, m.loaded, m.lastAt = state.Caps, true, m.now()
	m.used = m.used.Max(state.Shares[m.shard].Used)
	if state.Caps.Capped() {
		m.granted = mine.Granted
	}
	m.poolEmpty = empty
	if empty && m.inflightN == 0 && !m.room() {
		m.exceeded = &ExceededError{Caps: state.Caps, Used: totalUsed(state)}
	}
	return nil
}

// IsExceeded reports whether err says the budget ran out.
func IsExceeded(err error) bool {
	var e *ExceededError
	return errors.As(err, &e)
}
