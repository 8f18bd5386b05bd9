package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Status fields this binary does not know (spend, rate, ETA, budgets added to the API later) are shown
// as they come.
func TestStatusShowsFieldsItDoesNotKnow(t *testing.T) {
	dj := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "j", "namespace": "ns"},
		"status": map[string]any{
			"stage":      "Annotating",
			"progress":   map[string]any{"done": int64(40), "total": int64(100), "rate": "12.5/s", "eta": "5s", "stale": false},
			"annotation": map[string]any{"done": int64(40), "spend": map[string]any{"tokens": int64(4096), "cost": "0.0123"}},
			"budget":     map[string]any{"maxTokens": int64(100000)},
		},
	}}
	var out bytes.Buffer
	if err := printStatus(&out, dj, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Progress:   done=40 eta=5s rate=12.5/s stale=false total=100", "spend.cost:    0.0123",
		"spend.tokens:  4096", "Budget:", "maxTokens:  100000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output has no %q:\n%s", want, out.String())
		}
	}
}
