//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// paidRecords reads the job's shard files (eval shards included) and returns the records' paid tokens,
// how many records, and the largest one request cost.
func paidRecords(t *testing.T, job string) (tokens int64, records, largest int) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(jobFolder(t, job), "annotations", "*shard-*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shard files for %s: %v", job, err)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var r struct {
				Cached bool
				Usage  struct{ PromptTokens, CompletionTokens int }
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: bad record %q: %v", f, sc.Text(), err)
			}
			records++
			if !r.Cached {
				cost := r.Usage.PromptTokens + r.Usage.CompletionTokens
				tokens += int64(cost)
				largest = max(largest, cost)
			}
		}
		fh.Close()
	}
	return tokens, records, largest
}

// TestBudgetExceeded: a budget too small for the dataset stops the shards; the job fails with
// BudgetExceeded, the spend passes the cap by at most the request each shard had in flight, and every
// paid answer is a record. A raised budget resumes the job, which annotates the rest and succeeds.
func TestBudgetExceeded(t *testing.T) {
	t.Parallel()
	const job, inputs, shards, capTokens = "e2e-budget", 60, 2, 1500
	startJob(t, jobSpec{name: job, teacher: "teacher-slow", inputs: inputs, shards: shards, concurrency: 4,
		budget: `{maxTokens: 1500, promptPricePerMillion: "3", completionPricePerMillion: "15"}`})
	waitStage(t, job, "Failed", 10)
	_, reason, msg := conditionReason(t, job, "Failed")
	if reason != "BudgetExceeded" || !strings.Contains(msg, "of 1500 tokens") {
		t.Fatalf("Failed %s: %s; want BudgetExceeded with spend and cap", reason, msg)
	}

	spent, _ := strconv.ParseInt(jsonpath(t, "dj", job, ".status.annotation.tokens"), 10, 64)
	requests, _ := strconv.Atoi(jsonpath(t, "dj", job, ".status.annotation.requests"))
	unasked, _ := strconv.Atoi(jsonpath(t, "dj", job, ".status.annotation.unasked"))
	tokens, records, largest := paidRecords(t, job)
	if spent != tokens || requests != records {
		t.Errorf("status says %d tokens in %d requests, the records %d tokens in %d", spent, requests, tokens, records)
	}
	if spent > capTokens+int64(shards*largest) {
		t.Errorf("spent %d tokens under a cap of %d: more than the one request (at most %d) each of %d shards had in flight", spent, capTokens, largest, shards)
	}
	if unasked == 0 || records+unasked != inputs {
		t.Errorf("%d records and %d inputs unasked of %d", records, unasked, inputs)
	}
	if cost := jsonpath(t, "dj", job, ".status.annotation.cost"); cost == "" {
		t.Errorf("no cost in status although the budget has prices")
	}
	if out := mustKubectl(t, "get", "dj", job, "-o", "wide"); !strings.Contains(out, "COST") || !strings.Contains(out, "TOKENS") {
		t.Errorf("kubectl get dj -o wide has no cost or tokens column:\n%s", out)
	}

	// A larger budget resumes the job: the rest is annotated, nothing twice.
	mustKubectl(t, "patch", "dj", job, "--type", "merge", "-p", `{"spec":{"teacher":{"budget":{"maxTokens":1000000}}}}`)
	eventually(t, minutes(1), "the job to resume", func() string {
		if s := stage(t, job); s == "Failed" {
			return "stage " + s
		}
		return ""
	})
	waitStage(t, job, "Succeeded", 15)
	assertExactlyOnce(t, job, inputs)
}
