package controllers

import (
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Tests of the settling policy (settle.go).

func TestPodsCounted(t *testing.T) {
	pods := func(phases ...corev1.PodPhase) []corev1.Pod {
		out := make([]corev1.Pod, len(phases))
		for i, ph := range phases {
			out[i].Status.Phase = ph
		}
		return out
	}
	job := func(succeeded, failed int32) *batchv1.Job {
		return &batchv1.Job{Status: batchv1.JobStatus{Succeeded: succeeded, Failed: failed}}
	}
	cases := []struct {
		name string
		job  *batchv1.Job
		pods []corev1.Pod
		want bool
	}{
		{"both shards' pods in", job(2, 0), pods(corev1.PodSucceeded, corev1.PodSucceeded), true},
		{"a shard's pod still running in the cache", job(2, 0), pods(corev1.PodSucceeded, corev1.PodRunning), false},
		{"its pod not in the cache", job(1, 0), nil, false},
		{"failed, its failed pod in", job(0, 1), pods(corev1.PodFailed), true},
		{"failed after a retry, the second failed pod not in", job(0, 2), pods(corev1.PodFailed, corev1.PodRunning), false},
		{"an extra failed pod does not stand in for a missing succeeded one", job(1, 1), pods(corev1.PodFailed, corev1.PodFailed), false},
		{"more pods than counted (ignored by a pod failure policy)", job(1, 0), pods(corev1.PodFailed, corev1.PodSucceeded), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := podsCounted(tc.job, tc.pods); got != tc.want {
				t.Errorf("podsCounted = %v, want %v", got, tc.want)
			}
		})
	}
}

// A cache whose pod watch lags: the annotation Job is complete but the operator's cache holds none of its
// pods. Judged from the cache, the stage would fail for good with no usable annotations; it is read from
// the pods the API server holds.
func TestAFinishedJobIsJudgedFromItsPodsWhenTheCacheHasNotSeenThem(t *testing.T) {
	ns := newNamespace(t)
	podsNotCached.Store(ns, true)
	t.Cleanup(func() { podsNotCached.Delete(ns) })
	dj := createJob(t, utiltesting.MakeJob("lagging", ns).Shards(2).Obj())
	finishShards(t, ns, dj.Name,
		annotateMsg(t, contract.AnnotateResult{Shard: 0, Total: 50, OK: 50, Requests: 50, PromptTokens: 5000, CompletionTokens: 500}),
		annotateMsg(t, contract.AnnotateResult{Shard: 1, Total: 40, OK: 38, Unparseable: 2, Requests: 40, PromptTokens: 4000, CompletionTokens: 400}))
	got := waitForStage(t, ns, dj.Name, v1alpha1.StageTraining)
	if a := got.Status.Annotation; a == nil || a.OK != 88 || a.Rejected != 2 || a.ShardsSucceeded != 2 || a.Requests != 90 {
		t.Errorf("status.annotation = %+v, want both shards' sums (88 ok, 2 rejected, 90 requests)", a)
	}
	for _, c := range got.Status.Conditions {
		if c.Type == string(v1alpha1.ConditionFailed) && c.Status == "True" {
			t.Errorf("the job failed: %s: %s", c.Reason, c.Message)
		}
	}
}

// The same lagging cache when the Job failed: the failure's reason and message are the failed pod's own
// (the annotator's summary), not the Job controller's "backoff limit".
func TestAFailedJobIsExplainedFromItsPodWhenTheCacheHasNotSeenIt(t *testing.T) {
	ns := newNamespace(t)
	podsNotCached.Store(ns, true)
	t.Cleanup(func() { podsNotCached.Delete(ns) })
	dj := createJob(t, utiltesting.MakeJob("lagging-failure", ns).Obj())
	failJobWith(t, ns, dj.Name, StageAnnotation, contract.ExitCodePermanent, annotateMsg(t, contract.AnnotateResult{
		Error: "teacher unreachable", Reason: contract.ReasonTeacherUnreachable}))
	got := waitForCondition(t, ns, dj.Name, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonTeacherUnreachable)
	if msg := findCondition(got, v1alpha1.ConditionFailed).Message; !strings.Contains(msg, "teacher unreachable") {
		t.Errorf("Failed message %q, want the pod's own error", msg)
	}
}
