// Package parse splits a teacher's chain-of-thought answer into a rationale and a label, and refuses
// answers that must not become training targets (docs/workloads.md, "The teacher prompt" and "Labels").
package parse

import (
	"fmt"
	"strings"

	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/contract"
)

// fallbackMarkers are tried, in order, when the configured marker is not in the answer. "So the answer
// is" comes before "The answer is" because the second is a suffix of the first.
var fallbackMarkers = []string{"So the answer is", "The answer is", "Answer:"}

// Answer is a usable teacher answer.
type Answer struct {
	Rationale string
	// Label is the task's own spelling of the label for classification, the teacher's text otherwise.
	Label string
}

// Parse extracts the rationale and label from the teacher's text. The error says, in words, why the
// answer is unusable; such answers are recorded as unparseable.
func Parse(task contract.Task, text string) (Answer, error) {
	text = cutInventedQuestion(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text), "A:")))
	marker := prompt.Marker(task)
	before, after, ok := splitAtMarker(text, append([]string{marker}, fallbackMarkers...))
	if !ok {
		return Answer{}, fmt.Errorf("no answer marker %q in the teacher's answer", marker)
	}
	rationale := strings.TrimSpace(before)
	if rationale == "" {
		return Answer{}, fmt.Errorf("empty rationale before the answer marker")
	}
	raw := firstSentence(after)
	if contract.NormalizeLabel(raw) == "" {
		return Answer{}, fmt.Errorf("empty label after the answer marker")
	}
	if task.Type != contract.TaskClassification {
		return Answer{Rationale: rationale, Label: strings.TrimSpace(raw)}, nil
	}
	label, ok := MatchLabel(task.Labels, raw)
	if !ok {
		return Answer{}, fmt.Errorf("teacher label %q is not one of %s", truncate(raw, 80), strings.Join(task.Labels, ", "))
	}
	return Answer{Rationale: rationale, Label: label}, nil
}

// MatchLabel returns the task's label that raw normalises to.
func MatchLabel(labels []string, raw string) (string, bool) {
	want := contract.NormalizeLabel(raw)
	for _, l := range labels {
		if contract.NormalizeLabel(l) == want {
			return l, true
		}
	}
	return "", false
}

// cutInventedQuestion drops a next "Q:" block the model may have invented after its answer.
func cutInventedQuestion(text string) string {
	if i := strings.Index(text, "\nQ:"); i >= 0 {
		return text[:i]
	}
	return text
}

// splitAtMarker splits at the first occurrence (ignoring case) of the first marker found.
func splitAtMarker(text string, markers []string) (before, after string, ok bool) {
	for _, m := range markers {
		if i := indexFold(text, m); i >= 0 {
			return text[:i], text[i+len(m):], true
		}
	}
	return "", "", false
}

// indexFold is strings.Index ignoring case, returning a byte offset into s itself (lower-casing s first
// could shift offsets for some non-ASCII letters).
func indexFold(s, substr string) int {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return i
		}
	}
	return -1
}

// firstSentence is the label text: up to a line break, an invented "Q:", or a sentence end (". ", "!",
// "?", or a final "."); a dot inside a number such as 3.5 does not end it.
func firstSentence(s string) string {
	if i := strings.IndexAny(s, "\n"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "Q:"); i >= 0 {
		s = s[:i]
	}
	for i, r := range s {
		switch r {
		case '!', '?':
			return s[:i]
		case '.':
			if i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t' {
				return s[:i]
			}
		}
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
