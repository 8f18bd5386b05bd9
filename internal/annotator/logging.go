package annotator

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/distillery-dev/distillery/internal/secreturl"
)

// Redactor removes the API key and the endpoint's userinfo and query (and every other URL's) from text
// that leaves the process. The teacher client already keeps them out of its errors; this is the second
// lock on the door.
func Redactor(key, endpoint string) func(string) string {
	return func(s string) string {
		if key != "" {
			s = strings.ReplaceAll(s, key, "[redacted]")
		}
		return secreturl.Scrub(s, endpoint)
	}
}

// NewLogger logs JSON lines to w, every line passed through redact.
func NewLogger(w io.Writer, redact func(string) string) logr.Logger {
	return funcr.NewJSON(func(obj string) { fmt.Fprintln(w, redact(obj)) }, funcr.Options{
		LogTimestamp: true, TimestampFormat: time.RFC3339,
	}).WithName("annotator")
}
