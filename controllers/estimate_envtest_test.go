package controllers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// estimateVector is the contract's estimate termination message (testdata/contract), as the fake
// estimate pod's.
func estimateVector(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "contract", "termination-estimate.json"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// finishEstimate creates the estimate Job's succeeded pod with msg as its termination message and completes
// the Job, as the Job controller and the kubelet would.
func finishEstimate(t *testing.T, ns, djName, msg string) *batchv1.Job {
	t.Helper()
	ej := waitForStageJob(t, ns, djName, StageEstimate)
	createPod(t, utiltesting.MakePod(ej.Name+"-x", ns).StageOf(ej, djName, StageEstimate).Succeeded(msg).Obj())
	updateJobStatus(t, ej, utiltesting.CompleteJob)
	return ej
}

func TestEstimateRunsFirstAndASuspendedJobWaitsWithIt(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("priced", ns).Estimate(20).Suspend(true).
		Budget(v1alpha1.TeacherBudget{PromptPricePerMillion: "0.15", CompletionPricePerMillion: "0.6"}).Obj())

	// The estimate Job comes first and runs although the job is suspended; annotation waits.
	ej := waitForStageJob(t, ns, "priced", StageEstimate)
	if ptr.Deref(ej.Spec.Suspend, true) {
		t.Errorf("the estimate Job of a suspended job is suspended: it must run, it is what the user approves on")
	}
	cmd := ej.Spec.Template.Spec.Containers[0].Command
	if !slices.Contains(cmd, "--estimate") || !slices.Contains(cmd, "20") {
		t.Errorf("estimate command %v: want --estimate with --estimate-sample 20", cmd)
	}
	got := waitForCondition(t, ns, "priced", v1alpha1.ConditionEstimated, metav1.ConditionFalse, v1alpha1.ReasonEstimating)
	if got.Status.Stage != v1alpha1.StageSuspended {
		t.Errorf("stage %s, want Suspended", got.Status.Stage)
	}
	consistently(t, "no annotation Job before the estimate", shortWhile, func() error {
		if n := countStageJobs(t, ns, "priced", StageAnnotation); n != 0 {
			return fmt.Errorf("%d annotation Jobs before the estimate finished", n)
		}
		return nil
	})

	// The estimate's summary goes into status.estimate and the Estimated condition; the job waits.
	finishEstimate(t, ns, "priced", estimateVector(t))
	got = waitForCondition(t, ns, "priced", v1alpha1.ConditionEstimated, metav1.ConditionTrue, v1alpha1.ReasonEstimateSucceeded)
	want := v1alpha1.EstimateStatus{
		SampleSize: 20, Answered: 20, Inputs: 5000, TokensPerInputMean: "499.8", TokensPerInputP95: 570,
		ProjectedTokens: 2498750, ProjectedCost: "0.5711", ProjectedSeconds: 125, LimitedBy: "concurrency",
		ParseRate: "0.9500", RejectRate: "0.1000",
	}
	if got.Status.Estimate == nil || *got.Status.Estimate != want {
		t.Errorf("status.estimate = %+v, want %+v", got.Status.Estimate, want)
	}
	msg := findCondition(got, v1alpha1.ConditionEstimated).Message
	for _, part := range []string{"20 sampled inputs", "499.8 tokens per input (p95 570)", "2498750 tokens", "cost 0.5711", "2m5s", "parse rate 0.9500"} {
		if !strings.Contains(msg, part) {
			t.Errorf("Estimated message %q lacks %q", msg, part)
		}
	}
	eventually(t, "the Suspended condition pointing at the estimate", func() error {
		dj := getJob(t, ns, "priced")
		if c := findCondition(dj, v1alpha1.ConditionSuspended); c == nil || !strings.Contains(c.Message, "status.estimate") {
			return fmt.Errorf("Suspended condition %+v", c)
		}
		if dj.Status.Stage != v1alpha1.StageSuspended {
			return fmt.Errorf("stage %s", dj.Status.Stage)
		}
		return nil
	})
	aj := waitForStageJob(t, ns, "priced", StageAnnotation)
	if !ptr.Deref(aj.Spec.Suspend, false) {
		t.Errorf("the annotation Job started while the job is suspended")
	}

	// Approving (unsuspending) starts annotation; the estimate stays in status.
	if err := updateJobSpec(ns, "priced", func(dj *v1alpha1.DistillationJob) { dj.Spec.Suspend = ptr.To(false) }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the annotation Job resumed", func() error {
		if j := waitForStageJob(t, ns, "priced", StageAnnotation); ptr.Deref(j.Spec.Suspend, true) {
			return fmt.Errorf("spec.suspend is still true")
		}
		return nil
	})
	got = waitForStage(t, ns, "priced", v1alpha1.StageAnnotating)
	if got.Status.Estimate == nil || got.Status.Estimate.ProjectedTokens != want.ProjectedTokens {
		t.Errorf("status.estimate after resuming = %+v", got.Status.Estimate)
	}
}

func TestAnEstimateThatParsesNothingFailsTheJobBeforeAnnotation(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("broken", ns).Estimate(5).Obj())
	msg, _ := json.Marshal(contract.EstimateResult{
		Stage: contract.StageEstimate, Sampled: 5, Answered: 5, Inputs: 100, RejectRate: 1,
		Statuses: map[string]int{contract.StatusUnparseable: 5},
		Rejected: []contract.EstimateRejection{{ID: "q-1", Status: contract.StatusUnparseable, Error: `no answer marker "So the answer is"`}},
	})
	finishEstimate(t, ns, "broken", string(msg))
	got := waitForCondition(t, ns, "broken", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonEstimateUnparseable)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "input q-1") || !strings.Contains(c.Message, "spec.task") {
		t.Errorf("Failed message %q should name the first rejected input and spec.task", c.Message)
	}
	if e := findCondition(got, v1alpha1.ConditionEstimated); e.Status != metav1.ConditionFalse || e.Reason != string(v1alpha1.ReasonEstimateUnparseable) {
		t.Errorf("Estimated condition = %+v", e)
	}
	if got.Status.Estimate == nil || got.Status.Estimate.ParseRate != "0.0000" {
		t.Errorf("status.estimate = %+v: the rates are kept for the user", got.Status.Estimate)
	}
	consistently(t, "no annotation Job after a failed estimate", shortWhile, func() error {
		if n := countStageJobs(t, ns, "broken", StageAnnotation); n != 0 {
			return fmt.Errorf("%d annotation Jobs: the full run would be paid", n)
		}
		return nil
	})
}

func TestAnEstimateThatCannotReachTheTeacherFailsTheJob(t *testing.T) {
	ns := newNamespace(t)
	const endpoint = "http://vllm.teachers:8000/v1"
	createJob(t, utiltesting.MakeJob("away", ns).Endpoint(endpoint).Estimate(20).Obj())
	ej := waitForStageJob(t, ns, "away", StageEstimate)
	waitForStage(t, ns, "away", v1alpha1.StageEstimating)
	waitForCondition(t, ns, "away", v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonEstimating)
	msg, _ := json.Marshal(contract.EstimateResult{Stage: contract.StageEstimate,
		Error:  "asking the teacher about input q-7: teacher " + endpoint + " unreachable: dial tcp: connection refused",
		Reason: contract.ReasonTeacherUnreachable})
	createPod(t, utiltesting.MakePod(ej.Name+"-x", ns).StageOf(ej, "away", StageEstimate).Failed(contract.ExitCodePermanent, string(msg)).Obj())
	updateJobStatus(t, ej, func(j *batchv1.Job) { utiltesting.FailJob(j, "PodFailurePolicy", "exited with code 3") })

	got := waitForCondition(t, ns, "away", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonTeacherUnreachable)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, endpoint) {
		t.Errorf("Failed message %q should name the endpoint", c.Message)
	}
	if n := countStageJobs(t, ns, "away", StageAnnotation); n != 0 {
		t.Errorf("an annotation Job started after the estimate failed")
	}
}

func TestSuspendedQueuedJobRunsItsEstimateThroughKueue(t *testing.T) {
	installWorkloadCRD(t)
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("held", ns).Label(LabelKueueQueue, "team-a").Estimate(20).Suspend(true).Obj())
	ej := waitForStageJob(t, ns, "held", StageEstimate)
	if ej.Labels[LabelKueueQueue] != "team-a" {
		t.Errorf("estimate Job labels %v: want the queue label", ej.Labels)
	}
	if err := jobSuspendUntouched(ej, false, ej.Generation)(); err != nil { // the apiserver's default
		t.Errorf("the estimate Job's suspend must be left to Kueue: %v", err)
	}
	// Kueue's webhook creates it suspended: it waits for admission although the job is suspended.
	setJobSuspend(t, ej, true)
	waitForCondition(t, ns, "held", v1alpha1.ConditionEstimated, metav1.ConditionFalse, v1alpha1.ReasonQueued)
	// Kueue admits the estimate; spec.suspend does not deactivate its Workload.
	wl := kueueWorkload(t, ej)
	setJobSuspend(t, ej, false)
	consistently(t, "the estimate's Workload left active", 2*time.Second, func() error {
		if active, marked, err := workloadState(wl); err != nil || !active || marked {
			return fmt.Errorf("active %v, marked %v, %v", active, marked, err)
		}
		return nil
	})
	finishEstimate(t, ns, "held", estimateVector(t))
	waitForCondition(t, ns, "held", v1alpha1.ConditionEstimated, metav1.ConditionTrue, v1alpha1.ReasonEstimateSucceeded)
	consistently(t, "no annotation Job while suspended", time.Second, func() error {
		if n := countStageJobs(t, ns, "held", StageAnnotation); n != 0 {
			return fmt.Errorf("%d annotation Jobs: Kueue could admit a stage the user has not approved", n)
		}
		return nil
	})
	if err := updateJobSpec(ns, "held", func(dj *v1alpha1.DistillationJob) { dj.Spec.Suspend = ptr.To(false) }); err != nil {
		t.Fatal(err)
	}
	aj := waitForStageJob(t, ns, "held", StageAnnotation)
	if aj.Labels[LabelKueueQueue] != "team-a" {
		t.Errorf("annotation Job labels %v", aj.Labels)
	}
}
