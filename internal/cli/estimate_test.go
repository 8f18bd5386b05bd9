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
