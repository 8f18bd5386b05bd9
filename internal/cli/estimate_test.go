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
	writeBudgetCheck(&out, contract.BudgetCaps{MaxTokens: 60000, MaxCost: 1, PromptPricePerMillion: 3, CompletionPricePerMillion: 15}, e)
	for _, want := range []string{"tokens  120000 of 60000   (200%)", "cost    0.6000 of 1.0000  (60%)", "the budget pays for about 500 of the 1000 inputs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}
