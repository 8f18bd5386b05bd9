package controllers

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Unit tests of the settling policy (settle.go).

func TestSettlingWaitsForAFinishedJobsPodsUpToTheGrace(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	finished := func(cond batchv1.JobConditionType, ago time.Duration, succeeded, failed int32) *batchv1.Job {
		return &batchv1.Job{Status: batchv1.JobStatus{Succeeded: succeeded, Failed: failed, Conditions: []batchv1.JobCondition{{
			Type: cond, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-ago)),
		}}}}
	}
	pods := func(phases ...corev1.PodPhase) []corev1.Pod {
		out := make([]corev1.Pod, len(phases))
		for i, ph := range phases {
			out[i].Status.Phase = ph
		}
		return out
	}
	run := func(j *batchv1.Job, p []corev1.Pod) stageRun { return stageRun{jobPods: jobPods{job: j, pods: p}} }
	cases := []struct {
		name string
		runs []stageRun
		want time.Duration
	}{
		{"not created yet", []stageRun{run(nil, nil)}, 0},
		{"running", []stageRun{run(&batchv1.Job{}, pods(corev1.PodRunning))}, 0},
		{"complete, both shards' pods in", []stageRun{run(finished(batchv1.JobComplete, time.Second, 2, 0), pods(corev1.PodSucceeded, corev1.PodSucceeded))}, 0},
		{"complete, a shard's pod still running in the cache", []stageRun{run(finished(batchv1.JobComplete, time.Second, 2, 0), pods(corev1.PodSucceeded, corev1.PodRunning))}, 4 * time.Second},
		{"complete, its pod not in the cache yet", []stageRun{run(finished(batchv1.JobComplete, 2*time.Second, 1, 0), nil)}, 3 * time.Second},
		{"complete, its pod gone for longer than the grace", []stageRun{run(finished(batchv1.JobComplete, 10*time.Second, 1, 0), nil)}, 0},
		{"failed, its failed pod in", []stageRun{run(finished(batchv1.JobFailed, time.Second, 0, 1), pods(corev1.PodFailed))}, 0},
		{"failed after a retry, one failed pod not in yet", []stageRun{run(finished(batchv1.JobFailed, time.Second, 0, 2), pods(corev1.PodFailed, corev1.PodRunning))}, 4 * time.Second},
		{"a sweep: one point in, one not", []stageRun{
			run(finished(batchv1.JobComplete, time.Second, 1, 0), pods(corev1.PodSucceeded)),
			run(finished(batchv1.JobComplete, 3*time.Second, 1, 0), pods(corev1.PodPending)),
			run(&batchv1.Job{}, nil),
		}, 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := settling(tc.runs, now); got != tc.want {
				t.Errorf("settling = %v, want %v", got, tc.want)
			}
		})
	}
}

// The race the settling policy closes, made certain: the annotation Job completes while its pods are not
// in the cache at all, and they arrive a second later. The pass woken by the Job must not judge the stage
// from no pods (it would fail the job with no usable annotations, for good); the stage is read from the
// pods once they are in.
func TestAFinishedJobIsJudgedFromPodsThatReachTheCacheAfterIt(t *testing.T) {
	ns := newNamespace(t)
	dj := createJob(t, utiltesting.MakeJob("late-pods", ns).Shards(2).Obj())
	aj := waitForStageJob(t, ns, dj.Name, StageAnnotation)
	updateJobStatus(t, aj, utiltesting.CompleteJob)
	time.Sleep(time.Second) // the pass woken by the Job runs here, with no pods in the cache
	if c := findCondition(getJob(t, ns, dj.Name), v1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		t.Fatalf("judged before its pods arrived: %s: %s", c.Reason, c.Message)
	}
	for i := range 2 {
		createPod(t, utiltesting.MakePod(fmt.Sprintf("%s-%d", aj.Name, i), ns).StageOf(aj, dj.Name, StageAnnotation).Index(i).
			Succeeded(annotateMsg(t, contract.AnnotateResult{Shard: i, Total: 50, OK: 50, Requests: 50, PromptTokens: 5000, CompletionTokens: 500})).Obj())
	}
	got := waitForStage(t, ns, dj.Name, v1alpha1.StageTraining)
	if a := got.Status.Annotation; a == nil || a.OK != 100 || a.ShardsSucceeded != 2 {
		t.Errorf("status.annotation = %+v, want both shards' 50 annotations", a)
	}
}
