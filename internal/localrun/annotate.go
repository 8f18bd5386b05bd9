package localrun

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/distillery-dev/distillery/internal/annotator"
	"github.com/distillery-dev/distillery/internal/contract"
)

// annotateProgressInterval is how often each shard reports to the progress bar.
const annotateProgressInterval = 500 * time.Millisecond

// annotate runs every shard of the annotation stage in this process, all at once, as the Indexed Job's
// pods would in a cluster, with the annotator's own code (internal/annotator, as cmd/annotator). Each
// shard resumes from its shard file. It returns the shards' summaries summed.
func annotate(ctx context.Context, cfg contract.AnnotateConfig, apiKey, logFile string, bar *stageBar) (contract.AnnotateResult, error) {
	logs, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return contract.AnnotateResult{}, err
	}
	defer logs.Close()
	redact := annotator.Redactor(apiKey, cfg.Teacher.Endpoint)
	log := annotator.NewLogger(logs, redact)
	shards := newShardProgress(cfg.Shards, bar)
	results := make([]contract.AnnotateResult, cfg.Shards)
	g, gctx := errgroup.WithContext(ctx)
	for i := range cfg.Shards {
		g.Go(func() error {
			res, err := annotator.Run(gctx, annotator.Options{
				Config: cfg, Shard: i, CacheDir: cfg.Output.CacheDir, APIKey: apiKey,
				Progress: shards.reporter(i), ProgressInterval: annotateProgressInterval, Log: log.WithValues("shard", i),
			})
			results[i] = annotator.WithFailure(res, err)
			if err != nil {
				msg := results[i].Error
				if msg == "" {
					msg = err.Error()
				}
				return &shardError{shard: i, shards: cfg.Shards, reason: results[i].Reason, msg: redact(msg), err: err}
			}
			return nil
		})
	}
	err = g.Wait()
	return sumResults(results), err
}

// shardError is a failed shard, with the reason the operator would put in the Failed condition.
type shardError struct {
	shard, shards int
	reason, msg   string // msg is redacted
	err           error
}

func (e *shardError) Error() string {
	if e.reason != "" {
		return fmt.Sprintf("annotation shard %d of %d failed (%s): %s", e.shard, e.shards, e.reason, e.msg)
	}
	return fmt.Sprintf("annotation shard %d of %d failed: %s", e.shard, e.shards, e.msg)
}

func (e *shardError) Unwrap() error { return e.err }

// sumResults adds up the shards' summaries, as the operator sums them into status.annotation.
func sumResults(rs []contract.AnnotateResult) contract.AnnotateResult {
	sum := contract.AnnotateResult{Stage: contract.StageAnnotate}
	for _, r := range rs {
		sum.Add(r)
		if sum.DatasetHash == "" {
			sum.DatasetHash = r.DatasetHash
		}
	}
	return sum
}

// shardProgress sums the shards' latest reports into the stage's bar.
type shardProgress struct {
	mu     sync.Mutex
	latest []contract.AnnotateProgress
	bar    *stageBar
}

func newShardProgress(shards int, bar *stageBar) *shardProgress {
	return &shardProgress{latest: make([]contract.AnnotateProgress, shards), bar: bar}
}

func (s *shardProgress) reporter(shard int) shardReporter { return shardReporter{s, shard} }

func (s *shardProgress) report(shard int, p contract.AnnotateProgress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latest[shard] = p
	var done, total int64
	for _, l := range s.latest {
		done += int64(l.Done)
		total += int64(l.Total)
	}
	s.bar.update(done, total)
}

// shardReporter is one shard's progress.Reporter.
type shardReporter struct {
	s     *shardProgress
	shard int
}

func (r shardReporter) Report(_ context.Context, p contract.AnnotateProgress) error {
	r.s.report(r.shard, p)
	return nil
}
