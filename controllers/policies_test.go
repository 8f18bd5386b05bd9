package controllers

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Unit tests of the policies and status functions: results, failures, progress, deadline, TTL, stage,
// suspend, scheduling and examplesFrom parsing.

func pods(ps ...*corev1.Pod) []corev1.Pod {
	out := make([]corev1.Pod, 0, len(ps))
	for _, p := range ps {
		out = append(out, *p)
	}
	return out
}

func TestAnnotationResults(t *testing.T) {
	shard := func(i int, ok int) *corev1.Pod {
		return utiltesting.MakePod("p", "ns").Index(i).Succeeded(annotateMsg(t, contract.AnnotateResult{Shard: i, Total: 10, OK: ok, Unparseable: 1, CacheHits: 2, PromptTokens: 100})).Obj()
	}
	cases := []struct {
		name       string
		pods       []corev1.Pod
		wantOK     int
		wantTotal  int
		wantShards int
	}{
		{name: "none", wantShards: 0},
		{name: "two shards", pods: pods(shard(0, 8), shard(1, 9)), wantOK: 17, wantTotal: 20, wantShards: 2},
		{name: "a retried shard counts once", pods: pods(shard(0, 8), shard(0, 8), shard(1, 9)), wantOK: 17, wantTotal: 20, wantShards: 2},
		{name: "failed and running pods do not count", pods: pods(shard(0, 8),
			utiltesting.MakePod("f", "ns").Index(1).Failed(1, "boom").Obj(), utiltesting.MakePod("r", "ns").Index(2).Obj()), wantOK: 8, wantTotal: 10, wantShards: 1},
		{name: "an unparseable message does not count", pods: pods(utiltesting.MakePod("x", "ns").Index(0).Succeeded("not json").Obj()), wantShards: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sum, done := annotationResults(tc.pods)
			if sum.OK != tc.wantOK || sum.Total != tc.wantTotal || done != tc.wantShards {
				t.Errorf("ok %d total %d shards %d, want %d %d %d", sum.OK, sum.Total, done, tc.wantOK, tc.wantTotal, tc.wantShards)
			}
			if done > 0 && (sum.CacheHits != 2*done || sum.PromptTokens != int64(100*done) || sum.Unparseable != done) {
				t.Errorf("sums = %+v", sum)
			}
		})
	}
}

func TestSkippedLinesNote(t *testing.T) {
	shard := func(i, skipped, first int, why string) *corev1.Pod {
		return utiltesting.MakePod("p", "ns").Index(i).Succeeded(annotateMsg(t, contract.AnnotateResult{Shard: i, Total: 10, OK: 10,
			SkippedLines: skipped, FirstSkippedLine: first, FirstSkippedError: why})).Obj()
	}
	cases := []struct {
		name string
		pods []corev1.Pod
		want string
	}{
		{name: "none skipped", pods: pods(shard(0, 0, 0, ""), shard(1, 0, 0, "")), want: ""},
		{name: "the lowest line over the shards", pods: pods(shard(0, 2, 21, "not a JSON object"), shard(1, 1, 4, `no field "input" (fields: text)`), shard(2, 0, 0, "")),
			want: `3 dataset lines skipped; first: line 4: no field "input" (fields: text)`},
		{name: "one", pods: pods(shard(0, 1, 7, "input field \"input\" is empty")), want: `1 dataset line skipped; first: line 7: input field "input" is empty`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sum, _ := annotationResults(tc.pods)
			if got := skippedNote(sum); got != tc.want {
				t.Errorf("skippedNote = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFailedStage(t *testing.T) {
	now := time.Now()
	unreachable := annotateMsg(t, contract.AnnotateResult{Shard: 2, Error: "teacher http://t:8000/v1 unreachable: connection refused", Reason: contract.ReasonTeacherUnreachable})
	invalid := annotateMsg(t, contract.AnnotateResult{Shard: 0, Error: "dataset line 4: not JSON", Reason: contract.ReasonInvalidInput})
	failedJob := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "dj-annotate"}}
	utiltesting.FailJob(failedJob, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	cases := []struct {
		name       string
		pods       []corev1.Pod
		what       string
		wantReason v1alpha1.ConditionReason
		wantIn     []string
	}{
		{name: "teacher unreachable", what: "annotation", pods: pods(utiltesting.MakePod("p2", "ns").Index(2).Failed(3, unreachable).Obj()),
			wantReason: v1alpha1.ReasonTeacherUnreachable, wantIn: []string{"annotation shard 2", "pod p2", "http://t:8000/v1 unreachable"}},
		{name: "invalid input is typed", what: "annotation", pods: pods(utiltesting.MakePod("p0", "ns").Index(0).Failed(3, invalid).Obj()),
			wantReason: v1alpha1.ReasonInvalidInput, wantIn: []string{"dataset line 4: not JSON"}},
		{name: "an unknown reason keeps the stage's reason", what: "annotation", pods: pods(utiltesting.MakePod("p0", "ns").Index(0).Failed(3,
			annotateMsg(t, contract.AnnotateResult{Error: "odd", Reason: "Odd"})).Obj()),
			wantReason: v1alpha1.ReasonAnnotationFailed, wantIn: []string{"odd"}},
		{name: "log fallback", what: "training", pods: pods(utiltesting.MakePod("t", "ns").Failed(1, "Traceback ...\nRuntimeError: CUDA out of memory").Obj()),
			wantReason: v1alpha1.ReasonAnnotationFailed, wantIn: []string{"training failed (pod t)", "CUDA out of memory"}},
		{name: "newest failed pod wins", what: "training", pods: pods(
			utiltesting.MakePod("old", "ns").Created(now.Add(-time.Minute)).Failed(1, "first try").Obj(),
			utiltesting.MakePod("new", "ns").Created(now).Failed(1, "second try").Obj()),
			wantReason: v1alpha1.ReasonAnnotationFailed, wantIn: []string{"pod new", "second try"}},
		{name: "no message: the Job's condition", what: "annotation", pods: pods(utiltesting.MakePod("p", "ns").Failed(137, "").Obj()),
			wantReason: v1alpha1.ReasonAnnotationFailed, wantIn: []string{"dj-annotate", "BackoffLimitExceeded", "backoff limit"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := failedStage(failedJob, tc.pods, v1alpha1.ReasonAnnotationFailed, tc.what)
			if f.reason != tc.wantReason {
				t.Errorf("reason = %s, want %s", f.reason, tc.wantReason)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(f.message, s) {
					t.Errorf("message %q lacks %q", f.message, s)
				}
			}
		})
	}
}

func TestTrainResult(t *testing.T) {
	rank := func(i, steps int) *corev1.Pod {
		return utiltesting.MakePod("p", "ns").Index(i).Succeeded(trainMsg(t, contract.TrainResult{Steps: steps, EvalAccuracy: 0.5})).Obj()
	}
	cases := []struct {
		name      string
		pods      []corev1.Pod
		wantOK    bool
		wantSteps int
	}{
		{name: "none"},
		{name: "single pod", pods: pods(utiltesting.MakePod("p", "ns").Succeeded(trainMsg(t, contract.TrainResult{Steps: 7})).Obj()), wantOK: true, wantSteps: 7},
		{name: "rank 0 wins", pods: pods(rank(2, 30), rank(0, 10), rank(1, 20)), wantOK: true, wantSteps: 10},
		{name: "an annotate summary is not a train result", pods: pods(utiltesting.MakePod("p", "ns").Succeeded(annotateMsg(t, contract.AnnotateResult{Total: 1})).Obj())},
		{name: "failed pods are ignored", pods: pods(utiltesting.MakePod("p", "ns").Failed(1, trainMsg(t, contract.TrainResult{Steps: 3})).Obj())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := trainResult(tc.pods)
			if ok != tc.wantOK || r.Steps != tc.wantSteps {
				t.Errorf("trainResult = %+v, %v; want steps %d, %v", r, ok, tc.wantSteps, tc.wantOK)
			}
		})
	}
}

func TestProgressString(t *testing.T) {
	cases := []struct {
		name string
		st   v1alpha1.DistillationJobStatus
		want string
	}{
		{name: "nothing yet", want: ""},
		{name: "shards before totals", st: v1alpha1.DistillationJobStatus{Annotation: &v1alpha1.AnnotationStatus{ShardsSucceeded: 1, ShardsTotal: 4}}, want: "shards 1/4"},
		{name: "annotating", st: v1alpha1.DistillationJobStatus{Annotation: &v1alpha1.AnnotationStatus{Done: 4500, Total: 5000}}, want: "4500/5000"},
		{name: "training wins", st: v1alpha1.DistillationJobStatus{Annotation: &v1alpha1.AnnotationStatus{Done: 5000, Total: 5000},
			Training: &v1alpha1.TrainingStatus{Step: 300, TotalSteps: 1000}}, want: "step 300/1000"},
		{name: "training without a total yet", st: v1alpha1.DistillationJobStatus{Annotation: &v1alpha1.AnnotationStatus{Done: 5, Total: 5},
			Training: &v1alpha1.TrainingStatus{}}, want: "5/5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := progressString(&tc.st); got != tc.want {
				t.Errorf("progressString = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProgressFromConfigMap(t *testing.T) {
	cm := &corev1.ConfigMap{Data: map[string]string{
		"annotate-0": `{"done":3,"total":10,"requests":3,"promptTokens":300,"completionTokens":30,"updatedAt":"2026-11-29T20:10:00Z"}`,
		"annotate-1": `{"done":4,"total":12,"requests":2,"promptTokens":200,"completionTokens":20,"cacheHits":2,"budgetExceeded":true,"updatedAt":"2026-11-29T20:10:07Z"}`,
		"annotate-2": `garbage`,
		"train-0":    `{"step":5,"totalSteps":50,"loss":1.5}`, "train-1": `{"step":99}`,
	}}
	want := contract.AnnotateProgress{Done: 7, Total: 22, Requests: 5, PromptTokens: 500, CompletionTokens: 50, CacheHits: 2,
		BudgetExceeded: true, UpdatedAt: "2026-11-29T20:10:07Z"}
	if got := annotationProgress(cm); got != want {
		t.Errorf("annotationProgress = %+v, want %+v", got, want)
	}
	if p, ok := trainingProgress(cm); !ok || p.Step != 5 || p.TotalSteps != 50 {
		t.Errorf("trainingProgress = %+v, %v; want rank 0's", p, ok)
	}
	if _, ok := trainingProgress(nil); ok {
		t.Errorf("trainingProgress(nil) reported progress")
	}
}

func TestDeadlineAndTTL(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	started := func(w *utiltesting.JobWrapper) *v1alpha1.DistillationJob {
		dj := w.Obj()
		dj.Status.StartTime = &metav1.Time{Time: start}
		return dj
	}
	finishedAt := func(dj *v1alpha1.DistillationJob, cond v1alpha1.ConditionType) *v1alpha1.DistillationJob {
		dj.Status.CompletionTime = &metav1.Time{Time: start.Add(time.Minute)}
		setCondition(dj, cond, true, v1alpha1.ReasonSucceeded, "")
		return dj
	}
	t.Run("deadlineLeft", func(t *testing.T) {
		cases := []struct {
			name     string
			dj       *v1alpha1.DistillationJob
			now      time.Time
			wantOK   bool
			wantLeft time.Duration
		}{
			{name: "no deadline", dj: started(utiltesting.MakeJob("dj", "ns")), now: start},
			{name: "not started", dj: utiltesting.MakeJob("dj", "ns").Deadline(60).Obj(), now: start},
			{name: "running", dj: started(utiltesting.MakeJob("dj", "ns").Deadline(60)), now: start.Add(20 * time.Second), wantOK: true, wantLeft: 40 * time.Second},
			{name: "past", dj: started(utiltesting.MakeJob("dj", "ns").Deadline(60)), now: start.Add(90 * time.Second), wantOK: true, wantLeft: -30 * time.Second},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				left, ok := deadlineLeft(tc.dj, tc.now)
				if ok != tc.wantOK || left != tc.wantLeft {
					t.Errorf("deadlineLeft = %s, %v; want %s, %v", left, ok, tc.wantLeft, tc.wantOK)
				}
			})
		}
	})
	t.Run("ttlLeft", func(t *testing.T) {
		cases := []struct {
			name     string
			dj       *v1alpha1.DistillationJob
			wantOK   bool
			wantLeft time.Duration
		}{
			{name: "no ttl", dj: finishedAt(started(utiltesting.MakeJob("dj", "ns")), v1alpha1.ConditionComplete)},
			{name: "running", dj: started(utiltesting.MakeJob("dj", "ns").TTL(60))},
			{name: "succeeded", dj: finishedAt(started(utiltesting.MakeJob("dj", "ns").TTL(60)), v1alpha1.ConditionComplete), wantOK: true, wantLeft: 30 * time.Second},
			{name: "failed", dj: finishedAt(started(utiltesting.MakeJob("dj", "ns").TTL(0)), v1alpha1.ConditionFailed), wantOK: true, wantLeft: -30 * time.Second},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				left, ok := ttlLeft(tc.dj, start.Add(90*time.Second))
				if ok != tc.wantOK || left != tc.wantLeft {
					t.Errorf("ttlLeft = %s, %v; want %s, %v", left, ok, tc.wantLeft, tc.wantOK)
				}
			})
		}
	})
}

func TestStageOf(t *testing.T) {
	with := func(conds ...v1alpha1.ConditionType) *v1alpha1.DistillationJob {
		dj := utiltesting.MakeJob("dj", "ns").Obj()
		for _, c := range conds {
			setCondition(dj, c, true, v1alpha1.ReasonPending, "")
		}
		return dj
	}
	running := &observed{annotation: jobPods{job: &batchv1.Job{}}}
	cases := []struct {
		name string
		dj   *v1alpha1.DistillationJob
		o    *observed
		want v1alpha1.Stage
	}{
		{name: "nothing yet", dj: with(), o: &observed{}, want: v1alpha1.StagePending},
		{name: "no observation", dj: with(), want: v1alpha1.StagePending},
		{name: "annotation job exists", dj: with(), o: running, want: v1alpha1.StageAnnotating},
		{name: "annotated", dj: with(v1alpha1.ConditionAnnotated), o: running, want: v1alpha1.StageTraining},
		{name: "suspended", dj: with(v1alpha1.ConditionSuspended), o: running, want: v1alpha1.StageSuspended},
		{name: "complete", dj: with(v1alpha1.ConditionAnnotated, v1alpha1.ConditionComplete), o: running, want: v1alpha1.StageSucceeded},
		{name: "failed beats everything", dj: with(v1alpha1.ConditionSuspended, v1alpha1.ConditionFailed), o: running, want: v1alpha1.StageFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := stageOf(tc.dj, tc.o); got != tc.want {
				t.Errorf("stageOf = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSetSuspendedCondition(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").Obj()
	steps := []struct {
		suspend    bool
		wantStatus metav1.ConditionStatus
		wantReason v1alpha1.ConditionReason
	}{
		{false, metav1.ConditionFalse, v1alpha1.ReasonNotSuspended},
		{true, metav1.ConditionTrue, v1alpha1.ReasonSuspended},
		{false, metav1.ConditionFalse, v1alpha1.ReasonResumed},
		{false, metav1.ConditionFalse, v1alpha1.ReasonResumed}, // a later pass keeps the reason
		{true, metav1.ConditionTrue, v1alpha1.ReasonSuspended},
	}
	for i, s := range steps {
		dj.Spec.Suspend = &s.suspend
		setSuspendedCondition(dj, false)
		c := findCondition(dj, v1alpha1.ConditionSuspended)
		if c.Status != s.wantStatus || c.Reason != string(s.wantReason) {
			t.Errorf("step %d (suspend=%v): %s/%s, want %s/%s", i, s.suspend, c.Status, c.Reason, s.wantStatus, s.wantReason)
		}
	}
}

func TestUnschedulable(t *testing.T) {
	cases := []struct {
		name string
		pods []corev1.Pod
		want string
	}{
		{name: "none"},
		{name: "pending but scheduled", pods: pods(utiltesting.MakePod("p", "ns").Obj())},
		{name: "unschedulable", pods: pods(utiltesting.MakePod("p", "ns").Unschedulable("0/3 nodes: insufficient nvidia.com/gpu").Obj()),
			want: "pod p cannot be scheduled: 0/3 nodes: insufficient nvidia.com/gpu"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := unschedulable(tc.pods); got != tc.want {
				t.Errorf("unschedulable = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseExamplesJSONL(t *testing.T) {
	good := `{"input":"a","rationale":"b","label":"yes"}`
	cases := []struct {
		name    string
		data    string
		wantN   int
		wantErr string
	}{
		{name: "two with a blank line", data: good + "\n\n" + good + "\n", wantN: 2},
		{name: "bad JSON names its line", data: good + "\n" + good + "\n{oops", wantErr: "src line 3: not a JSON object"},
		{name: "missing field names its line", data: good + "\n" + `{"input":"a","label":"yes"}`, wantErr: "src line 2: an example needs input, rationale and label"},
		{name: "empty", data: "\n \n", wantErr: "src holds no examples"},
		{name: "too many", data: strings.Repeat(good+"\n", 33), wantErr: "holds 33 examples; at most 32"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := ParseExamplesJSONL("src", tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(ex) != tc.wantN {
				t.Errorf("got %d examples, %v; want %d", len(ex), err, tc.wantN)
			}
		})
	}
}

func TestUpToDateSkipsUnchangedChildren(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").UID("u").Obj()
	current := annotationJob(dj, testImages)
	current.UID = "child"
	if !upToDate(current, annotationJob(dj, testImages)) {
		t.Errorf("an unchanged child is re-applied")
	}
	suspended := utiltesting.MakeJob("dj", "ns").UID("u").Suspend(true).Obj()
	if upToDate(current, annotationJob(suspended, testImages)) {
		t.Errorf("a suspend change is not applied")
	}
	if upToDate(nil, current) || upToDate((*batchv1.Job)(nil), current) {
		t.Errorf("a missing child counts as up to date")
	}
}
