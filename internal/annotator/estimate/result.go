package estimate

import (
	"unicode/utf8"

	"github.com/distillery-dev/distillery/internal/contract"
)

// ForTermination is the estimate as the annotator's termination summary: its rejections' ids and errors
// cut to contract.MaxSkippedErrorBytes, so that it fits in 4 KiB.
func ForTermination(e Estimate) contract.EstimateResult {
	e.Stage = contract.StageEstimate
	e.Rejected = append([]Rejection(nil), e.Rejected[:min(len(e.Rejected), contract.MaxEstimateRejections)]...)
	for i := range e.Rejected {
		e.Rejected[i].ID = cut(e.Rejected[i].ID, 128)
		e.Rejected[i].Error = cut(e.Rejected[i].Error, contract.MaxSkippedErrorBytes)
	}
	return e
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
