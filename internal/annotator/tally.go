package annotator

import (
	"sync"
	"time"

	"github.com/distillery-dev/distillery/internal/contract"
)

// tally counts what the shard file holds and what this run did; it becomes the termination summary and
// the progress reports.
type tally struct {
	mu     sync.Mutex
	result contract.AnnotateResult
	// lines is the number of shard lines dealt with (records, bad lines, inputs already done).
	lines      int
	totalLines int
}

// addRecord counts a record of the shard file. paid is false for answers taken from the cache, whose
// tokens were paid by an earlier request.
func (t *tally) addRecord(r contract.Record, paid bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.result.Total++
	switch r.Status {
	case contract.StatusOK:
		t.result.OK++
	case contract.StatusUnparseable:
		t.result.Unparseable++
	case contract.StatusLabelMismatch:
		t.result.LabelMismatch++
	case contract.StatusTeacherError:
		t.result.TeacherErrors++
	}
	if paid {
		t.result.PromptTokens += int64(r.Usage.PromptTokens)
		t.result.CompletionTokens += int64(r.Usage.CompletionTokens)
	} else {
		t.result.CacheHits++
	}
}

func (t *tally) addLines(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines += n
}

// addSkipped counts a skipped dataset line and keeps the first one's number and error for the summary.
func (t *tally) addSkipped(line int, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines++
	t.result.SkippedLines++
	if t.result.FirstSkippedLine == 0 || line < t.result.FirstSkippedLine {
		t.result.FirstSkippedLine = line
		if len(why) > contract.MaxSkippedErrorBytes {
			why = shorten(why, contract.MaxSkippedErrorBytes-len("..."))
		}
		t.result.FirstSkippedError = why
	}
}

func (t *tally) setTotalLines(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.totalLines = n
}

func (t *tally) snapshot() contract.AnnotateResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.result
}

func (t *tally) progress() contract.AnnotateProgress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return contract.AnnotateProgress{
		Done: t.lines, Total: max(t.totalLines, t.lines), UpdatedAt: time.Now().UTC().Format(time.RFC3339),
	}
}
