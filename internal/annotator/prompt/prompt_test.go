package prompt

import (
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
)

func TestBuild(t *testing.T) {
	nli := contract.Task{
		Type: contract.TaskClassification, Instruction: "Decide whether the hypothesis follows from the premise.",
		Labels: []string{"entailment", "neutral"}, AnswerMarker: "So the answer is",
		Examples: []contract.Example{
			{Input: "Premise: A man plays a guitar.\nHypothesis: A man makes music.", Rationale: "Playing a guitar is making music.", Label: "entailment"},
			{Input: "Premise: A dog runs.\nHypothesis: The dog chases a ball.", Rationale: "The premise does not say why it runs.", Label: "neutral"},
		},
	}
	noMarker := nli
	noMarker.AnswerMarker = ""
	noMarker.Examples = nli.Examples[:1]
	zeroShot := nli
	zeroShot.Examples = nil
	cases := []struct {
		name string
		task contract.Task
		want string
	}{
		{"examples then the input", nli,
			"Q: Premise: A man plays a guitar.\nHypothesis: A man makes music.\nA: Playing a guitar is making music. So the answer is entailment.\n\n" +
				"Q: Premise: A dog runs.\nHypothesis: The dog chases a ball.\nA: The premise does not say why it runs. So the answer is neutral.\n\n" +
				"Q: Premise: Rain.\nHypothesis: Wet.\nA:"},
		{"default marker", noMarker,
			"Q: Premise: A man plays a guitar.\nHypothesis: A man makes music.\nA: Playing a guitar is making music. So the answer is entailment.\n\n" +
				"Q: Premise: Rain.\nHypothesis: Wet.\nA:"},
		{"zero-shot", zeroShot, "Q: Premise: Rain.\nHypothesis: Wet.\nA:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs := Build(tc.task, "Premise: Rain.\nHypothesis: Wet.")
			if len(msgs) != 2 || msgs[0].Role != "system" || msgs[1].Role != "user" {
				t.Fatalf("want a system and a user message, got %+v", msgs)
			}
			if msgs[0].Content != tc.task.Instruction {
				t.Errorf("system message = %q, want the instruction", msgs[0].Content)
			}
			if msgs[1].Content != tc.want {
				t.Errorf("user message:\n%q\nwant\n%q", msgs[1].Content, tc.want)
			}
		})
	}
}
