package annotator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/distillery-dev/distillery/internal/annotator/cache"
	"github.com/distillery-dev/distillery/internal/annotator/dataset"
	"github.com/distillery-dev/distillery/internal/annotator/progress"
	"github.com/distillery-dev/distillery/internal/annotator/store"
	"github.com/distillery-dev/distillery/internal/annotator/teacher"
	"github.com/distillery-dev/distillery/internal/contract"
)

// shardRun is the state of one Run.
type shardRun struct {
	opts    Options
	cfg     contract.AnnotateConfig
	teacher *teacher.Client
	cache   cache.Dir
	out     *store.Shard
	tally   tally
	guard   outageGuard
	badLogs int
	// sample is the dataset.maxExamples sample, nil when every line is annotated.
	sample *dataset.Sample
}

// Run annotates one shard and returns its summary. The summary is filled in on failure too; the error is
// a *Failure when it has a reason the operator understands.
func Run(ctx context.Context, opts Options) (contract.AnnotateResult, error) {
	opts.setDefaults()
	r := &shardRun{opts: opts, cfg: opts.Config, cache: cache.Dir{Path: opts.CacheDir}}
	r.tally.result = contract.AnnotateResult{Stage: contract.StageAnnotate, Shard: opts.Shard}
	err := r.run(ctx)
	return r.tally.snapshot(), err
}

func (r *shardRun) run(ctx context.Context) error {
	if r.opts.Shard < 0 || r.opts.Shard >= r.cfg.Shards {
		return invalidInput(fmt.Errorf("shard %d is not in 0..%d", r.opts.Shard, r.cfg.Shards-1))
	}
	if err := r.claimJobDir(); err != nil {
		return err
	}
	if err := r.drawSample(); err != nil {
		return err
	}
	total, err := dataset.CountShard(r.opts.DatasetPath, r.cfg.Dataset, r.opts.Shard, r.cfg.Shards, r.sample)
	if err != nil {
		return invalidInput(fmt.Errorf("counting the shard's lines: %w", err))
	}
	r.tally.setTotalLines(total)
	if r.tally.result.DatasetHash, err = dataset.HashFile(r.opts.DatasetPath); err != nil {
		return invalidInput(err)
	}
	if err := r.openOutput(); err != nil {
		return err
	}
	r.teacher = teacher.New(r.teacherConfig())
	err = r.annotateAll(ctx)
	if cerr := r.out.Close(); err == nil {
		err = cerr
	}
	progress.Once(context.WithoutCancel(ctx), r.opts.Progress, r.tally.progress(), r.opts.Log)
	return err
}

// claimJobDir makes sure the job folder is this job run's (contract.ClaimJobDir) before any file in it
// is resumed: another run's records (another teacher, another prompt) must never be taken as done.
func (r *shardRun) claimJobDir() error {
	if r.cfg.Output.JobDir == "" {
		return nil // run by hand with --output-dir: no job folder to claim
	}
	err := contract.ClaimJobDir(r.cfg.Output.JobDir, contract.JobStamp{Job: r.cfg.Job, UID: r.cfg.JobUID})
	var conflict *contract.WorkspaceConflictError
	if errors.As(err, &conflict) {
		return invalidInput(err)
	}
	return err
}

// drawSample draws the dataset.maxExamples sample over the whole dataset, the same on every shard.
func (r *shardRun) drawSample() error {
	n := r.cfg.Dataset.MaxExamples
	if n <= 0 {
		return nil
	}
	sample, usable, err := dataset.DrawSample(r.opts.DatasetPath, r.cfg.Dataset, n, r.cfg.Dataset.Seed)
	if err != nil {
		return invalidInput(fmt.Errorf("drawing the maxExamples sample: %w", err))
	}
	r.sample = sample
	r.opts.Log.Info("annotating a sample of the dataset", "maxExamples", n, "seed", r.cfg.Dataset.Seed,
		"sampled", sample.Len(), "usableLines", usable)
	return nil
}

// openOutput opens the shard file, counting what an earlier attempt wrote.
func (r *shardRun) openOutput() error {
	path := filepath.Join(r.opts.OutputDir, contract.ShardFileName(r.opts.Shard, r.cfg.Shards))
	out, err := store.Open(path, func(rec contract.Record) { r.tally.addRecord(rec, true) })
	if err != nil {
		return err
	}
	r.out = out
	r.tally.addLines(out.Existing.Count)
	if out.Existing.Count > 0 || out.Existing.RepairedBytes > 0 {
		r.opts.Log.Info("resuming shard", "file", path, "done", out.Existing.Count, "tornBytesCut", out.Existing.RepairedBytes)
	}
	return nil
}

func (r *shardRun) teacherConfig() teacher.Config {
	t := r.cfg.Teacher
	return teacher.Config{
		Endpoint: t.Endpoint, Model: t.Model, APIKey: r.opts.APIKey,
		Temperature: t.Temperature, MaxTokens: t.MaxTokens, MaxResponseBytes: t.MaxResponseBytes,
		Timeout:    time.Duration(t.TimeoutSeconds) * time.Second,
		MaxRetries: t.MaxRetries, RequestsPerMinute: t.RequestsPerMinute, MaxConcurrency: t.MaxConcurrency,
		RetryBaseDelay: r.opts.RetryBaseDelay, RetryMaxDelay: r.opts.RetryMaxDelay, UnreachableAfter: r.opts.UnreachableAfter,
	}
}

// annotateAll runs the pipeline: one reader, MaxConcurrency workers, one writer. The first fatal error
// stops everything; records completed before it are written.
func (r *shardRun) annotateAll(ctx context.Context) error {
	r.guard.limit = max(r.opts.UnreachableAfter, teacher.DefaultUnreachableAfter)
	items := make(chan dataset.Item, r.cfg.Teacher.MaxConcurrency)
	records := make(chan annotated, r.cfg.Teacher.MaxConcurrency)
	g, gctx := errgroup.WithContext(ctx)
	progressCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go progress.Loop(progressCtx, r.opts.ProgressInterval, r.opts.Progress, r.tally.progress, r.opts.Log)

	g.Go(func() error { defer close(items); return r.readShard(gctx, items) })
	workers, wctx := errgroup.WithContext(gctx)
	for range r.cfg.Teacher.MaxConcurrency {
		workers.Go(func() error { return r.work(wctx, items, records) })
	}
	g.Go(func() error { defer close(records); return workers.Wait() })
	// The writer does not stop on cancellation: every record a worker finished is written.
	writeErr := r.writeRecords(records)
	err := g.Wait()
	if writeErr != nil {
		return writeErr
	}
	if err == nil {
		err = r.writeAll(r.guard.remaining())
	}
	return err
}

// annotated is a record on its way to the shard file.
type annotated struct {
	rec  contract.Record
	paid bool
}

func (r *shardRun) writeRecords(records <-chan annotated) error {
	var err error
	lastSync := time.Now()
	for a := range records {
		if err != nil {
			continue // drain, so workers never block
		}
		if err = r.out.Append(a.rec); err != nil {
			continue
		}
		r.tally.addRecord(a.rec, a.paid)
		r.tally.addLines(1)
		if time.Since(lastSync) > r.opts.SyncInterval {
			err, lastSync = r.out.Sync(), time.Now()
		}
	}
	return err
}

func (r *shardRun) writeAll(recs []contract.Record) error {
	for _, rec := range recs {
		if err := r.out.Append(rec); err != nil {
			return err
		}
		r.tally.addRecord(rec, true)
		r.tally.addLines(1)
	}
	return nil
}

// readShard sends the shard's inputs (those in the sample, when there is one) that are not done yet. Bad
// lines are counted and skipped, or fail the shard with --strict.
func (r *shardRun) readShard(ctx context.Context, items chan<- dataset.Item) error {
	in, err := dataset.Open(r.opts.DatasetPath, r.cfg.Dataset, r.opts.Shard, r.cfg.Shards)
	if err != nil {
		return invalidInput(err)
	}
	defer in.Close()
	in.Sample = r.sample
	var firstBad *dataset.BadLineError
	for {
		item, err := in.Next()
		var bad *dataset.BadLineError
		switch {
		case errors.Is(err, io.EOF):
			if in.Usable() == 0 && firstBad != nil {
				return r.noUsableLine(firstBad)
			}
			return nil
		case errors.As(err, &bad):
			if err := r.badLine(bad); err != nil {
				return err
			}
			if firstBad == nil {
				firstBad = bad
			}
			continue
		case err != nil:
			return invalidInput(err)
		}
		if r.out.IsDone(item.ID) {
			continue
		}
		select {
		case items <- item:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// maxLoggedBadLines keeps a dataset full of bad lines from flooding the log; all are counted.
const maxLoggedBadLines = 20

func (r *shardRun) badLine(bad *dataset.BadLineError) error {
	if r.opts.Strict {
		return invalidInput(fmt.Errorf("%w (--strict)", bad))
	}
	r.tally.addSkipped(bad.Line, bad.Err.Error())
	if r.badLogs < maxLoggedBadLines {
		r.badLogs++
		r.opts.Log.Info("skipping bad dataset line", "line", bad.Line, "error", bad.Err.Error())
	}
	return nil
}

// noUsableLine fails a shard whose every line was skipped: the dataset does not fit the config, and
// finishing with "0 inputs" would hide that. The first bad line says how, with the fix when it is the
// input field.
func (r *shardRun) noUsableLine(first *dataset.BadLineError) error {
	why := fmt.Sprintf("dataset line %d: %v", first.Line, first.Err)
	var missing *dataset.MissingFieldError
	if errors.As(first.Err, &missing) {
		why = fmt.Sprintf("dataset line %d has no field %q (fields: %s); set spec.dataset.inputField",
			first.Line, missing.Field, strings.Join(missing.Fields, ", "))
	}
	return invalidInput(fmt.Errorf("%s: no line of shard %d of %d is usable (%d lines skipped)",
		why, r.opts.Shard, r.cfg.Shards, r.tally.snapshot().SkippedLines))
}
