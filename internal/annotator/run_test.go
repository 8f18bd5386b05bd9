package annotator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distillery-dev/distillery/internal/annotator/dataset"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

func TestEveryAnswerGetsTheRightStatus(t *testing.T) {
	replies := map[string]faketeacher.Reply{}
	f := newFixture(t, 40, 1, faketeacher.PerInput(replies))
	wrong := func(id string) string {
		if f.gold[id] == "first" {
			return "second"
		}
		return "first"
	}
	replies[f.inputs["0"]] = faketeacher.Reply{Fault: faketeacher.NoMarker}
	replies[f.inputs["1"]] = faketeacher.Reply{Fault: faketeacher.LabelOutsideSet}
	replies[f.inputs["2"]] = faketeacher.Reply{Fault: faketeacher.Reject, Status: 400, Message: "context length exceeded"}
	replies[f.inputs["3"]] = faketeacher.Reply{Content: "I compared them. So the answer is " + wrong("3") + "."}
	replies[f.inputs["4"]] = faketeacher.Reply{Content: "So the answer is " + f.gold["4"] + "."}
	replies[f.inputs["5"]] = faketeacher.Reply{Content: "Both are numbers. So the answer is \"" + strings.ToUpper(f.gold["5"]) + "\"."}

	res, err := f.run(t, f.options(0))
	if err != nil {
		t.Fatal(err)
	}
	recs := f.records(t, 0)
	assertUsable(t, f, recs)
	byID := map[string]contract.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	want := map[string]string{
		"0": contract.StatusUnparseable, "1": contract.StatusUnparseable, "2": contract.StatusTeacherError,
		"3": contract.StatusLabelMismatch, "4": contract.StatusUnparseable, "5": contract.StatusOK, "6": contract.StatusOK,
	}
	for id, status := range want {
		if byID[id].Status != status {
			t.Errorf("record %s: status %s (%s), want %s", id, byID[id].Status, byID[id].Error, status)
		}
	}
	if !strings.Contains(byID["2"].Error, "context length exceeded") {
		t.Errorf("teacher_error record should carry the server's message: %q", byID["2"].Error)
	}
	data, _ := os.ReadFile(f.cfg.Dataset.Path)
	// Every answer but the refused one (teacher_error) is a paid request.
	wantRes := contract.AnnotateResult{Stage: "annotate", Shard: 0, Total: 40, OK: 35, Unparseable: 3, LabelMismatch: 1, TeacherErrors: 1, Requests: 39,
		DatasetHash: fmt.Sprintf("sha256:%x", sha256.Sum256(data))}
	got := res
	got.PromptTokens, got.CompletionTokens = 0, 0
	if got != wantRes || res.PromptTokens == 0 || res.CompletionTokens == 0 {
		t.Errorf("result = %+v, want %+v with token counts", res, wantRes)
	}
}

func TestShardsCoverEveryInputExactlyOnce(t *testing.T) {
	f := newFixture(t, 61, 4, nil)
	all := map[string]int{}
	for shard := range 4 {
		res, err := f.run(t, f.options(shard))
		if err != nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		recs := f.records(t, shard)
		if res.Total != len(recs) {
			t.Errorf("shard %d: total %d, file has %d", shard, res.Total, len(recs))
		}
		for id, n := range countIDs(recs) {
			all[id] += n
		}
	}
	for id := range f.inputs {
		if all[id] != 1 {
			t.Errorf("input %s is annotated %d times over the shards", id, all[id])
		}
	}
	if len(all) != len(f.inputs) {
		t.Errorf("%d ids annotated, want %d", len(all), len(f.inputs))
	}
}

func TestResumeAfterCancelAnnotatesEveryInputOnce(t *testing.T) {
	const n, killAt = 200, 70
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, n, 1, func(req faketeacher.Request) faketeacher.Reply {
		if req.N == killAt {
			cancel()
		}
		return faketeacher.Reply{}
	})
	opts := f.options(0)
	if _, err := Run(ctx, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("first attempt: %v, want it cancelled", err)
	}
	first := countIDs(f.records(t, 0))
	if len(first) == 0 || len(first) >= n {
		t.Fatalf("the first attempt wrote %d records; the test needs it stopped mid-shard", len(first))
	}

	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	recs := f.records(t, 0)
	assertUsable(t, f, recs)
	for id := range f.inputs {
		if countIDs(recs)[id] != 1 {
			t.Errorf("input %s appears %d times after the resume", id, countIDs(recs)[id])
		}
	}
	askedTwice := 0
	for input, times := range f.fake.Seen() {
		if times == 1 {
			continue
		}
		askedTwice++
		for id := range first {
			if f.inputs[id] == input {
				t.Errorf("input %s was asked %d times although its record was written before the kill", id, times)
			}
		}
	}
	if askedTwice > f.cfg.Teacher.MaxConcurrency {
		t.Errorf("%d inputs asked twice; at most the %d in flight at the kill may be", askedTwice, f.cfg.Teacher.MaxConcurrency)
	}
	if res.Total != n || res.OK != n {
		t.Errorf("result after resume = %+v, want all %d ok", res, n)
	}
	t.Logf("first attempt wrote %d records; %d in-flight inputs were asked again", len(first), askedTwice)
}

func TestTheCacheAbsorbsARerun(t *testing.T) {
	f := newFixture(t, 30, 1, nil)
	if _, err := f.run(t, f.options(0)); err != nil {
		t.Fatal(err)
	}
	calls := f.fake.Calls()
	opts := f.options(0)
	opts.OutputDir = t.TempDir() // a new job, same teacher and prompt
	res, err := f.run(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	if f.fake.Calls() != calls || res.CacheHits != 30 || res.OK != 30 || res.PromptTokens != 0 {
		t.Errorf("rerun: %d new calls, result %+v; want 30 cache hits and no tokens paid", f.fake.Calls()-calls, res)
	}
}

func TestBadDatasetLines(t *testing.T) {
	f := newFixture(t, 10, 1, nil)
	data, _ := os.ReadFile(f.cfg.Dataset.Path)
	data = append(data, []byte("{\"id\":\"x\"\n{\"id\":\"y\",\"label\":\"first\"}\n")...)
	os.WriteFile(f.cfg.Dataset.Path, data, 0o644)

	res, err := f.run(t, f.options(0))
	if err != nil || res.SkippedLines != 2 || res.Total != 10 {
		t.Fatalf("default: %+v, %v; want 2 skipped lines and 10 records", res, err)
	}
	if res.FirstSkippedLine != 11 || !strings.Contains(res.FirstSkippedError, "not a JSON object") {
		t.Errorf("first skipped line = %d %q, want line 11, not a JSON object", res.FirstSkippedLine, res.FirstSkippedError)
	}
	strict := f.options(0)
	strict.Strict, strict.OutputDir = true, t.TempDir()
	_, err = f.run(t, strict)
	var fail *Failure
	if !errors.As(err, &fail) || fail.Reason != contract.ReasonInvalidInput || !strings.Contains(err.Error(), "line 11") {
		t.Errorf("strict: %v, want InvalidInput naming line 11", err)
	}
}

func TestAnUnreachableTeacherFailsTheShardFast(t *testing.T) {
	f := newFixture(t, 50, 1, nil)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	f.cfg.Teacher.Endpoint = "http://" + l.Addr().String() + "/v1"
	f.cfg.Teacher.MaxRetries = 1000 // fail-fast must not wait for these
	l.Close()
	res, err := f.run(t, f.options(0))
	var fail *Failure
	if !errors.As(err, &fail) || fail.Reason != contract.ReasonTeacherUnreachable || !strings.Contains(err.Error(), f.cfg.Teacher.Endpoint) {
		t.Fatalf("err = %v, want TeacherUnreachable naming the endpoint", err)
	}
	if res.Total != 0 || len(f.records(t, 0)) != 0 {
		t.Errorf("an unreachable teacher must not produce records: %+v", res)
	}
}

func TestATeacherOutageMidShardFailsWithoutLosingInputs(t *testing.T) {
	var down atomic.Bool
	f := newFixture(t, 120, 1, func(req faketeacher.Request) faketeacher.Reply {
		if req.N == 30 {
			down.Store(true)
		}
		if down.Load() {
			return faketeacher.Reply{Fault: faketeacher.ServerError}
		}
		return faketeacher.Reply{}
	})
	_, err := f.run(t, f.options(0))
	var fail *Failure
	if !errors.As(err, &fail) || fail.Reason != contract.ReasonTeacherUnreachable {
		t.Fatalf("err = %v, want TeacherUnreachable", err)
	}
	for _, r := range f.records(t, 0) {
		if r.Status != contract.StatusOK {
			t.Errorf("the outage turned input %s into %s: %s", r.ID, r.Status, r.Error)
		}
	}
	down.Store(false)
	res, err := f.run(t, f.options(0))
	if err != nil || res.OK != 120 || res.Total != 120 {
		t.Fatalf("after the outage: %+v, %v", res, err)
	}
	for id, n := range countIDs(f.records(t, 0)) {
		if n != 1 {
			t.Errorf("input %s appears %d times", id, n)
		}
	}
}

func TestAPoisonedInputBecomesATeacherError(t *testing.T) {
	replies := map[string]faketeacher.Reply{}
	f := newFixture(t, 40, 1, faketeacher.PerInput(replies))
	replies[f.inputs["17"]] = faketeacher.Reply{Fault: faketeacher.ServerError}
	res, err := f.run(t, f.options(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.TeacherErrors != 1 || res.OK != 39 || res.Total != 40 {
		t.Errorf("result = %+v, want 39 ok and 1 teacher error", res)
	}
	for _, r := range f.records(t, 0) {
		if r.ID == "17" && (r.Status != contract.StatusTeacherError || !strings.Contains(r.Error, "500")) {
			t.Errorf("record 17 = %+v", r)
		}
	}
}

func TestProgressEndsWithEverythingDone(t *testing.T) {
	f := newFixture(t, 25, 1, nil)
	opts := f.options(0)
	if _, err := f.run(t, opts); err != nil {
		t.Fatal(err)
	}
	if p := opts.Progress.(*capturedProgress).last(); p.Done != 25 || p.Total != 25 || p.UpdatedAt == "" {
		t.Errorf("last progress = %+v", p)
	}
}

func TestADatasetWithoutTheInputFieldFailsNamingIt(t *testing.T) {
	f := newFixture(t, 12, 2, nil)
	var data strings.Builder
	for i := range 12 {
		fmt.Fprintf(&data, `{"text":"is %d bigger than 3?","id":"%d","label":"first"}`+"\n", i, i)
	}
	if err := os.WriteFile(f.cfg.Dataset.Path, []byte(data.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for shard := range 2 {
		res, err := f.run(t, f.options(shard))
		var fail *Failure
		if !errors.As(err, &fail) || fail.Reason != contract.ReasonInvalidInput {
			t.Fatalf("shard %d: err = %v, want InvalidInput", shard, err)
		}
		want := fmt.Sprintf(`dataset line %d has no field "input" (fields: id, label, text); set spec.dataset.inputField`, shard+1)
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "6 lines skipped") {
			t.Errorf("shard %d: err = %q, want it to contain %q and the count", shard, err, want)
		}
		if res.SkippedLines != 6 || res.Total != 0 {
			t.Errorf("shard %d: result %+v, want 6 skipped lines and no record", shard, res)
		}
	}
	if f.fake.Calls() != 0 {
		t.Errorf("the teacher was asked %d times about unusable lines", f.fake.Calls())
	}
}

func TestAShardWithoutLinesIsNotAFailure(t *testing.T) {
	f := newFixture(t, 1, 3, nil)
	for shard := 1; shard < 3; shard++ {
		if res, err := f.run(t, f.options(shard)); err != nil || res.Total != 0 || res.SkippedLines != 0 {
			t.Errorf("empty shard %d: %+v, %v; want an empty success", shard, res, err)
		}
	}
}

func TestMaxExamplesPaysForASeededSampleOfTheWholeDataset(t *testing.T) {
	f := newFixture(t, 100, 3, nil)
	f.cfg.Dataset.MaxExamples, f.cfg.Dataset.Seed = 25, 11
	annotated := func(outputDir string) map[string]int {
		ids := map[string]int{}
		for shard := range 3 {
			opts := f.options(shard)
			opts.OutputDir, opts.CacheDir = outputDir, "" // no cache: every answer is paid for
			res, err := f.run(t, opts)
			if err != nil {
				t.Fatalf("shard %d: %v", shard, err)
			}
			recs := readRecords(t, filepath.Join(outputDir, contract.ShardFileName(shard, 3)))
			if res.Total != len(recs) {
				t.Errorf("shard %d: total %d, file has %d", shard, res.Total, len(recs))
			}
			for id, n := range countIDs(recs) {
				ids[id] += n
			}
		}
		return ids
	}
	first := annotated(t.TempDir())
	if len(first) != 25 || f.fake.Calls() != 25 {
		t.Fatalf("%d inputs annotated with %d teacher calls, want 25 of 100", len(first), f.fake.Calls())
	}
	for id, n := range first {
		if n != 1 {
			t.Errorf("input %s annotated %d times", id, n)
		}
		// The fixture's ids are the 0-based positions; the sample is the 25 smallest keys.
		pos, _ := strconv.Atoi(id)
		if rank := keyRank(f.cfg.Dataset.Seed, pos, 100); rank >= 25 {
			t.Errorf("input %s has key rank %d, not among the 25 smallest", id, rank)
		}
	}
	again := annotated(t.TempDir())
	if fmt.Sprint(sortedIDs(again)) != fmt.Sprint(sortedIDs(first)) {
		t.Errorf("a retry drew another sample:\n%v\n%v", sortedIDs(first), sortedIDs(again))
	}
}

func keyRank(seed int64, pos, n int) int {
	rank := 0
	for other := range n {
		if dataset.SampleKey(seed, other) < dataset.SampleKey(seed, pos) {
			rank++
		}
	}
	return rank
}

func sortedIDs(ids map[string]int) []string {
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func TestAShardWithBadLinesAndNoSampledLineIsNotAFailure(t *testing.T) {
	f := newFixture(t, 20, 4, nil)
	f.cfg.Dataset.MaxExamples = 1
	data, _ := os.ReadFile(f.cfg.Dataset.Path)
	os.WriteFile(f.cfg.Dataset.Path, append(data, "{bad\n{bad\n{bad\n{bad\n"...), 0o644)
	total, skipped := 0, 0
	for shard := range 4 {
		res, err := f.run(t, f.options(shard))
		if err != nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		total, skipped = total+res.Total, skipped+res.SkippedLines
	}
	if total != 1 || skipped != 4 || f.fake.Calls() != 1 {
		t.Errorf("%d records, %d skipped lines, %d teacher calls; want 1, 4, 1", total, skipped, f.fake.Calls())
	}
}

func TestHugeAnswersAreRejectedOnceWithBoundedMemory(t *testing.T) {
	replies := map[string]faketeacher.Reply{}
	f := newFixture(t, 60, 1, faketeacher.PerInput(replies))
	f.fake.Latency = 2 * time.Millisecond // so that the workers overlap
	huge := map[string]bool{}
	for _, id := range []string{"7", "8", "9", "10", "11", "12"} {
		huge[id] = true
		replies[f.inputs[id]] = faketeacher.Reply{Fault: faketeacher.HugeAnswer, Size: 1 << 30} // a teacher ignoring max_tokens
	}
	limit := contract.MaxResponseBytes(f.cfg.Teacher.MaxTokens)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := f.run(t, f.options(0))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("the shard allocated %.1f MiB in all; %d requests in flight at most", float64(alloc)/(1<<20), f.fake.PeakInFlight())
	// 60 answers and six cut at the ~36 KiB limit take a few MiB; reading 8 MiB of one huge answer would
	// take 16 (the buffer doubles), reading all of one over 1 GiB.
	if alloc > 16<<20 {
		t.Errorf("the shard allocated %d MiB while the teacher offered 1 GiB answers; reading must stop at the limit", alloc>>20)
	}
	if peak := f.fake.PeakInFlight(); peak > f.cfg.Teacher.MaxConcurrency {
		t.Errorf("%d requests in flight, more than maxConcurrency %d", peak, f.cfg.Teacher.MaxConcurrency)
	}
	for _, r := range f.records(t, 0) {
		if huge[r.ID] && (r.Status != contract.StatusUnparseable || !strings.Contains(r.Error, fmt.Sprintf("more than %d bytes", limit)) ||
			!strings.Contains(r.Error, fmt.Sprintf("%d-byte limit", limit))) {
			t.Errorf("record %s = %s %q, want unparseable with the size and the limit", r.ID, r.Status, r.Error)
		}
	}
	for id := range huge {
		if n := f.fake.Seen()[f.inputs[id]]; n != 1 {
			t.Errorf("input %s was asked %d times; an oversized answer must be asked once", id, n)
		}
	}
	if res.Unparseable != 6 || res.OK != 54 {
		t.Errorf("result %+v, want the 6 huge answers unparseable", res)
	}
	calls := f.fake.Calls()
	if _, err := f.run(t, f.options(0)); err != nil || f.fake.Calls() != calls {
		t.Errorf("a resumed shard asked the teacher %d more times (%v); the rejected records are final", f.fake.Calls()-calls, err)
	}
}
