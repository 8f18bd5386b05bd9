package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
)

func itoa(i int) string { return strconv.Itoa(i) }

// PromptHash identifies the teacher prompt a model was distilled from: "sha256:" and the hex digest of
// the JSON of {instruction, answerMarker, labels, examples}. It goes into train.json and distillery.json.
func PromptHash(t Task) string {
	b, _ := json.Marshal(struct {
		Instruction  string    `json:"instruction"`
		AnswerMarker string    `json:"answerMarker"`
		Labels       []string  `json:"labels"`
		Examples     []Example `json:"examples"`
	}{t.Instruction, t.AnswerMarker, t.Labels, t.Examples})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NormalizeLabel is the label normalisation both halves share (testdata/contract/normalize.json):
// trim spaces, drop surrounding quotes, brackets and punctuation, lower-case, collapse inner whitespace.
func NormalizeLabel(s string) string {
	trim := func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsPunct(r) || strings.ContainsRune("\"'`*", r)
	}
	s = strings.TrimFunc(s, trim)
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}
