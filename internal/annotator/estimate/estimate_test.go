package estimate

import (
	"bytes"
	"context"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distillery-dev/distillery/internal/annotator/dataset"
	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

// words is a text of n words (the fake teacher counts tokens as words).
func words(n int) string { return strings.TrimSpace(strings.Repeat("w ", n)) }

type fixture struct {
	cfg  contract.AnnotateConfig
	fake *faketeacher.Server
}

func newFixture(t *testing.T, n int, script faketeacher.Script) *fixture {
	t.Helper()
	dir := t.TempDir()
	var data bytes.Buffer
	if err := faketeacher.WriteCompareDataset(&data, n, 7); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "data.jsonl")
	if err := os.WriteFile(path, data.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := &faketeacher.Server{Script: script, Latency: 20 * time.Millisecond}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	f := &fixture{fake: fake, cfg: contract.AnnotateConfig{
		Job: "job1", Shards: 4,
		Teacher: contract.Teacher{Endpoint: srv.URL + "/v1", Model: "fake", MaxConcurrency: 8, MaxTokens: 64,
			TimeoutSeconds: 5, MaxRetries: 1, RequestsPerMinute: 600},
		Task: faketeacher.CompareTask(),
		// No gold labels: the scripted answers' labels are all "first".
		Dataset: contract.DatasetRef{Path: path, IDField: "id", InputField: "input"},
		Filter:  contract.Filter{DropLabelMismatch: true},
	}}
	return f
}

// promptTokens is what the fake teacher counts for an input's prompt: the words of every message.
func (f *fixture) promptTokens(input string) int {
	n := 0
	for _, m := range prompt.Build(f.cfg.Task, input) {
		n += len(strings.Fields(m.Content))
	}
	return n
}

func TestEstimateAgainstATeacherWithKnownTokenCounts(t *testing.T) {
	// 19 of 20 answers have 9 completion tokens, one has 29 (its own p95 is 9: nearest rank 19 of 20).
	// One answer has no answer marker (unparseable), one a label outside the set (unparseable too).
	answer := func(extra int) string { return words(extra) + " So the answer is first." }
	var long, noMarker, outside string
	script := func(req faketeacher.Request) faketeacher.Reply {
		switch req.Input {
		case long:
			return faketeacher.Reply{Content: answer(25)}
		case noMarker:
			return faketeacher.Reply{Content: words(9)}
		case outside:
			return faketeacher.Reply{Content: words(5) + " So the answer is both."}
		}
		return faketeacher.Reply{Content: answer(5)}
	}
	f := newFixture(t, 200, script)
	sample, usable, err := dataset.DrawSample(f.cfg.Dataset.Path, f.cfg.Dataset, DefaultSample, 3)
	if err != nil || sample.Len() != DefaultSample || usable != 200 {
		t.Fatalf("DrawSample = %d of %d, %v", sample.Len(), usable, err)
	}
	items := sampledInputs(t, f, sample)
	long, noMarker, outside = items[0], items[1], items[2]

	e, err := Run(context.Background(), Options{Config: f.cfg, Seed: 3, Prices: Prices{PromptPerMillion: 2, CompletionPerMillion: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.fake.Calls(); got != DefaultSample {
		t.Errorf("the teacher was asked %d times, want %d", got, DefaultSample)
	}
	if e.Sampled != 20 || e.Answered != 20 || e.Inputs != 200 {
		t.Errorf("sampled %d, answered %d, inputs %d; want 20, 20, 200", e.Sampled, e.Answered, e.Inputs)
	}

	var prompts []float64
	for _, in := range items {
		prompts = append(prompts, float64(f.promptTokens(in)))
	}
	wantPrompt := stats(prompts)
	// completion tokens: "w"*k + "So the answer is first." (5 words): 17 answers of 10, one of 30, one of
	// 9 (no marker), one of 10 (5 words + "So the answer is both.").
	wantCompletion := Stats{Mean: (17*10 + 30 + 9 + 10) / 20.0, P95: 10}
	if !near(e.PromptTokens, wantPrompt) || !near(e.CompletionTokens, wantCompletion) {
		t.Errorf("prompt tokens %+v (want %+v), completion tokens %+v (want %+v)", e.PromptTokens, wantPrompt, e.CompletionTokens, wantCompletion)
	}
	if e.Statuses[contract.StatusOK] != 18 || e.Statuses[contract.StatusUnparseable] != 2 {
		t.Errorf("statuses %v, want 18 ok and 2 unparseable", e.Statuses)
	}
	if e.ParseRate != 0.9 || e.RejectRate != 0.1 || len(e.Rejected) != 2 {
		t.Errorf("parse rate %v, reject rate %v, rejected %v; want 0.9, 0.1, two", e.ParseRate, e.RejectRate, e.Rejected)
	}

	p := e.Projected
	wantPromptTotal := int64(math.Round(wantPrompt.Mean * 200))
	wantCompletionTotal := int64(math.Round(wantCompletion.Mean * 200))
	if p.PromptTokens != wantPromptTotal || p.CompletionTokens != wantCompletionTotal || p.Tokens != wantPromptTotal+wantCompletionTotal || p.Requests != 200 {
		t.Errorf("projection %+v, want %d prompt and %d completion tokens over 200 requests", p, wantPromptTotal, wantCompletionTotal)
	}
	wantCost := (float64(wantPromptTotal)*2 + float64(wantCompletionTotal)*10) / 1e6
	if p.Cost == nil || math.Abs(*p.Cost-wantCost) > 1e-12 {
		t.Errorf("cost %v, want %v", p.Cost, wantCost)
	}
	// 8 in flight per shard at ~20 ms is ~400 requests/s per shard, above 600 per minute (10/s): the rate
	// limit sets the pace, 4 shards x 10/s.
	if p.LimitedBy != "requestsPerMinute" || p.RequestsPerSecond != 40 || p.Seconds != 5 {
		t.Errorf("pace %v requests/s for %v s, limited by %q; want 40, 5, requestsPerMinute", p.RequestsPerSecond, p.Seconds, p.LimitedBy)
	}
}

// sampledInputs are the inputs of the sampled positions, in file order.
func sampledInputs(t *testing.T, f *fixture, sample *dataset.Sample) []string {
	t.Helper()
	r, err := dataset.Open(f.cfg.Dataset.Path, f.cfg.Dataset, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for {
		item, err := r.Next()
		if err != nil {
			break
		}
		if sample.Has(item.Line - 1) {
			out = append(out, item.Input)
		}
	}
	return out
}

func near(a, b Stats) bool { return math.Abs(a.Mean-b.Mean) < 1e-9 && math.Abs(a.P95-b.P95) < 1e-9 }

// The annotation also asks the teacher about the eval split (spec.dataset.eval), so the projection covers
// its usable lines too; the sample is drawn from the dataset only. The sample's own spend is summed.
func TestTheProjectionCoversTheEvalSplit(t *testing.T) {
	script := func(faketeacher.Request) faketeacher.Reply {
		return faketeacher.Reply{Content: words(5) + " So the answer is first."} // 10 completion tokens
	}
	f := newFixture(t, 200, script)
	var eval bytes.Buffer
	if err := faketeacher.WriteCompareDataset(&eval, 50, 11); err != nil {
		t.Fatal(err)
	}
	eval.WriteString("not a JSON line: never asked, not counted\n")
	f.cfg.Dataset.EvalPath = filepath.Join(t.TempDir(), "eval.jsonl")
	if err := os.WriteFile(f.cfg.Dataset.EvalPath, eval.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Run(context.Background(), Options{Config: f.cfg, Seed: 3, Prices: Prices{PromptPerMillion: 2, CompletionPerMillion: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.fake.Calls(); got != DefaultSample {
		t.Errorf("the teacher was asked %d times, want the sample's %d", got, DefaultSample)
	}
	sample, _, err := dataset.DrawSample(f.cfg.Dataset.Path, f.cfg.Dataset, DefaultSample, 3)
	if err != nil {
		t.Fatal(err)
	}
	prompt := 0
	for _, in := range sampledInputs(t, f, sample) {
		prompt += f.promptTokens(in)
	}
	if e.Inputs != 250 || e.EvalInputs != 50 {
		t.Errorf("inputs %d (eval %d); want the dataset's 200 and the eval split's 50", e.Inputs, e.EvalInputs)
	}
	p := e.Projected
	wantPrompt := int64(math.Round(float64(prompt) / DefaultSample * 250))
	if p.Requests != 250 || p.PromptTokens != wantPrompt || p.CompletionTokens != 2500 || p.Tokens != wantPrompt+2500 {
		t.Errorf("projection %+v; want 250 requests, %d prompt and 2500 completion tokens", p, wantPrompt)
	}
	if wantCost := (float64(wantPrompt)*2 + 2500*10) / 1e6; p.Cost == nil || math.Abs(*p.Cost-wantCost) > 1e-12 {
		t.Errorf("cost %v, want %v", p.Cost, wantCost)
	}
	// 600 requests per minute per shard, 4 shards: 40/s, 250 inputs in 6.25 s.
	if p.RequestsPerSecond != 40 || p.Seconds != 6.25 {
		t.Errorf("pace %v requests/s for %v s; want 40 and 6.25", p.RequestsPerSecond, p.Seconds)
	}
	if want := (contract.Spend{Requests: DefaultSample, PromptTokens: int64(prompt), CompletionTokens: 10 * DefaultSample}); e.Spend != want {
		t.Errorf("the sample's spend %+v, want %+v", e.Spend, want)
	}
}

func TestMaxExamplesBoundsTheProjectionAndNoRateLimitMeansConcurrency(t *testing.T) {
	f := newFixture(t, 300, nil)
	f.cfg.Dataset.MaxExamples = 50
	f.cfg.Teacher.RequestsPerMinute = 0
	e, err := Run(context.Background(), Options{Config: f.cfg, Sample: 10})
	if err != nil {
		t.Fatal(err)
	}
	if e.Inputs != 50 || e.Projected.Requests != 50 || e.Sampled != 10 {
		t.Errorf("inputs %d, requests %d, sampled %d; want 50, 50, 10", e.Inputs, e.Projected.Requests, e.Sampled)
	}
	if e.Projected.Cost != nil {
		t.Errorf("a cost without prices: %v", *e.Projected.Cost)
	}
	want := 4 * 8 / e.LatencySeconds.Mean
	if e.Projected.LimitedBy != "concurrency" || math.Abs(e.Projected.RequestsPerSecond-want) > 1e-6 {
		t.Errorf("pace %v limited by %q; want %v (4 shards x 8 / mean latency) by concurrency", e.Projected.RequestsPerSecond, e.Projected.LimitedBy, want)
	}
	if e.LatencySeconds.Mean < 0.02 {
		t.Errorf("mean latency %v s is below the fake teacher's 20 ms", e.LatencySeconds.Mean)
	}
}

func TestARefusedInputIsATeacherErrorAndAnUnreachableTeacherEndsTheEstimate(t *testing.T) {
	f := newFixture(t, 40, faketeacher.FirstN(3, faketeacher.Reply{Fault: faketeacher.Reject, Status: 400, Message: "bad prompt"}, faketeacher.Reply{}))
	f.cfg.Teacher.MaxConcurrency = 1
	e, err := Run(context.Background(), Options{Config: f.cfg, Sample: 10})
	if err != nil {
		t.Fatal(err)
	}
	if e.Statuses[contract.StatusTeacherError] != 3 || e.Answered != 7 || e.RejectRate != 0.3 || e.ParseRate != 1 {
		t.Errorf("statuses %v, answered %d, reject rate %v, parse rate %v", e.Statuses, e.Answered, e.RejectRate, e.ParseRate)
	}
	if e.Spend.Requests != 7 {
		t.Errorf("the sample's spend counts %d requests; want the 7 answered (refusals are not billed)", e.Spend.Requests)
	}

	f.cfg.Teacher.Endpoint = "http://127.0.0.1:1/v1"
	_, err = Run(context.Background(), Options{Config: f.cfg, Sample: 5, RetryBaseDelay: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("an unreachable teacher: %v", err)
	}
}

func TestStats(t *testing.T) {
	var xs []float64
	for i := 1; i <= 100; i++ {
		xs = append(xs, float64(i))
	}
	if s := stats(xs); s.Mean != 50.5 || s.P95 != 95 {
		t.Errorf("stats(1..100) = %+v", s)
	}
	if s := stats([]float64{4}); s.Mean != 4 || s.P95 != 4 {
		t.Errorf("stats(4) = %+v", s)
	}
	if s := stats(nil); s != (Stats{}) {
		t.Errorf("stats() = %+v", s)
	}
}
