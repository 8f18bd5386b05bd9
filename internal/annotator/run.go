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

	"github.com/distillery-dev/distillery/internal/annotator/budget"
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
	// evalOut is the eval file's shard, nil without dataset.evalPath.
	evalOut *store.Shard
	// meter enforces the teacher budget, nil without one.
	meter   *budget.Meter
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
	if r.opts.EvalPath != "" {
		n, err := dataset.CountShard(r.opts.EvalPath, r.cfg.Dataset, r.opts.Shard, r.cfg.Shards, nil)
		if err != nil {
			return invalidInput(fmt.Errorf("counting the shard's lines of the eval file: %w", err))
		}
		total += n
	}
	r.tally.setTotalLines(total)
	if r.tally.result.DatasetHash, err = dataset.HashFile(r.opts.DatasetPath); err != nil {
		return invalidInput(err)
	}
	if err := r.openOutput(); err != nil {
		return err
	}
	r.teacher = teacher.New(r.teacherConfig())
	r.meter = r.newMeter()
	err = r.annotateAll(ctx)
	if r.meter != nil {
		if cerr := r.meter.Close(context.WithoutCancel(ctx)); cerr != nil {
			r.opts.Log.Error(cerr, "giving back the unspent budget claim; the other shards cannot use it")
		}
	}
	for _, out := range []*store.Shard{r.out, r.evalOut} {
		if out == nil {
			continue
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if res := r.tally.snapshot(); res.BudgetExceeded {
		r.opts.Log.Info("the teacher budget ran out; inputs were left unasked", "unasked", res.Unasked,
			"requests", res.Requests, "promptTokens", res.PromptTokens, "completionTokens", res.CompletionTokens)
	}
	progress.Once(context.WithoutCancel(ctx), r.opts.Progress, r.tally.progress(), r.opts.Log)
	return err
}

// newMeter is the shard's side of the teacher budget, nil without one. It starts from what the shard's
// files already spent (an earlier attempt's paid answers).
func (r *shardRun) newMeter() *budget.Meter {
	b := r.cfg.Budget
	if b == nil {
		return nil
	}
	ledger := r.opts.Ledger
	if ledger == nil {
		dir := r.cfg.Output.JobDir
		if dir == "" {
			dir = r.opts.OutputDir
		}
		ledger = &budget.FileLedger{Path: filepath.Join(dir, contract.BudgetLedgerFileName), Caps: b.BudgetCaps}
	}
	return budget.New(ledger, r.opts.Shard, r.cfg.Shards, r.cfg.Teacher.MaxTokens, b.BudgetCaps, r.tally.snapshot().Spend())
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

// openOutput opens the shard file (and the eval file's shard), counting what an earlier attempt wrote.
func (r *shardRun) openOutput() error {
	var err error
	if r.out, err = r.openShardFile(contract.ShardFileName(r.opts.Shard, r.cfg.Shards), false); err != nil {
		return err
	}
	if r.opts.EvalPath != "" {
		if r.evalOut, err = r.openShardFile(contract.EvalShardFileName(r.opts.Shard, r.cfg.Shards), true); err != nil {
			r.out.Close()
			return err
		}
	}
	return nil
}

func (r *shardRun) openShardFile(name string, eval bool) (*store.Shard, error) {
	path := filepath.Join(r.opts.OutputDir, name)
	out, err := store.Open(path, func(rec contract.Record) { r.tally.addRecord(rec, eval) })
	if err != nil {
		return nil, err
	}
	r.tally.addLines(out.Existing.Count)
	if out.Existing.Count > 0 || out.Existing.RepairedBytes > 0 {
		r.opts.Log.Info("resuming shard", "file", path, "done", out.Existing.Count, "tornBytesCut", out.Existing.RepairedBytes)
	}
	return out, nil
}

// outFor is the file a record goes to.
func (r *shardRun) outFor(eval bool) *store.Shard {
	if eval {
		return r.evalOut
	}
	return r.out
}

func (r *shardRun) teacherConfig() teacher.Config { return TeacherConfig(r.cfg.Teacher, r.opts) }

// TeacherConfig is the teacher client's config for annotate.json's teacher and a run's options (the key,
// the retry backoff, the outage threshold).
func TeacherConfig(t contract.Teacher, opts Options) teacher.Config {
	return teacher.Config{
		Endpoint: t.Endpoint, Model: t.Model, APIKey: opts.APIKey,
		Temperature: t.Temperature, MaxTokens: t.MaxTokens, MaxResponseBytes: t.MaxResponseBytes,
		Timeout:    time.Duration(t.TimeoutSeconds) * time.Second,
		MaxRetries: t.MaxRetries, RequestsPerMinute: t.RequestsPerMinute, MaxConcurrency: t.MaxConcurrency,
		RetryBaseDelay: opts.RetryBaseDelay, RetryMaxDelay: opts.RetryMaxDelay, UnreachableAfter: opts.UnreachableAfter,
	}
}

// annotateAll runs the pipeline: one reader, MaxConcurrency workers, one writer. The first fatal error
// stops everything; records completed before it are written.
func (r *shardRun) annotateAll(ctx context.Context) error {
	r.guard.limit = max(r.opts.UnreachableAfter, teacher.DefaultUnreachableAfter)
	items := make(chan workItem, r.cfg.Teacher.MaxConcurrency)
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

// annotated is a record on its way to its shard file (eval: the eval file's).
type annotated struct {
	rec  contract.Record
	eval bool
}

func (r *shardRun) writeRecords(records <-chan annotated) error {
	var err error
	lastSync := time.Now()
	for a := range records {
		if err != nil {
			continue // drain, so workers never block
		}
		if err = r.outFor(a.eval).Append(a.rec); err != nil {
			continue
		}
		r.tally.addRecord(a.rec, a.eval)
		r.tally.addLines(1)
		if time.Since(lastSync) > r.opts.SyncInterval {
			err, lastSync = r.syncAll(), time.Now()
		}
	}
	return err
}

func (r *shardRun) syncAll() error {
	if err := r.out.Sync(); err != nil || r.evalOut == nil {
		return err
	}
	return r.evalOut.Sync()
}

func (r *shardRun) writeAll(recs []annotated) error {
	for _, a := range recs {
		if err := r.outFor(a.eval).Append(a.rec); err != nil {
			return err
		}
		r.tally.addRecord(a.rec, a.eval)
		r.tally.addLines(1)
	}
	return nil
}

// readShard sends the shard's inputs that are not done yet: the eval file's first (they are few, and the
// teacher's score on the eval split needs them), then the dataset's (those in the sample, when there is
// one).
func (r *shardRun) readShard(ctx context.Context, items chan<- workItem) error {
	if r.opts.EvalPath != "" {
		if err := r.readEval(ctx, items); err != nil {
			return err
		}
	}
	return r.readDataset(ctx, items)
}

// readEval sends the shard's eval lines. Bad lines are counted (not named: the summary names the
// dataset's first), or fail the shard with --strict.
func (r *shardRun) readEval(ctx context.Context, items chan<- workItem) error {
	in, err := dataset.Open(r.opts.EvalPath, r.cfg.Dataset, r.opts.Shard, r.cfg.Shards)
	if err != nil {
		return invalidInput(fmt.Errorf("eval file: %w", err))
	}
	defer in.Close()
	for {
		item, err := in.Next()
		var bad *dataset.BadLineError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &bad):
			if r.opts.Strict {
				return invalidInput(fmt.Errorf("eval file: %w (--strict)", bad))
			}
			r.tally.addSkippedEval()
			continue
		case err != nil:
			return invalidInput(fmt.Errorf("eval file: %w", err))
		}
		if r.evalOut.IsDone(item.ID) {
			continue
		}
		select {
		case items <- workItem{item: item, eval: true}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readDataset sends the shard's dataset inputs (those in the sample, when there is one) that are not done
// yet. Bad lines are counted and skipped, or fail the shard with --strict.
func (r *shardRun) readDataset(ctx context.Context, items chan<- workItem) error {
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
		case items <- workItem{item: item}:
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
