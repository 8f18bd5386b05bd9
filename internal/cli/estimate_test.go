package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/annotator/estimate"
	"github.com/distillery-dev/distillery/internal/contract"
)

func TestPricesComeFromTheFlagsElseTheBudget(t *testing.T) {
	budget := &contract.Budget{BudgetCaps: contract.BudgetCaps{MaxTokens: 1000, PromptPricePerMillion: 3, CompletionPricePerMillion: 15}}
	flags := estimate.Prices{PromptPerMillion: 0.15, CompletionPerMillion: 0.6}
	if got := pricesFor(flags, budget); got != flags {
		t.Errorf("with flags: %+v", got)
	}
	if got := pricesFor(estimate.Prices{}, budget); got != (estimate.Prices{PromptPerMillion: 3, CompletionPerMillion: 15}) {
		t.Errorf("from the budget: %+v", got)
	}
	if got := pricesFor(estimate.Prices{}, nil); got.Set() {
		t.Errorf("without either: %+v", got)
	}
}

func TestAsAKubectlPluginTheHelpSaysKubectlDistillery(t *testing.T) {
	var out bytes.Buffer
	root := NewRoot("/usr/local/bin/kubectl-distillery", IO{Out: &out, Err: &out})
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kubectl distillery [command]") {
		t.Errorf("help:\n%s", out.String())
	}
}

func TestTheEstimateIsComparedWithTheBudget(t *testing.T) {
	e := estimate.Estimate{Inputs: 1000, Projected: estimate.Projection{Requests: 1000, PromptTokens: 100000, CompletionTokens: 20000}}
	var out bytes.Buffer
	writeBudgetCheck(&out, contract.BudgetCaps{MaxTokens: 60000, MaxCost: 1, PromptPricePerMillion: 3, CompletionPricePerMillion: 15}, e, false)
	for _, want := range []string{"tokens  120000 of 60000   (200%)", "cost    0.6000 of 1.0000  (60%)", "the budget pays for about 500 of the 1000 inputs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}

func TestAJobThatRunsItsOwnEstimatePaysForItsSampleToo(t *testing.T) {
	e := estimate.Estimate{Inputs: 1000, Spend: contract.Spend{Requests: 20, PromptTokens: 2000, CompletionTokens: 400},
		Projected: estimate.Projection{Requests: 1000, PromptTokens: 100000, CompletionTokens: 20000}}
	var out bytes.Buffer
	writeBudgetCheck(&out, contract.BudgetCaps{MaxTokens: 200000, MaxRequests: 1010}, e, true)
	for _, want := range []string{"spec.annotation.estimate", "tokens    122400 of 200000  (61%)", "requests  1020 of 1010      (101%)",
		"the budget pays for about 990 of the 1000 inputs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}

func TestTheEstimateTableCountsTheEvalSplitAndTheSamplesSpend(t *testing.T) {
	e := estimate.Estimate{Sampled: 20, Answered: 20, Inputs: 1050, EvalInputs: 50,
		Spend:     contract.Spend{Requests: 20, PromptTokens: 2000, CompletionTokens: 400},
		Projected: estimate.Projection{Requests: 1050, PromptTokens: 105000, CompletionTokens: 21000, Tokens: 126000}}
	var out bytes.Buffer
	writeEstimate(&out, "j", 7, estimate.Prices{PromptPerMillion: 3, CompletionPerMillion: 15}, 2, 8, e)
	for _, want := range []string{"Projected for 1050 inputs (one request each, 50 of them the eval split's;",
		"The sample spent 2400 tokens (2000 prompt + 400 completion) in 20 requests, cost 0.0120"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}
