package annotator

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

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
	for {
		b, _ := json.Marshal(res)
		if len(b)+1 <= contract.MaxTerminationMessageBytes || res.Error == "" {
			return append(b, '\n')
		}
		cut := max(0, len(res.Error)-(len(b)+1-contract.MaxTerminationMessageBytes)-16)
		res.Error = shorten(res.Error, cut)
	}
}

func shorten(s string, n int) string {
	r := []rune(s)
	if n >= len(r) {
		n = len(r) - 1
	}
	return string(r[:max(n, 0)]) + "..."
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
