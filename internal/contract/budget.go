package contract

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The teacher budget (docs/workloads.md, "The teacher budget"). The shards of a job share one ledger: the
// operator writes the caps, each shard claims slices of what is left and records what it spent. In a
// cluster the ledger is ConfigMap <job>-budget (key BudgetCapsKey, and one key per shard); outside one
// it is a file in the job folder.

// BudgetCaps are the budget's limits and prices. A zero cap is no cap. Cost is
// promptTokens*PromptPricePerMillion/1e6 + completionTokens*CompletionPricePerMillion/1e6, in the prices'
// currency.
type BudgetCaps struct {
	MaxTokens                 int64   `json:"maxTokens,omitempty"`
	MaxRequests               int64   `json:"maxRequests,omitempty"`
	MaxCost                   float64 `json:"maxCost,omitempty"`
	PromptPricePerMillion     float64 `json:"promptPricePerMillion,omitempty"`
	CompletionPricePerMillion float64 `json:"completionPricePerMillion,omitempty"`
}

// Budget is annotate.json's "budget": the caps when the job was created, and where the shared ledger is.
type Budget struct {
	BudgetCaps
	// LedgerConfigMap names the ledger ConfigMap in the job's namespace; the caps in it (written by the
	// operator from the spec as it is now, so a raised budget reaches the shards) take precedence over
	// these. Outside a cluster the ledger is the file BudgetLedgerFileName in the job folder.
	LedgerConfigMap string `json:"ledgerConfigMap,omitempty"`
}

// Capped reports whether any cap is set.
func (c BudgetCaps) Capped() bool { return c.MaxTokens > 0 || c.MaxRequests > 0 || c.MaxCost > 0 }

// Cost is what spend costs at these prices.
func (c BudgetCaps) Cost(s Spend) float64 {
	return (float64(s.PromptTokens)*c.PromptPricePerMillion + float64(s.CompletionTokens)*c.CompletionPricePerMillion) / 1e6
}

// Spend is what the teacher was paid: its answers (a request retried until it was answered counts once;
// refused and failed requests are not billed and do not count) and their tokens.
type Spend struct {
	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"promptTokens"`
	CompletionTokens int64 `json:"completionTokens"`
}

// Tokens is prompt plus completion tokens.
func (s Spend) Tokens() int64 { return s.PromptTokens + s.CompletionTokens }

// Add returns s plus o.
func (s Spend) Add(o Spend) Spend {
	return Spend{Requests: s.Requests + o.Requests, PromptTokens: s.PromptTokens + o.PromptTokens,
		CompletionTokens: s.CompletionTokens + o.CompletionTokens}
}

// Max is the larger of s and o in every field.
func (s Spend) Max(o Spend) Spend {
	return Spend{Requests: max(s.Requests, o.Requests), PromptTokens: max(s.PromptTokens, o.PromptTokens),
		CompletionTokens: max(s.CompletionTokens, o.CompletionTokens)}
}

// BudgetAmount is an amount in the capped measures: requests, tokens and cost.
type BudgetAmount struct {
	Requests int64   `json:"requests"`
	Tokens   int64   `json:"tokens"`
	Cost     float64 `json:"cost"`
}

// BudgetShare is one shard's key in the ledger: how much of the caps it claimed and what it spent.
type BudgetShare struct {
	Granted BudgetAmount `json:"granted"`
	Used    Spend        `json:"used"`
}

// Keys and names of the ledger.
const (
	// BudgetCapsKey is the ledger ConfigMap's key holding BudgetCaps as JSON; only the operator writes it.
	BudgetCapsKey = "caps"
	// BudgetEstimateKey is the ledger ConfigMap's key holding what the estimate stage's sample spent, a
	// BudgetShare with only Used set; only the operator writes it (from the estimate's summary). The shards
	// count it as a share of its own, so the annotation gets what the sample left of the caps.
	BudgetEstimateKey = "estimate"
	// BudgetLedgerFileName is the ledger file in the job folder when no ConfigMap is used.
	BudgetLedgerFileName = "budget-ledger.json"
)

// BudgetConfigMapName is the ledger ConfigMap of a job.
func BudgetConfigMapName(job string) string { return job + "-budget" }

// BudgetShareKey is shard's key in the ledger ConfigMap ("shard-3").
func BudgetShareKey(shard int) string { return "shard-" + itoa(shard) }

// ParseBudgetCaps reads the ledger's caps key.
func ParseBudgetCaps(s string) (BudgetCaps, error) {
	var c BudgetCaps
	err := json.Unmarshal([]byte(s), &c)
	return c, err
}

// Priced reports whether the caps carry a price, so that spend has a cost.
func (c BudgetCaps) Priced() bool {
	return c.PromptPricePerMillion > 0 || c.CompletionPricePerMillion > 0
}

// DescribeSpend says what was spent of each cap ("12040 of 12000 tokens, 41 requests, cost 0.1612 of
// 0.3500"), for messages.
func DescribeSpend(caps BudgetCaps, used Spend) string {
	var parts []string
	if caps.MaxTokens > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d tokens", used.Tokens(), caps.MaxTokens))
	} else {
		parts = append(parts, fmt.Sprintf("%d tokens", used.Tokens()))
	}
	if caps.MaxRequests > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d requests", used.Requests, caps.MaxRequests))
	} else {
		parts = append(parts, fmt.Sprintf("%d requests", used.Requests))
	}
	switch {
	case caps.MaxCost > 0:
		parts = append(parts, fmt.Sprintf("cost %.4f of %.4f", caps.Cost(used), caps.MaxCost))
	case caps.Priced():
		parts = append(parts, fmt.Sprintf("cost %.4f", caps.Cost(used)))
	}
	return strings.Join(parts, ", ")
}
