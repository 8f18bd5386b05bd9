package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

// runEstimateMode runs the annotator binary in --estimate mode and reads its termination summary. It
// reads no JOB_COMPLETION_INDEX: an estimate is not a shard.
func runEstimateMode(t *testing.T, s *setup, sample string, edit func(*contract.AnnotateConfig)) (contract.EstimateResult, int, string) {
	t.Helper()
	if edit != nil {
		var cfg contract.AnnotateConfig
		b, _ := os.ReadFile(s.config)
		json.Unmarshal(b, &cfg)
		edit(&cfg)
		b, _ = json.Marshal(cfg)
		os.WriteFile(s.config, b, 0o644)
	}
	cmd := exec.Command(os.Args[0], "--estimate", "--estimate-sample", sample, "--config", s.config,
		"--termination-log", s.termination, "--retry-base-delay", "1ms")
	cmd.Env = append(os.Environ(), "ANNOTATOR_TEST_RUN_MAIN=1", "JOB_COMPLETION_INDEX=", "KUBERNETES_SERVICE_HOST=")
	out, err := cmd.CombinedOutput()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, rerr := os.ReadFile(s.termination)
	if rerr != nil {
		t.Fatalf("no termination summary: %v\n%s", rerr, out)
	}
	if len(b) > contract.MaxTerminationMessageBytes {
		t.Errorf("termination summary is %d bytes, over 4 KiB", len(b))
	}
	var res contract.EstimateResult
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("termination summary %q: %v", b, err)
	}
	return res, code, string(out)
}

func TestEstimateModeWritesTheProjectionAsTheTerminationSummary(t *testing.T) {
	// Every answer is the same 10 words ("w" x5 + "So the answer is first."), so the completion tokens per
	// input are known exactly: 10, and 10 x 50 over the whole dataset.
	fake := &faketeacher.Server{Script: faketeacher.Always(faketeacher.Reply{Content: "w w w w w So the answer is first."})}
	s := newSetup(t, 50, fake, "")
	res, code, logs := runEstimateMode(t, s, "10", func(c *contract.AnnotateConfig) {
		c.Budget = &contract.Budget{BudgetCaps: contract.BudgetCaps{PromptPricePerMillion: 1, CompletionPricePerMillion: 1000}}
	})
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, logs)
	}
	if fake.Calls() != 10 {
		t.Errorf("the teacher was asked %d times, want the sample's 10", fake.Calls())
	}
	if res.Stage != contract.StageEstimate || res.Sampled != 10 || res.Answered != 10 || res.Inputs != 50 {
		t.Errorf("summary %+v: want stage estimate, 10 sampled and answered, 50 inputs", res)
	}
	if res.CompletionTokens != (contract.EstimateStats{Mean: 10, P95: 10}) || res.Projected.CompletionTokens != 500 {
		t.Errorf("completion tokens %+v, projected %d; want 10 per input, 500 in all", res.CompletionTokens, res.Projected.CompletionTokens)
	}
	if res.ParseRate != 1 || res.Statuses[contract.StatusOK]+res.Statuses[contract.StatusLabelMismatch] != 10 {
		t.Errorf("parse rate %v, statuses %v: every answer parses", res.ParseRate, res.Statuses)
	}
	wantCost := (float64(res.Projected.PromptTokens)*1 + 500*1000) / 1e6
	if res.Projected.Cost == nil || *res.Projected.Cost != wantCost {
		t.Errorf("cost %v, want %v at the budget's prices", res.Projected.Cost, wantCost)
	}
	if res.Projected.Seconds <= 0 || res.Projected.LimitedBy != "concurrency" {
		t.Errorf("projected time %v limited by %q", res.Projected.Seconds, res.Projected.LimitedBy)
	}
	if _, err := os.Stat(s.shardFile()); !os.IsNotExist(err) {
		t.Errorf("an estimate wrote annotations (%v): it must only estimate", err)
	}
}

func TestEstimateModeReportsAPromptThatNeverParses(t *testing.T) {
	fake := &faketeacher.Server{Script: faketeacher.Always(faketeacher.Reply{Fault: faketeacher.NoMarker})}
	res, code, logs := runEstimateMode(t, newSetup(t, 30, fake, ""), "8", nil)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, logs) // the operator judges the rates
	}
	if res.ParseRate != 0 || res.RejectRate != 1 || res.Statuses[contract.StatusUnparseable] != 8 || len(res.Rejected) != contract.MaxEstimateRejections {
		t.Errorf("summary %+v: want parse rate 0, reject rate 1, 8 unparseable, 5 rejections", res)
	}
}

func TestEstimateModeFailsPermanentlyOnAnUnreachableTeacher(t *testing.T) {
	res, code, logs := runEstimateMode(t, newSetup(t, 5, nil, "http://127.0.0.1:1/v1"), "5", nil)
	if code != contract.ExitCodePermanent {
		t.Fatalf("exit %d, want %d\n%s", code, contract.ExitCodePermanent, logs)
	}
	if res.Reason != contract.ReasonTeacherUnreachable || !strings.Contains(res.Error, "127.0.0.1:1") {
		t.Errorf("reason %q, error %q: want TeacherUnreachable naming the endpoint", res.Reason, res.Error)
	}
}

func TestEstimateSummaryFitsTheTerminationMessage(t *testing.T) {
	res := contract.EstimateResult{Stage: contract.StageEstimate, Error: strings.Repeat("é", 3000)}
	for i := 0; i < contract.MaxEstimateRejections; i++ {
		res.Rejected = append(res.Rejected, contract.EstimateRejection{
			ID: strings.Repeat("i", 128), Status: contract.StatusUnparseable, Error: strings.Repeat(`"\`, contract.MaxSkippedErrorBytes/2),
		})
	}
	b := estimateMessage(res)
	if len(b) > contract.MaxTerminationMessageBytes {
		t.Fatalf("%d bytes, over 4 KiB", len(b))
	}
	var back contract.EstimateResult
	if err := json.Unmarshal(b, &back); err != nil || len(back.Rejected) == 0 || !strings.HasSuffix(back.Error, "...") {
		t.Errorf("summary %s: %v; want valid JSON keeping some rejections and a cut error", b, err)
	}
}
