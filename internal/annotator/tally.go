package annotator

import (
	"sync"
	"time"

	"github.com/distillery-dev/distillery/internal/contract"
)

// tally counts what the shard files hold and what this run did; it becomes the termination summary and
// the progress reports.
type tally struct {
	mu     sync.Mutex
	result contract.AnnotateResult
	// lines is the number of shard lines dealt with (records, bad lines, inputs already done).
	lines      int
	totalLines int
}

// addRecord counts a record of a shard file (eval: of the eval file's). A cached answer costs nothing
// here: its tokens are what the cache saved. A teacher_error record was not billed (a refusal, or no
// answer at all); every other record not from the cache is one paid answer.
func (t *tally) addRecord(r contract.Record, eval bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.result.Total++
	if eval {
		t.result.EvalTotal++
	}
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
	if r.Cached {
		t.result.CacheHits++
		t.result.CacheSavedPromptTokens += int64(r.Usage.PromptTokens)
		t.result.CacheSavedCompletionTokens += int64(r.Usage.CompletionTokens)
		return
	}
	t.result.PromptTokens += int64(r.Usage.PromptTokens)
	t.result.CompletionTokens += int64(r.Usage.CompletionTokens)
	if r.Status != contract.StatusTeacherError {
		t.result.Requests++
	}
}

func (t *tally) addLines(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines += n
}

// addUnasked counts an input the budget left without a teacher request.
func (t *tally) addUnasked() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.result.BudgetExceeded = true
	t.result.Unasked++
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
			why = Shorten(why, contract.MaxSkippedErrorBytes-len("..."))
		}
		t.result.FirstSkippedError = why
	}
}

// addSkippedEval counts a skipped line of the eval file; the first skipped line named in the summary is
// always one of the dataset's.
func (t *tally) addSkippedEval() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines++
	t.result.SkippedLines++
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
	r := t.result
	return contract.AnnotateProgress{
		Done: t.lines, Total: max(t.totalLines, t.lines),
		Requests: r.Requests, PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, CacheHits: r.CacheHits,
		CacheSavedPromptTokens: r.CacheSavedPromptTokens, CacheSavedCompletionTokens: r.CacheSavedCompletionTokens,
		BudgetExceeded: r.BudgetExceeded,
		UpdatedAt:      time.Now().UTC().Format(time.RFC3339),
	}
}
