package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"unicode/utf8"

	"github.com/go-logr/logr"

	"github.com/distillery-dev/distillery/internal/annotator"
	"github.com/distillery-dev/distillery/internal/annotator/estimate"
	"github.com/distillery-dev/distillery/internal/contract"
)

// runEstimate is --estimate: the estimate of internal/annotator/estimate for the config's job (its
// dataset, seed and budget prices), written as the termination summary (contract.EstimateResult). The
// operator's estimate stage runs it before annotation. A failure carries error and reason and exits with
// contract.ExitCodePermanent: an estimate is not retried, it tells the user what to fix.
func runEstimate(ctx context.Context, f flags, cfg contract.AnnotateConfig, cfgErr error, apiKey string,
	redact func(string) string, log logr.Logger) int {
	err := cfgErr
	var res contract.EstimateResult
	if err == nil {
		var e estimate.Estimate
		e, err = estimate.Run(ctx, estimate.Options{
			Config: cfg, DatasetPath: f.dataset, Sample: f.estimateSample, Seed: cfg.Dataset.Seed,
			APIKey: apiKey, Prices: prices(cfg.Budget), RetryBaseDelay: f.retryBaseDelay,
		})
		res = estimate.ForTermination(e)
	}
	res.Stage = contract.StageEstimate
	if err != nil {
		res.Error, res.Reason = redact(err.Error()), contract.ReasonInvalidInput
		var failure *annotator.Failure
		if errors.As(err, &failure) {
			res.Reason = failure.Reason
		}
	}
	if werr := writeEstimate(f.terminationLog, res); werr != nil {
		log.Error(werr, "writing the termination summary")
	}
	if err != nil {
		log.Error(err, "estimate failed", "reason", res.Reason)
		return contract.ExitCodePermanent
	}
	log.Info("estimate done", "sampled", res.Sampled, "answered", res.Answered, "inputs", res.Inputs,
		"tokensPerInput", res.Tokens.Mean, "projectedTokens", res.Projected.Tokens,
		"projectedSeconds", res.Projected.Seconds, "parseRate", res.ParseRate, "rejectRate", res.RejectRate)
	return 0
}

// prices are the budget's, if any.
func prices(b *contract.Budget) estimate.Prices {
	if b == nil {
		return estimate.Prices{}
	}
	return estimate.Prices{PromptPerMillion: b.PromptPricePerMillion, CompletionPerMillion: b.CompletionPricePerMillion}
}

// estimateMessage is the summary as one line of JSON within contract.MaxTerminationMessageBytes: the
// error is cut to MaxSkippedErrorBytes, and rejections are dropped from the end while it is too long.
func estimateMessage(res contract.EstimateResult) []byte {
	if n := contract.MaxSkippedErrorBytes; len(res.Error) > n {
		for n > 0 && !utf8.RuneStart(res.Error[n]) {
			n--
		}
		res.Error = res.Error[:n] + "..."
	}
	for {
		b, _ := json.Marshal(res)
		if len(b)+1 <= contract.MaxTerminationMessageBytes || len(res.Rejected) == 0 {
			return append(b, '\n')
		}
		res.Rejected = res.Rejected[:len(res.Rejected)-1]
	}
}

func writeEstimate(path string, res contract.EstimateResult) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, estimateMessage(res), 0o644); err != nil {
		return fmt.Errorf("writing termination message to %s: %w", path, err)
	}
	return nil
}
