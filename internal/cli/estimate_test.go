package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/annotator/estimate"
)

func TestPricesComeFromTheBudgetWhateverItsFieldsAreCalled(t *testing.T) {
	for name, budget := range map[string]map[string]any{
		"flat, decimal strings": {"maxTokens": int64(1000000), "promptPricePerMillion": "2.5", "completionPricePerMillion": "10"},
		"nested":                {"prices": map[string]any{"perMillionPromptTokens": 2.5, "perMillionCompletionTokens": int64(10)}},
		"input and output":      {"price": map[string]any{"inputPerMillion": "2.5", "outputPerMillion": "10"}},
	} {
		job := map[string]any{"spec": map[string]any{"teacher": map[string]any{"budget": budget}}}
		if got := budgetPrices(job); got != (estimate.Prices{PromptPerMillion: 2.5, CompletionPerMillion: 10}) {
			t.Errorf("%s: %+v", name, got)
		}
	}
	if got := budgetPrices(map[string]any{"spec": map[string]any{"teacher": map[string]any{"budget": map[string]any{"maxTokens": int64(5)}}}}); got.Set() {
		t.Errorf("a budget without prices gave %+v", got)
	}
	if got := budgetPrices(map[string]any{}); got.Set() {
		t.Errorf("no budget gave %+v", got)
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
