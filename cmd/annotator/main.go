// Command annotator runs one shard of a Distillery annotation stage: it asks the teacher LLM for a
// rationale and a label for every input of the shard and writes the annotations file, the progress and
// the termination summary described in docs/workloads.md. Every path is a flag, so it runs on a laptop.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/distillery-dev/distillery/internal/annotator"
	"github.com/distillery-dev/distillery/internal/annotator/budget"
	"github.com/distillery-dev/distillery/internal/annotator/estimate"
	"github.com/distillery-dev/distillery/internal/annotator/progress"
	"github.com/distillery-dev/distillery/internal/contract"
)

type flags struct {
	config, dataset, outputDir, cacheDir, terminationLog, serviceAccountDir string
	shard, unreachableAfter                                                 int
	strict, noCache, estimate                                               bool
	estimateSample                                                          int
	progressInterval, retryBaseDelay, retryMaxDelay                         time.Duration
}

func parseFlags(args []string) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("annotator", flag.ContinueOnError)
	fs.StringVar(&f.config, "config", "/etc/distillery/annotate.json", "annotate.json rendered by the operator")
	fs.IntVar(&f.shard, "shard", -1, "shard index (default: $JOB_COMPLETION_INDEX)")
	fs.StringVar(&f.dataset, "dataset", "", "dataset JSONL (default: the config's dataset.path)")
	fs.StringVar(&f.outputDir, "output-dir", "", "annotations folder (default: the config's output.dir)")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "answer cache folder (default: the config's output.cacheDir)")
	fs.BoolVar(&f.noCache, "no-cache", false, "do not read or write the answer cache")
	fs.StringVar(&f.terminationLog, "termination-log", "/dev/termination-log", "where the one-line JSON summary goes (empty: nowhere)")
	fs.BoolVar(&f.strict, "strict", false, "fail the shard on a bad dataset line instead of counting and skipping it")
	fs.DurationVar(&f.progressInterval, "progress-interval", progress.DefaultInterval, "how often progress is reported")
	fs.DurationVar(&f.retryBaseDelay, "retry-base-delay", time.Second, "first retry backoff window (doubles per attempt, with jitter)")
	fs.DurationVar(&f.retryMaxDelay, "retry-max-delay", time.Minute, "largest retry backoff window")
	fs.IntVar(&f.unreachableAfter, "unreachable-after", 8, "connection failures before any answer (or inputs failing every retry in a row) that fail the shard")
	fs.BoolVar(&f.estimate, "estimate", false, "estimate instead of annotating: ask the teacher about a seeded sample and write the projection (contract.EstimateResult) as the termination summary")
	fs.IntVar(&f.estimateSample, "estimate-sample", estimate.DefaultSample, "how many inputs --estimate asks about")
	fs.StringVar(&f.serviceAccountDir, "service-account-dir", progress.ServiceAccountDir, "the pod's mounted service account, for progress reports")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.shard < 0 && !f.estimate { // an estimate reads the whole dataset, not a shard
		idx, err := strconv.Atoi(os.Getenv("JOB_COMPLETION_INDEX"))
		if err != nil {
			return f, fmt.Errorf("no --shard and no valid JOB_COMPLETION_INDEX: %w", err)
		}
		f.shard = idx
	}
	return f, nil
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	f, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg, cfgErr := annotator.LoadConfig(f.config)
	apiKey := apiKey(cfg)
	redact := annotator.Redactor(apiKey, cfg.Teacher.Endpoint)
	log := annotator.NewLogger(os.Stderr, redact)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if f.estimate {
		return runEstimate(ctx, f, cfg, cfgErr, apiKey, redact, log)
	}
	res := contract.AnnotateResult{Stage: contract.StageAnnotate, Shard: f.shard}
	err = cfgErr
	if err == nil {
		res, err = annotator.Run(ctx, options(f, cfg, apiKey, log))
	}
	res = annotator.WithFailure(res, err)
	res.Error = redact(res.Error)
	if werr := annotator.WriteTermination(f.terminationLog, res); werr != nil {
		log.Error(werr, "writing the termination summary")
	}
	if err != nil {
		log.Error(err, "shard failed", "reason", res.Reason)
		return exitCode(res)
	}
	log.Info("shard done", "total", res.Total, "ok", res.OK, "unparseable", res.Unparseable,
		"labelMismatch", res.LabelMismatch, "teacherErrors", res.TeacherErrors, "cacheHits", res.CacheHits,
		"requests", res.Requests, "evalTotal", res.EvalTotal, "budgetExceeded", res.BudgetExceeded, "unasked", res.Unasked,
		"skippedLines", res.SkippedLines, "firstSkippedLine", res.FirstSkippedLine,
		"promptTokens", res.PromptTokens, "completionTokens", res.CompletionTokens)
	return 0
}

func options(f flags, cfg contract.AnnotateConfig, apiKey string, log logr.Logger) annotator.Options {
	cacheDir := f.cacheDir
	if cacheDir == "" {
		cacheDir = cfg.Output.CacheDir
	}
	if f.noCache {
		cacheDir = ""
	}
	return annotator.Options{
		Config: cfg, Shard: f.shard, DatasetPath: f.dataset, OutputDir: f.outputDir, CacheDir: cacheDir,
		Strict: f.strict, APIKey: apiKey, Progress: progressReporter(f, cfg, log), Ledger: budgetLedger(f, cfg),
		ProgressInterval: f.progressInterval, RetryBaseDelay: f.retryBaseDelay, RetryMaxDelay: f.retryMaxDelay,
		UnreachableAfter: f.unreachableAfter, Log: log,
	}
}

// progressReporter patches the job's progress ConfigMap in a pod and logs progress elsewhere.
func progressReporter(f flags, cfg contract.AnnotateConfig, log logr.Logger) progress.Reporter {
	r, ok, err := progress.InCluster(f.serviceAccountDir, contract.ProgressConfigMapName(cfg.Job), contract.AnnotateProgressKey(f.shard))
	if err != nil {
		log.Error(err, "cannot report progress to the cluster; logging it instead")
	}
	if !ok || err != nil {
		return progress.LogReporter{Log: log}
	}
	return r
}

// budgetLedger is the budget's ledger ConfigMap in a pod; outside a cluster (or without a budget) nil,
// which takes the ledger file in the job folder. A pod that cannot set up its API client asks the teacher
// nothing: a shard must never spend outside the ledger the others share.
func budgetLedger(f flags, cfg contract.AnnotateConfig) budget.Ledger {
	if cfg.Budget == nil || cfg.Budget.LedgerConfigMap == "" {
		return nil
	}
	l, ok, err := budget.InClusterLedger(f.serviceAccountDir, cfg.Budget.LedgerConfigMap)
	switch {
	case err != nil:
		return budget.Unavailable{Err: err}
	case !ok:
		return nil
	}
	return l
}

// apiKey reads the key from the variable the config names. It is passed to the teacher client only.
func apiKey(cfg contract.AnnotateConfig) string {
	if cfg.Teacher.APIKeyEnv == "" {
		return ""
	}
	return os.Getenv(cfg.Teacher.APIKeyEnv)
}

// exitCode tells the annotation Job whether a retry can help: a bad config or dataset, or a teacher that
// never answered at all, fail the Job at once (contract.ExitCodePermanent); an outage in the middle of a
// shard is retried by a new pod, which resumes where this one stopped.
func exitCode(res contract.AnnotateResult) int {
	answered := res.OK + res.Unparseable + res.LabelMismatch + res.TeacherErrors
	switch {
	case res.Reason == contract.ReasonInvalidInput:
		return contract.ExitCodePermanent
	case res.Reason == contract.ReasonTeacherUnreachable && answered == 0:
		return contract.ExitCodePermanent
	}
	return 1
}
