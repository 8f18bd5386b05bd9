// Package estimate prices an annotation before it is paid for: it asks the teacher about a small seeded
// sample of the job's dataset with the job's real prompt and projects from the answers what annotating
// the whole dataset takes: tokens per input (mean and p95), total tokens and money, time at the
// configured concurrency and rate limit, and how many answers the annotator would reject, so that a broken
// prompt is caught for the price of the sample. It uses the annotator's own prompt, teacher client and
// judging (internal/annotator), so the sample is annotated exactly as the job would annotate it.
package estimate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/distillery-dev/distillery/internal/annotator"
	"github.com/distillery-dev/distillery/internal/annotator/dataset"
	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/annotator/teacher"
	"github.com/distillery-dev/distillery/internal/contract"
)

// DefaultSample is how many inputs an estimate asks about unless told otherwise.
const DefaultSample = 20

// Options is one estimate.
type Options struct {
	// Config is the job's annotate.json (controllers.RenderAnnotateConfig).
	Config contract.AnnotateConfig
	// DatasetPath defaults to Config.Dataset.Path.
	DatasetPath string
	// EvalPath defaults to Config.Dataset.EvalPath: the eval split, which the annotation also asks the
	// teacher about (every usable line; maxExamples does not apply), so the projection counts its inputs.
	// The sample is drawn from the dataset only.
	EvalPath string
	// Sample is how many inputs to ask about; 0 means DefaultSample.
	Sample int
	// Seed draws the sample (dataset.DrawSample); the job's own seed makes it part of what a
	// dataset.maxExamples job annotates.
	Seed int64
	// APIKey is the teacher's key.
	APIKey string
	// Prices turn tokens into money; the zero value projects no cost.
	Prices Prices
	// RetryBaseDelay bounds the teacher client's backoff; zero takes its default.
	RetryBaseDelay time.Duration
}

// Prices are what the teacher charges per million tokens.
type Prices struct {
	PromptPerMillion     float64 `json:"promptPerMillion"`
	CompletionPerMillion float64 `json:"completionPerMillion"`
}

// Set reports whether any price is given.
func (p Prices) Set() bool { return p.PromptPerMillion > 0 || p.CompletionPerMillion > 0 }

// The estimate is the contract's type (contract.EstimateResult), the same one the operator's estimate
// stage reads from the annotator's termination summary; these names keep this package's API short.
type (
	// Estimate is what the sample says about the whole annotation.
	Estimate = contract.EstimateResult
	// Stats summarise one quantity over the sample's answers.
	Stats = contract.EstimateStats
	// Rejection is one sampled input the annotator would not train on.
	Rejection = contract.EstimateRejection
	// Projection is the whole annotation, projected from the sample's means.
	Projection = contract.EstimateProjection
)

// maxRejections is how many rejected records an estimate keeps.
const maxRejections = contract.MaxEstimateRejections

// Run asks the teacher about the sample and projects the estimate. Its error is an *annotator.Failure
// with reason contract.ReasonInvalidInput (the dataset) or contract.ReasonTeacherUnreachable (a request
// that failed beyond the teacher client's retries), unless ctx ended.
func Run(ctx context.Context, o Options) (Estimate, error) {
	if o.DatasetPath == "" {
		o.DatasetPath = o.Config.Dataset.Path
	}
	if o.EvalPath == "" {
		o.EvalPath = o.Config.Dataset.EvalPath
	}
	if o.Sample <= 0 {
		o.Sample = DefaultSample
	}
	items, usable, err := drawItems(o)
	if err != nil {
		return Estimate{}, &annotator.Failure{Reason: contract.ReasonInvalidInput, Err: err}
	}
	evalInputs, err := countEval(o)
	if err != nil {
		return Estimate{}, &annotator.Failure{Reason: contract.ReasonInvalidInput, Err: err}
	}
	answers, err := ask(ctx, o, items)
	if err != nil {
		if ctx.Err() != nil {
			return Estimate{}, err
		}
		return Estimate{}, &annotator.Failure{Reason: contract.ReasonTeacherUnreachable, Err: err}
	}
	inputs := usable
	if m := o.Config.Dataset.MaxExamples; m > 0 && m < usable {
		inputs = m
	}
	return project(o.Config, o.Prices, answers, inputs, evalInputs), nil
}

// countEval counts the usable lines of the eval split, the inputs the annotation asks the teacher about
// besides the dataset's; 0 without one.
func countEval(o Options) (int, error) {
	if o.EvalPath == "" {
		return 0, nil
	}
	r, err := dataset.Open(o.EvalPath, o.Config.Dataset, 0, 1)
	if err != nil {
		return 0, fmt.Errorf("eval file: %w", err)
	}
	defer r.Close()
	for {
		_, err := r.Next()
		var bad *dataset.BadLineError
		switch {
		case errors.Is(err, io.EOF):
			return r.Usable(), nil
		case err != nil && !errors.As(err, &bad):
			return 0, fmt.Errorf("eval file: %w", err)
		}
	}
}

// drawItems reads the sample's inputs: the Sample usable lines of the whole dataset with the smallest
// dataset.SampleKey for the seed, the rule of dataset.maxExamples.
func drawItems(o Options) ([]dataset.Item, int, error) {
	fields := o.Config.Dataset
	sample, usable, err := dataset.DrawSample(o.DatasetPath, fields, o.Sample, o.Seed)
	if err != nil {
		return nil, 0, fmt.Errorf("drawing the sample: %w", err)
	}
	if usable == 0 {
		return nil, 0, fmt.Errorf("%s has no usable line (a JSON object with a %q field)", o.DatasetPath, fields.InputField)
	}
	r, err := dataset.Open(o.DatasetPath, fields, 0, 1)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	r.Sample = sample
	var items []dataset.Item
	for {
		item, err := r.Next()
		var bad *dataset.BadLineError
		switch {
		case errors.Is(err, io.EOF):
			return items, usable, nil
		case errors.As(err, &bad):
			continue
		case err != nil:
			return nil, 0, err
		}
		items = append(items, item)
	}
}

// answer is one sampled input's record and how long the teacher took.
type answer struct {
	rec     contract.Record
	latency time.Duration
}

// ask annotates the items as a shard would, at most maxConcurrency at once and at most
// requestsPerMinute. The latency is timed from when the rate limit lets a request go, so it is the
// teacher's own (retries included). An input the teacher refuses or keeps failing on is a teacher_error
// record; a teacher that cannot be reached at all ends the estimate.
func ask(ctx context.Context, o Options, items []dataset.Item) ([]answer, error) {
	cfg := o.Config
	tc := annotator.TeacherConfig(cfg.Teacher, annotator.Options{APIKey: o.APIKey, RetryBaseDelay: o.RetryBaseDelay})
	limit := rate.NewLimiter(rate.Inf, 1)
	if tc.RequestsPerMinute > 0 {
		limit = rate.NewLimiter(rate.Limit(float64(tc.RequestsPerMinute)/60), 1)
		tc.RequestsPerMinute = 0
	}
	client := teacher.New(tc)
	out := make([]answer, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, cfg.Teacher.MaxConcurrency))
	for i, item := range items {
		g.Go(func() error {
			if err := limit.Wait(gctx); err != nil {
				return err
			}
			start := time.Now()
			ans, err := client.Complete(gctx, prompt.Build(cfg.Task, item.Input))
			out[i].latency = time.Since(start)
			rec, err := record(cfg, item, ans, err)
			out[i].rec = rec
			return err
		})
	}
	return out, g.Wait()
}

// record is what the annotator would write for the teacher's answer or error; err is returned for a
// failure that ends the estimate.
func record(cfg contract.AnnotateConfig, item dataset.Item, ans teacher.Answer, err error) (contract.Record, error) {
	var rejected *teacher.RejectedError
	var exhausted *teacher.ExhaustedError
	var oversized *teacher.OversizedError
	rec := contract.Record{ID: item.ID, Input: item.Input, GoldLabel: item.Gold}
	switch {
	case err == nil:
		return annotator.Judge(cfg, item, ans.Content, ans.Usage), nil
	case errors.As(err, &oversized):
		rec.Status, rec.Error = contract.StatusUnparseable, err.Error()
	case errors.As(err, &rejected), errors.As(err, &exhausted):
		rec.Status, rec.Error = contract.StatusTeacherError, err.Error()
	default:
		return rec, fmt.Errorf("asking the teacher about input %s: %w", item.ID, err)
	}
	return rec, nil
}

// project turns the sample's answers into the estimate for the dataset's inputs and the eval split's
// evalInputs, and sums what the sample itself cost (its Spend).
func project(cfg contract.AnnotateConfig, prices Prices, answers []answer, inputs, evalInputs int) Estimate {
	e := Estimate{Stage: contract.StageEstimate, Sampled: len(answers), Inputs: inputs + evalInputs, EvalInputs: evalInputs,
		Statuses: map[string]int{}}
	var prompt, completion, total, latency []float64
	for _, a := range answers {
		e.Statuses[a.rec.Status]++
		latency = append(latency, a.latency.Seconds())
		if a.rec.Status != contract.StatusOK && len(e.Rejected) < maxRejections {
			e.Rejected = append(e.Rejected, Rejection{ID: a.rec.ID, Status: a.rec.Status, Error: a.rec.Error})
		}
		if a.rec.Status == contract.StatusTeacherError {
			continue
		}
		e.Answered++
		e.Spend = e.Spend.Add(contract.Spend{Requests: 1, PromptTokens: int64(a.rec.Usage.PromptTokens), CompletionTokens: int64(a.rec.Usage.CompletionTokens)})
		p, c := float64(a.rec.Usage.PromptTokens), float64(a.rec.Usage.CompletionTokens)
		prompt, completion, total = append(prompt, p), append(completion, c), append(total, p+c)
	}
	e.PromptTokens, e.CompletionTokens, e.Tokens = stats(prompt), stats(completion), stats(total)
	e.LatencySeconds = stats(latency)
	if e.Answered > 0 {
		e.ParseRate = float64(e.Statuses[contract.StatusOK]+e.Statuses[contract.StatusLabelMismatch]) / float64(e.Answered)
	}
	if e.Sampled > 0 {
		e.RejectRate = float64(e.Sampled-e.Statuses[contract.StatusOK]) / float64(e.Sampled)
	}
	e.Projected = projection(cfg, prices, e, e.Inputs)
	return e
}

// projection is the whole annotation at the sample's means: every input asked once (retries and cache
// hits aside), all shards at once, each at most maxConcurrency requests in flight and at most
// requestsPerMinute.
func projection(cfg contract.AnnotateConfig, prices Prices, e Estimate, inputs int) Projection {
	p := Projection{
		Requests:         inputs,
		PromptTokens:     int64(math.Round(e.PromptTokens.Mean * float64(inputs))),
		CompletionTokens: int64(math.Round(e.CompletionTokens.Mean * float64(inputs))),
	}
	p.Tokens = p.PromptTokens + p.CompletionTokens
	if prices.Set() {
		cost := (float64(p.PromptTokens)*prices.PromptPerMillion + float64(p.CompletionTokens)*prices.CompletionPerMillion) / 1e6
		p.Cost = &cost
	}
	shards := float64(max(1, cfg.Shards))
	perShard, limitedBy := math.Inf(1), ""
	if e.LatencySeconds.Mean > 0 {
		perShard, limitedBy = float64(max(1, cfg.Teacher.MaxConcurrency))/e.LatencySeconds.Mean, "concurrency"
	}
	if rpm := cfg.Teacher.RequestsPerMinute; rpm > 0 && float64(rpm)/60 < perShard {
		perShard, limitedBy = float64(rpm)/60, "requestsPerMinute"
	}
	if !math.IsInf(perShard, 1) {
		p.RequestsPerSecond = perShard * shards
		p.Seconds = float64(inputs) / p.RequestsPerSecond
		p.LimitedBy = limitedBy
	}
	return p
}

// stats are the mean and the 95th percentile (nearest rank) of xs.
func stats(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	sorted := append([]float64(nil), xs...)
	sort.Float64s(sorted)
	sum := 0.0
	for _, x := range sorted {
		sum += x
	}
	rank := int(math.Ceil(0.95*float64(len(sorted)))) - 1
	return Stats{Mean: sum / float64(len(sorted)), P95: sorted[max(0, rank)]}
}
