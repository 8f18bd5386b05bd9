package estimate

import (
	"unicode/utf8"

	"github.com/distillery-dev/distillery/internal/contract"
)

// Result is the estimate as the annotator's termination summary (contract.EstimateResult): at most
// contract.MaxEstimateRejections rejections, their ids and errors cut to contract.MaxSkippedErrorBytes, so
// that it fits in 4 KiB.
func (e Estimate) Result() contract.EstimateResult {
	stats := func(s Stats) contract.EstimateStats { return contract.EstimateStats{Mean: s.Mean, P95: s.P95} }
	r := contract.EstimateResult{
		Stage: contract.StageEstimate, Sampled: e.Sampled, Answered: e.Answered, Inputs: e.Inputs,
		PromptTokens: stats(e.PromptTokens), CompletionTokens: stats(e.CompletionTokens), Tokens: stats(e.Tokens),
		LatencySeconds: stats(e.LatencySeconds), Statuses: e.Statuses, ParseRate: e.ParseRate, RejectRate: e.RejectRate,
		Projected: contract.EstimateProjection{
			PromptTokens: e.Projected.PromptTokens, CompletionTokens: e.Projected.CompletionTokens,
			Tokens: e.Projected.Tokens, Requests: e.Projected.Requests, Cost: e.Projected.Cost,
			RequestsPerSecond: e.Projected.RequestsPerSecond, Seconds: e.Projected.Seconds, LimitedBy: e.Projected.LimitedBy,
		},
	}
	for _, rej := range e.Rejected[:min(len(e.Rejected), contract.MaxEstimateRejections)] {
		r.Rejected = append(r.Rejected, contract.EstimateRejection{
			ID: cut(rej.ID, 128), Status: rej.Status, Error: cut(rej.Error, contract.MaxSkippedErrorBytes),
		})
	}
	return r
}

// cut keeps at most n bytes of s, at a character boundary, and marks the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("...")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
