// Package prompt builds the few-shot chain-of-thought prompt the annotator sends to the teacher
// (docs/workloads.md, "The teacher prompt").
package prompt

import (
	"strings"

	"github.com/distillery-dev/distillery/internal/contract"
)

// Message is one chat message of an OpenAI-compatible chat completion request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// DefaultMarker is the answer marker used when the task does not configure one.
const DefaultMarker = "So the answer is"

// Marker is the task's answer marker, or DefaultMarker.
func Marker(task contract.Task) string {
	if m := strings.TrimSpace(task.AnswerMarker); m != "" {
		return m
	}
	return DefaultMarker
}

// Build returns the system message (the instruction) and the user message (the examples, then the input).
func Build(task contract.Task, input string) []Message {
	return []Message{
		{Role: "system", Content: task.Instruction},
		{Role: "user", Content: UserMessage(task, input)},
	}
}

// UserMessage is every few-shot example as "Q: <input>\nA: <rationale> <marker> <label>." separated by
// blank lines, then "Q: <input>\nA:" for the new input.
func UserMessage(task contract.Task, input string) string {
	marker := Marker(task)
	var b strings.Builder
	for _, ex := range task.Examples {
		b.WriteString("Q: ")
		b.WriteString(ex.Input)
		b.WriteString("\nA: ")
		b.WriteString(exampleAnswer(ex, marker))
		b.WriteString("\n\n")
	}
	b.WriteString("Q: ")
	b.WriteString(input)
	b.WriteString("\nA:")
	return b.String()
}

// exampleAnswer is "<rationale> <marker> <label>." exactly as the contract writes it.
func exampleAnswer(ex contract.Example, marker string) string {
	return strings.TrimSpace(ex.Rationale) + " " + marker + " " + strings.TrimSpace(ex.Label) + "."
}
