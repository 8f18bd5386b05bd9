package reportview

import (
	"bytes"
	"strings"
	"testing"
)

func TestATrainerSummaryWithoutAnEvaluationObject(t *testing.T) {
	var out bytes.Buffer
	Write(&out, map[string]any{"evalAccuracy": 0.9, "evalExamples": 101.0, "steps": 600.0})
	want := "EVALUATION        VALUE\nstudent accuracy  0.9000\neval examples     101\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestASingleRunHasNoSweepTableAndUnknownFieldsFollowTheKnownOnes(t *testing.T) {
	var out bytes.Buffer
	Write(&out, map[string]any{
		"evaluation": map[string]any{"zNew": 1.5, "metric": "agreement", "agreement": 0.75, "examples": 8.0, "exactMatch": nil},
		"points":     []any{map[string]any{"index": 0.0}},
	})
	want := "EVALUATION                 VALUE\nmetric                     agreement\neval examples              8\nstudent-teacher agreement  0.7500\nzNew                       1.5000\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if strings.Contains(out.String(), "INDEX") {
		t.Error("a single run printed a sweep table")
	}
}

func TestPerClassAsAList(t *testing.T) {
	var out bytes.Buffer
	Write(&out, map[string]any{"perClass": []any{
		map[string]any{"label": "yes", "f1": 0.5, "precision": 0.25},
		map[string]any{"label": "no", "f1": 1.0},
	}})
	want := "CLASS  PRECISION  F1\nno     -          1\nyes    0.2500     0.5000\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Errorf("got\n%s\nwant it to end with\n%s", out.String(), want)
	}
}
