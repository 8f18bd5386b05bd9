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
		SampleSize: 20, Answered: 20, Inputs: 5400, EvalInputs: 400, TokensPerInputMean: "499.8", TokensPerInputP95: 570,
		ProjectedTokens: 2698650, ProjectedCost: "0.6168", ProjectedSeconds: 135, LimitedBy: "concurrency",
		ParseRate: "0.9500", RejectRate: "0.1000",
		// The sample's own spend, at the budget's prices: (8250 x 0.15 + 1745 x 0.6) / 1e6.
		Requests: 20, PromptTokens: 8250, CompletionTokens: 1745, Tokens: 9995, Cost: "0.0023",
	}
	if got.Status.Estimate == nil || *got.Status.Estimate != want {
		t.Errorf("status.estimate = %+v, want %+v", got.Status.Estimate, want)
	}
	msg := findCondition(got, v1alpha1.ConditionEstimated).Message
	for _, part := range []string{"20 sampled inputs", "499.8 tokens per input (p95 570)", "5400 inputs (400 of the eval split)", "2698650 tokens", "cost 0.6168", "2m15s", "parse rate 0.9500", "the sample spent 9995 tokens in 20 requests"} {
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

// A sample that cannot be trusted fails the job before annotation is paid, naming the first rejection: every
// answer unparseable (EstimateUnparseable), or none answered at all, every request a teacher error
// (EstimateFailed). The estimate's summary stays in status for the user.
func TestAnEstimateThatCannotBeTrustedFailsTheJobBeforeAnnotation(t *testing.T) {
	for _, tc := range []struct {
		name        string
		result      contract.EstimateResult
		reason      v1alpha1.ConditionReason
		message     []string
		estimateSet func(*v1alpha1.EstimateStatus) bool
	}{{
		name: "parses-nothing",
		result: contract.EstimateResult{
			Stage: contract.StageEstimate, Sampled: 5, Answered: 5, Inputs: 100, RejectRate: 1,
			Statuses: map[string]int{contract.StatusUnparseable: 5},
			Rejected: []contract.EstimateRejection{{ID: "q-1", Status: contract.StatusUnparseable, Error: `no answer marker "So the answer is"`}},
		},
		reason:      v1alpha1.ReasonEstimateUnparseable,
		message:     []string{"input q-1", "spec.task"},
		estimateSet: func(e *v1alpha1.EstimateStatus) bool { return e.ParseRate == "0.0000" },
	}, {
		name: "answered-none",
		result: contract.EstimateResult{
			Stage: contract.StageEstimate, Sampled: 5, Answered: 0, Inputs: 100, RejectRate: 1,
			Statuses: map[string]int{contract.StatusTeacherError: 5},
			Rejected: []contract.EstimateRejection{{ID: "q-3", Status: contract.StatusTeacherError, Error: "teacher answered 400: model not found"}},
		},
		reason:      v1alpha1.ReasonEstimateFailed,
		message:     []string{"answered none of the 5 sampled inputs", "input q-3", "model not found"},
		estimateSet: func(e *v1alpha1.EstimateStatus) bool { return e.SampleSize == 5 && e.Answered == 0 },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			createJob(t, utiltesting.MakeJob(tc.name, ns).Estimate(5).Obj())
			msg, _ := json.Marshal(tc.result)
			finishEstimate(t, ns, tc.name, string(msg))
			got := waitForCondition(t, ns, tc.name, v1alpha1.ConditionFailed, metav1.ConditionTrue, tc.reason)
			c := findCondition(got, v1alpha1.ConditionFailed)
			for _, part := range tc.message {
				if !strings.Contains(c.Message, part) {
					t.Errorf("Failed message %q should contain %q", c.Message, part)
				}
			}
			if e := findCondition(got, v1alpha1.ConditionEstimated); e == nil || e.Status != metav1.ConditionFalse || e.Reason != string(tc.reason) {
				t.Errorf("Estimated condition = %+v, want False with reason %s", e, tc.reason)
			}
			if got.Status.Estimate == nil || !tc.estimateSet(got.Status.Estimate) {
				t.Errorf("status.estimate = %+v: the summary is kept for the user", got.Status.Estimate)
			}
			consistently(t, "no annotation Job after a failed estimate", shortWhile, func() error {
				if n := countStageJobs(t, ns, tc.name, StageAnnotation); n != 0 {
					return fmt.Errorf("%d annotation Jobs: the full run would be paid", n)
				}
				return nil
			})
		})
	}
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

// sampleSummary is an estimate's summary whose sample spent spend.
func sampleSummary(t *testing.T, spend contract.Spend) string {
	t.Helper()
	b, err := json.Marshal(contract.EstimateResult{Stage: contract.StageEstimate, Sampled: 20, Answered: 20, Inputs: 100,
		Statuses: map[string]int{contract.StatusOK: 20}, ParseRate: 1, Spend: spend,
		Projected: contract.EstimateProjection{Requests: 100, Tokens: 50_000}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ledgerEstimate is the ledger's estimate key, decoded; ok is false while it is not there.
func ledgerEstimate(t *testing.T, ns, job string) (contract.BudgetShare, bool) {
	t.Helper()
	cm := waitForBudgetLedger(t, ns, job)
	v, ok := cm.Data[contract.BudgetEstimateKey]
	if !ok {
		return contract.BudgetShare{}, false
	}
	var share contract.BudgetShare
	if err := json.Unmarshal([]byte(v), &share); err != nil {
		t.Fatalf("ledger key %s %q: %v", contract.BudgetEstimateKey, v, err)
	}
	return share, true
}

// The estimate's sample is paid for like annotation: its spend is in status.estimate and in the job's
// spend (status.annotation), and in the ledger before the annotation Job exists, so the shards (the
// annotator's meters on the real ConfigMap, under the stage Role) get only what it left of the caps.
func TestTheEstimatesSampleCountsInTheBudgetAndTheSpend(t *testing.T) {
	ns := newNamespace(t)
	const capRequests = 60
	sample := contract.Spend{Requests: 20, PromptTokens: 8000, CompletionTokens: 2000}
	dj := createJob(t, utiltesting.MakeJob("sampled", ns).Shards(4).Estimate(20).Budget(v1alpha1.TeacherBudget{
		MaxRequests: ptr.To[int64](capRequests), PromptPricePerMillion: "3", CompletionPricePerMillion: "15"}).Obj())
	if _, ok := ledgerEstimate(t, ns, dj.Name); ok {
		t.Errorf("the ledger has an estimate key before the estimate ran")
	}
	finishEstimate(t, ns, dj.Name, sampleSummary(t, sample))
	waitForStageJob(t, ns, dj.Name, StageAnnotation)
	// Read once the annotation Job exists: the shards find the sample's spend at their first claim.
	share, ok := ledgerEstimate(t, ns, dj.Name)
	if !ok || share != (contract.BudgetShare{Used: sample}) {
		t.Errorf("ledger estimate key %+v (present %v) once the annotation Job exists; want used %+v and nothing granted", share, ok, sample)
	}
	// (8000 x 3 + 2000 x 15) / 1e6 = 0.054
	got := waitForCondition(t, ns, dj.Name, v1alpha1.ConditionEstimated, metav1.ConditionTrue, v1alpha1.ReasonEstimateSucceeded)
	if e := got.Status.Estimate; e == nil || e.Requests != 20 || e.PromptTokens != 8000 || e.CompletionTokens != 2000 || e.Tokens != 10000 || e.Cost != "0.0540" {
		t.Errorf("status.estimate = %+v: want the sample's 20 requests, 8000 + 2000 tokens, cost 0.0540", e)
	}
	eventually(t, "the sample's spend in the job's spend", func() error {
		a := getJob(t, ns, dj.Name).Status.Annotation
		if a == nil || a.Requests != 20 || a.Tokens != 10000 || a.Cost != "0.0540" {
			return fmt.Errorf("status.annotation = %+v", a)
		}
		return nil
	})

	// The shards on the ledger: 60 requests less the sample's 20.
	meters := shardsOnTheLedger(t, ns, dj, 4, budgetCaps(dj.Spec.Teacher.Budget), contract.Usage{PromptTokens: 70, CompletionTokens: 10})
	var shardsUsed contract.Spend
	for _, m := range meters {
		shardsUsed = shardsUsed.Add(m.Used())
	}
	if shardsUsed.Requests != capRequests-sample.Requests {
		t.Errorf("the shards made %d requests under a cap of %d after the sample's %d; want %d", shardsUsed.Requests,
			capRequests, sample.Requests, capRequests-sample.Requests)
	}

	// Their summaries: the job's spend is theirs plus the sample's.
	var msgs []string
	for i, m := range meters {
		u := m.Used()
		msgs = append(msgs, annotateMsg(t, contract.AnnotateResult{Shard: i, Total: int(u.Requests), OK: int(u.Requests),
			Requests: u.Requests, PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}))
	}
	finishShards(t, ns, dj.Name, msgs...)
	got = waitForCondition(t, ns, dj.Name, v1alpha1.ConditionAnnotated, metav1.ConditionTrue, v1alpha1.ReasonAnnotationSucceeded)
	want := shardsUsed.Add(sample)
	if a := got.Status.Annotation; a.Requests != want.Requests || a.PromptTokens != want.PromptTokens || a.CompletionTokens != want.CompletionTokens || a.Tokens != want.Tokens() {
		t.Errorf("status.annotation spend %d requests, %d + %d tokens; want the shards' and the sample's: %+v", a.Requests, a.PromptTokens, a.CompletionTokens, want)
	}
}

// A budget the sample alone spent stops the job with BudgetExceeded before annotation starts, the sample's
// spend in status; a raised budget reopens it, and annotation starts without asking for a new sample.
func TestAnEstimateThatSpentTheBudgetStopsTheJobBeforeAnnotation(t *testing.T) {
	ns := newNamespace(t)
	sample := contract.Spend{Requests: 20, PromptTokens: 8250, CompletionTokens: 1745}
	dj := createJob(t, utiltesting.MakeJob("small", ns).Estimate(20).Budget(v1alpha1.TeacherBudget{MaxTokens: ptr.To[int64](5000)}).Obj())
	finishEstimate(t, ns, dj.Name, sampleSummary(t, sample))
	got := waitForCondition(t, ns, dj.Name, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonBudgetExceeded)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "9995 of 5000 tokens") || !strings.Contains(c.Message, "estimate") {
		t.Errorf("Failed message %q: want the sample's spend against the cap", c.Message)
	}
	if e := findCondition(got, v1alpha1.ConditionEstimated); e.Status != metav1.ConditionFalse || e.Reason != string(v1alpha1.ReasonBudgetExceeded) {
		t.Errorf("Estimated condition %+v", e)
	}
	if a := got.Status.Annotation; a == nil || a.Tokens != 9995 || a.Requests != 20 {
		t.Errorf("status.annotation = %+v: want the sample's 9995 tokens in 20 requests as the job's spend", a)
	}
	if got.Status.Estimate == nil || got.Status.Estimate.Tokens != 9995 {
		t.Errorf("status.estimate = %+v", got.Status.Estimate)
	}
	consistently(t, "no annotation Job once the sample spent the budget", shortWhile, func() error {
		if n := countStageJobs(t, ns, dj.Name, StageAnnotation); n != 0 {
			return fmt.Errorf("%d annotation Jobs", n)
		}
		return nil
	})

	if err := updateJobSpec(ns, dj.Name, func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget.MaxTokens = ptr.To[int64](1_000_000) }); err != nil {
		t.Fatal(err)
	}
	waitForStageJob(t, ns, dj.Name, StageAnnotation)
	got = waitForCondition(t, ns, dj.Name, v1alpha1.ConditionEstimated, metav1.ConditionTrue, v1alpha1.ReasonEstimateSucceeded)
	if isTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
		t.Errorf("still failed after the raise: %+v", findCondition(got, v1alpha1.ConditionFailed))
	}
	if n := countStageJobs(t, ns, dj.Name, StageEstimate); n != 1 {
		t.Errorf("%d estimate Jobs: the sample must not be asked (paid) again", n)
	}
	if share, ok := ledgerEstimate(t, ns, dj.Name); !ok || share.Used != sample {
		t.Errorf("ledger estimate key %+v (present %v)", share, ok)
	}
}
