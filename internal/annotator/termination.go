package annotator

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"unicode/utf8"

	"github.com/distillery-dev/distillery/internal/contract"
)

// WithFailure puts a failed run's error and reason into its summary.
func WithFailure(res contract.AnnotateResult, err error) contract.AnnotateResult {
	if err == nil {
		return res
	}
	res.Error = err.Error()
	var f *Failure
	if errors.As(err, &f) {
		res.Reason = f.Reason
	}
	return res
}

// TerminationMessage is the summary as one line of JSON of at most 4 KiB; a long error is shortened.
func TerminationMessage(res contract.AnnotateResult) []byte {
	full := res.Error
	keep := len(full)
	for {
		b, _ := json.Marshal(res)
		excess := len(b) + 1 - contract.MaxTerminationMessageBytes
		if excess <= 0 || keep == 0 {
			return append(b, '\n')
		}
		// Escaping makes a byte of the error cost at least one byte of JSON, so each pass shrinks.
		keep = max(keep-excess-len("..."), 0)
		res.Error = Shorten(full, keep)
	}
}

// Shorten keeps at most n bytes of s, cut at a character boundary, and marks the cut.
func Shorten(s string, n int) string {
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// WriteTermination writes the summary where Kubernetes reads the termination message.
func WriteTermination(path string, res contract.AnnotateResult) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, TerminationMessage(res), 0o644); err != nil {
		return fmt.Errorf("writing termination message to %s: %w", path, err)
	}
	return nil
}
