package parse

import (
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
)

var nli = contract.Task{
	Type: contract.TaskClassification, Labels: []string{"entailment", "neutral", "contradiction"},
	AnswerMarker: "So the answer is",
}

func TestParse(t *testing.T) {
	generation := contract.Task{Type: contract.TaskGeneration, AnswerMarker: "The answer is"}
	otherMarker := nli
	otherMarker.AnswerMarker = "Therefore:"
	cases := []struct {
		name          string
		task          contract.Task
		text          string
		wantRationale string
		wantLabel     string
		wantErr       string
	}{
		{"plain", nli, " Reading a book is reading. So the answer is entailment.",
			"Reading a book is reading.", "entailment", ""},
		{"marker in lower case, label capitalised", nli, "Kids cannot play while asleep. so the answer is Contradiction.",
			"Kids cannot play while asleep.", "contradiction", ""},
		{"fallback marker The answer is", nli, "A cook need not be a chef. The answer is neutral.",
			"A cook need not be a chef.", "neutral", ""},
		{"fallback marker Answer:", nli, "Cats resting are animals resting.\nAnswer: entailment",
			"Cats resting are animals resting.", "entailment", ""},
		{"configured marker", otherMarker, "Rain is not sun. Therefore: contradiction",
			"Rain is not sun.", "contradiction", ""},
		{"quotes and bold around the label", nli, `Talking people are people talking. So the answer is **"entailment"**.`,
			"Talking people are people talking.", "entailment", ""},
		{"colon after the marker", nli, "Nothing says so. So the answer is: neutral.",
			"Nothing says so.", "neutral", ""},
		{"invented next question", nli,
			"Sleeping is resting. So the answer is entailment.\n\nQ: Premise: A bird sings.\nHypothesis: A bird is silent.\nA: Singing is not silence. So the answer is contradiction.",
			"Sleeping is resting.", "entailment", ""},
		{"invented question on the same line", nli, "Sleeping is resting. So the answer is entailment Q: Premise: x",
			"Sleeping is resting.", "entailment", ""},
		{"leading A:", nli, "A: Two is more than one. So the answer is entailment.",
			"Two is more than one.", "entailment", ""},
		{"label then more sentences", nli, "It says so. So the answer is neutral. I am fairly confident.",
			"It says so.", "neutral", ""},
		{"generation keeps the text, decimals survive", generation, "Half of 7 is 3.5. The answer is 3.5.",
			"Half of 7 is 3.5.", "3.5", ""},
		{"no marker", nli, "The premise and the hypothesis agree, I think entailment.", "", "", "no answer marker"},
		{"label outside the set", nli, "It is unclear. So the answer is maybe.", "", "", "not one of"},
		{"two labels", nli, "Could be either. So the answer is entailment or neutral.", "", "", "not one of"},
		{"empty rationale", nli, "So the answer is neutral.", "", "", "empty rationale"},
		{"empty label", nli, "It follows. So the answer is.", "", "", "empty label"},
		{"empty answer", nli, "", "", "", "no answer marker"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.task, tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q (got %+v)", tc.text, err, tc.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.text, err)
			}
			if got.Rationale != tc.wantRationale || got.Label != tc.wantLabel {
				t.Errorf("Parse(%q) = %+v, want rationale %q label %q", tc.text, got, tc.wantRationale, tc.wantLabel)
			}
		})
	}
}

func TestMatchLabelReturnsTheTaskSpelling(t *testing.T) {
	got, ok := MatchLabel([]string{"Entailment", "Not Entailment"}, " 'not   entailment'. ")
	if !ok || got != "Not Entailment" {
		t.Errorf("MatchLabel = %q, %v; want the task's spelling", got, ok)
	}
}
