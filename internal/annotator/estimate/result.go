package estimate

import (
	"github.com/distillery-dev/distillery/internal/annotator"
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

// cut keeps s whole when it has at most n bytes, else cuts it to n bytes with the mark.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return annotator.Shorten(s, n-len("..."))
}
