package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/annotator/budget"
	"github.com/distillery-dev/distillery/internal/annotator/kubeapi"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Integration tests of the budget policy (budget.go) and the live spend and rate in status, against
// envtest; and of the annotator's ledger against the real API server under the stage pods' Role.

// waitForBudgetLedger waits for the job's ledger ConfigMap and returns it.
func waitForBudgetLedger(t *testing.T, ns, job string) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	eventually(t, "budget ledger ConfigMap", func() error {
		return k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: contract.BudgetConfigMapName(job)}, &cm)
	})
	return &cm
}

func TestABudgetedJobHasALedgerAndShowsItsSpendAndETALive(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	dj := createJob(t, utiltesting.MakeJob("priced", ns).Shards(2).EvalConfigMap("evalset", "eval.jsonl").Budget(v1alpha1.TeacherBudget{
		MaxTokens: ptr.To[int64](1_000_000), MaxCost: "5", PromptPricePerMillion: "3", CompletionPricePerMillion: "15",
	}).Obj())

	// The ledger: the caps from the spec, owned by the job; the stage pods' Role may get and patch it.
	ledger := waitForBudgetLedger(t, ns, dj.Name)
	caps, err := contract.ParseBudgetCaps(ledger.Data[contract.BudgetCapsKey])
	if want := (contract.BudgetCaps{MaxTokens: 1_000_000, MaxCost: 5, PromptPricePerMillion: 3, CompletionPricePerMillion: 15}); err != nil || caps != want {
		t.Errorf("ledger caps = %+v (%v), want %+v", caps, err, want)
	}
	if !metav1.IsControlledBy(ledger, dj) {
		t.Errorf("the ledger is not the job's: %v", ledger.OwnerReferences)
	}
	// The workspace applies the config, the Role and the ledger at once: the ledger may come first.
	var role rbacv1.Role
	eventually(t, "the stage Role", func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: serviceAccountName(dj)}, &role)
	})
	if names := role.Rules[0].ResourceNames; len(names) != 3 || names[2] != contract.BudgetConfigMapName(dj.Name) {
		t.Errorf("stage Role names %v", names)
	}
	// annotate.json names the ledger and the eval file, which the annotation pods mount.
	var cfg corev1.ConfigMap
	eventually(t, "the job's config ConfigMap", func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: configMapName(dj)}, &cfg)
	})
	var ac contract.AnnotateConfig
	if err := json.Unmarshal([]byte(cfg.Data[annotateConfigKey]), &ac); err != nil {
		t.Fatal(err)
	}
	if ac.Budget == nil || ac.Budget.LedgerConfigMap != contract.BudgetConfigMapName(dj.Name) || ac.Budget.MaxCost != 5 ||
		ac.Dataset.EvalPath != evalMountDir+"/"+evalFileName {
		t.Errorf("annotate.json budget %+v, evalPath %q", ac.Budget, ac.Dataset.EvalPath)
	}

	// Live spend and rate from the shards' progress reports, before any shard finished.
	now := time.Now().UTC()
	report := func(shard, done int, at time.Time, requests, prompt, completion int64) {
		patchProgress(t, ns, dj.Name, contract.AnnotateProgressKey(shard), contract.AnnotateProgress{Done: done, Total: 200,
			Requests: requests, PromptTokens: prompt, CompletionTokens: completion, CacheHits: 5, CacheSavedPromptTokens: 1000,
			UpdatedAt: at.Format(time.RFC3339)})
	}
	report(0, 10, now.Add(-40*time.Second), 10, 10_000, 1_000)
	report(1, 10, now.Add(-40*time.Second), 10, 10_000, 1_000)
	// Both shards' first reports, not just one: a pass between the two patches sees shard 0 alone, and a
	// sample of 10 would make the rate below 50 inputs in 40 s.
	eventually(t, "the first reports in status", func() error {
		if r := getJob(t, ns, dj.Name).Status.Rate; r == nil || len(r.Samples) != 1 || r.Samples[0].Done != 20 {
			return fmt.Errorf("rate %+v", r)
		}
		return nil
	})
	report(0, 30, now, 30, 30_000, 3_000)
	report(1, 30, now, 30, 30_000, 3_000)
	eventually(t, "live spend and ETA in status", func() error {
		st := getJob(t, ns, dj.Name).Status
		a := st.Annotation
		// 60 requests, 60000 prompt and 6000 completion tokens: 0.18 + 0.09; the cache saved 2000 prompt
		// tokens (0.006).
		if a == nil || a.Requests != 60 || a.Tokens != 66_000 || a.Cost != "0.2700" || a.CacheHits != 10 ||
			a.CacheSavedTokens != 2000 || a.CacheSavedCost != "0.0060" {
			return fmt.Errorf("annotation %+v", a)
		}
		// 40 more inputs in 40 s: 1 input/s, 340 left.
		if r := st.Rate; r == nil || r.Unit != "inputs" || r.PerSecond != "1.00" || r.ETASeconds == nil || *r.ETASeconds != 340 {
			return fmt.Errorf("rate %+v", r)
		}
		return nil
	})
	row := tableRow(t, "distillationjobs", ns, dj.Name)
	for col, want := range map[string]any{"Cost": "0.2700", "ETA": "5m40s", "Rate": "1.00", "Tokens": float64(66_000), "Progress": "60/400"} {
		if row[col] != want {
			t.Errorf("kubectl get dj column %s = %v, want %v (row %v)", col, row[col], want, row)
		}
	}

	// A changed budget reaches the ledger, where the running shards read it at their next claim.
	if err := updateJobSpec(ns, dj.Name, func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget.MaxCost = "9.5" }); err != nil {
		t.Fatalf("changing the budget of a running job: %v", err)
	}
	eventually(t, "the raised cap in the ledger", func() error {
		c, err := contract.ParseBudgetCaps(waitForBudgetLedger(t, ns, dj.Name).Data[contract.BudgetCapsKey])
		if err != nil || c.MaxCost != 9.5 {
			return fmt.Errorf("caps %+v (%v)", c, err)
		}
		return nil
	})
}

func TestAJobStoppedByItsBudgetFailsAndARaisedBudgetResumesIt(t *testing.T) {
	ns := newNamespace(t)
	dj := createJob(t, utiltesting.MakeJob("capped", ns).Shards(2).Budget(v1alpha1.TeacherBudget{MaxRequests: ptr.To[int64](100)}).Obj())
	first := finishShards(t, ns, dj.Name,
		annotateMsg(t, contract.AnnotateResult{Shard: 0, Total: 51, OK: 48, Unparseable: 3, Requests: 51, PromptTokens: 5100, CompletionTokens: 510, BudgetExceeded: true, Unasked: 9}),
		annotateMsg(t, contract.AnnotateResult{Shard: 1, Total: 50, OK: 50, Requests: 50, PromptTokens: 5000, CompletionTokens: 500, BudgetExceeded: true, Unasked: 10}))

	// Failed, with spend and cap; the records are kept (nothing deletes the workspace), no training.
	got := waitForCondition(t, ns, dj.Name, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonBudgetExceeded)
	msg := findCondition(got, v1alpha1.ConditionFailed).Message
	for _, want := range []string{"101 of 100 requests", "11110 tokens", "101 of 120 inputs annotated, 19 not asked", "spec.teacher.budget"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Failed message %q does not say %q", msg, want)
		}
	}
	if c := findCondition(got, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(v1alpha1.ReasonBudgetExceeded) {
		t.Errorf("Stalled = %+v", c)
	}
	if a := got.Status.Annotation; !a.BudgetExceeded || a.Unasked != 19 || a.Requests != 101 || got.Status.Stage != v1alpha1.StageFailed || got.Status.Rate != nil {
		t.Errorf("status %+v, annotation %+v", got.Status, a)
	}
	if n := countStageJobs(t, ns, dj.Name, StageTraining); n != 0 {
		t.Errorf("%d training jobs for a job its budget stopped", n)
	}

	// Lowered, or raised to no more than the spend: nothing changes. Raised above it: the job resumes,
	// with a new annotation Job whose shards continue from their files.
	if err := updateJobSpec(ns, dj.Name, func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget.MaxRequests = ptr.To[int64](101) }); err != nil {
		t.Fatalf("raising the budget of a job its budget stopped: %v", err)
	}
	consistently(t, "a budget at the spend does not resume", shortWhile, func() error {
		if !isTrue(getJob(t, ns, dj.Name).Status.Conditions, v1alpha1.ConditionFailed) {
			return errors.New("the job resumed")
		}
		return nil
	})
	// The pass that reopens the job says so on Annotated, until the next pass starts the new annotation Job
	// (Annotating): a watch sees it.
	jw := watchJob(t, ns, dj.Name)
	if err := updateJobSpec(ns, dj.Name, func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget.MaxRequests = ptr.To[int64](300) }); err != nil {
		t.Fatal(err)
	}
	if c := jw.condition(t, v1alpha1.ConditionAnnotated, metav1.ConditionFalse, v1alpha1.ReasonBudgetRaised); !strings.Contains(c.Message, "101 of 300 requests") {
		t.Errorf("Annotated message %q: want the spend against the raised cap", c.Message)
	}
	eventually(t, "a new annotation Job", func() error {
		var jobs batchv1.JobList
		if err := k8sClient.List(context.Background(), &jobs, client.InNamespace(ns), client.MatchingLabels{LabelJob: dj.Name, LabelStage: StageAnnotation}); err != nil {
			return err
		}
		if len(jobs.Items) != 1 || jobs.Items[0].UID == first.UID {
			return fmt.Errorf("%d annotation jobs, the first still there: %v", len(jobs.Items), len(jobs.Items) == 1)
		}
		return nil
	})
	got = waitForStage(t, ns, dj.Name, v1alpha1.StageAnnotating)
	if isTrue(got.Status.Conditions, v1alpha1.ConditionFailed) || got.Status.CompletionTime != nil {
		t.Errorf("resumed job: stage %s, completion %v, conditions %+v", got.Status.Stage, got.Status.CompletionTime, got.Status.Conditions)
	}
	if a := got.Status.Annotation; a.Requests != 101 || a.BudgetExceeded {
		t.Errorf("the spend must carry over and the stop be forgotten: %+v", a)
	}

	// The resumed shards (their summaries count the earlier records too) finish: training starts.
	finishShardsOf(t, ns, dj.Name, "-again",
		annotateMsg(t, contract.AnnotateResult{Shard: 0, Total: 60, OK: 57, Unparseable: 3, Requests: 60, PromptTokens: 6000, CompletionTokens: 600}),
		annotateMsg(t, contract.AnnotateResult{Shard: 1, Total: 60, OK: 60, Requests: 60, PromptTokens: 6000, CompletionTokens: 600}))
	got = waitForCondition(t, ns, dj.Name, v1alpha1.ConditionAnnotated, metav1.ConditionTrue, v1alpha1.ReasonAnnotationSucceeded)
	if a := got.Status.Annotation; a.Requests != 120 || a.OK != 117 || a.Total != 120 {
		t.Errorf("annotation after the resume: %+v", a)
	}
	waitForStageJob(t, ns, dj.Name, StageTraining)
}

func TestOnExceededTrainTrainsOnWhatTheBudgetPaidFor(t *testing.T) {
	ns := newNamespace(t)
	dj := createJob(t, utiltesting.MakeJob("frugal", ns).Budget(v1alpha1.TeacherBudget{
		MaxTokens: ptr.To[int64](5000), OnExceeded: v1alpha1.BudgetActionTrain}).Obj())
	finishShards(t, ns, dj.Name, annotateMsg(t, contract.AnnotateResult{Total: 40, OK: 38, TeacherErrors: 2, Requests: 38,
		PromptTokens: 4600, CompletionTokens: 500, BudgetExceeded: true, Unasked: 60}))
	got := waitForCondition(t, ns, dj.Name, v1alpha1.ConditionAnnotated, metav1.ConditionTrue, v1alpha1.ReasonBudgetExceeded)
	if msg := findCondition(got, v1alpha1.ConditionAnnotated).Message; !strings.Contains(msg, "5100 of 5000 tokens") ||
		!strings.Contains(msg, "training on the 38 usable annotations of 100 inputs") {
		t.Errorf("Annotated message %q", msg)
	}
	waitForStageJob(t, ns, dj.Name, StageTraining)
	finishTraining(t, ns, dj.Name, trainMsg(t, contract.TrainResult{Steps: 10, EvalAccuracy: 0.5, EvalExamples: 4}))
	waitForStage(t, ns, dj.Name, v1alpha1.StageSucceeded)
	sm, err := getModel(context.Background(), ns, dj.Name)
	if err != nil {
		t.Fatal(err)
	}
	if s := sm.Spec.Provenance.TeacherSpend; s == nil || !s.BudgetExceeded || s.PromptTokens != 4600 {
		t.Errorf("StudentModel teacher spend = %+v", s)
	}
	// Finished: the budget is frozen now.
	err = updateJobSpec(ns, dj.Name, func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget.MaxTokens = ptr.To[int64](9000) })
	if err == nil || !strings.Contains(err.Error(), "spec.teacher.budget cannot change once the job finished") {
		t.Errorf("changing the budget of a succeeded job: %v", err)
	}
}

func TestABudgetRaisedWhileShardsRanContinuesInsteadOfStopping(t *testing.T) {
	ns := newNamespace(t)
	dj := createJob(t, utiltesting.MakeJob("raised", ns).Budget(v1alpha1.TeacherBudget{MaxRequests: ptr.To[int64](10)}).Obj())
	waitForStageJob(t, ns, dj.Name, StageAnnotation)
	if err := updateJobSpec(ns, dj.Name, func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget.MaxRequests = ptr.To[int64](50) }); err != nil {
		t.Fatal(err)
	}
	first := finishShards(t, ns, dj.Name, annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10, Requests: 10, BudgetExceeded: true, Unasked: 20}))
	eventually(t, "a new annotation Job", func() error {
		aj := waitForStageJob(t, ns, dj.Name, StageAnnotation)
		if aj.UID == first.UID {
			return errors.New("still the first")
		}
		return nil
	})
	if got := getJob(t, ns, dj.Name); isTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
		t.Errorf("the job failed although its budget had room: %+v", got.Status.Conditions)
	}
}

func TestTheBudgetIsFrozenOnceAJobFailedForAnotherReason(t *testing.T) {
	ns := newNamespace(t)
	dj := createJob(t, utiltesting.MakeJob("broke", ns).Budget(v1alpha1.TeacherBudget{MaxRequests: ptr.To[int64](10)}).Obj())
	finishShards(t, ns, dj.Name, annotateMsg(t, contract.AnnotateResult{Total: 5, Unparseable: 5, Requests: 5}))
	waitForCondition(t, ns, dj.Name, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonNoUsableAnnotations)
	err := updateJobSpec(ns, dj.Name, func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget.MaxRequests = ptr.To[int64](90) })
	if err == nil || !strings.Contains(err.Error(), "spec.teacher.budget") {
		t.Errorf("changing the budget of a job that failed with NoUsableAnnotations: %v", err)
	}
}

// The annotator's ConfigMap ledger against the API server, as the stage pods use it: with the job's stage
// service account (its Role allows get and patch on the ledger, nothing else), four shards of four
// workers each racing for slices (409 Conflicts on every race), the cap met exactly.
func TestTheShardsShareTheLedgerConfigMapUnderTheStageRole(t *testing.T) {
	ns := newNamespace(t)
	const capRequests = 60
	dj := createJob(t, utiltesting.MakeJob("ledger", ns).Shards(4).Budget(v1alpha1.TeacherBudget{MaxRequests: ptr.To[int64](capRequests)}).Obj())
	waitForBudgetLedger(t, ns, dj.Name)
	meters := shardsOnTheLedger(t, ns, dj, 4, contract.BudgetCaps{MaxRequests: capRequests}, contract.Usage{PromptTokens: 70, CompletionTokens: 10})
	var used contract.Spend
	for _, m := range meters {
		used = used.Add(m.Used())
	}
	if used.Requests != capRequests {
		t.Errorf("the shards made %d requests under a cap of %d", used.Requests, capRequests)
	}
	ledger := waitForBudgetLedger(t, ns, dj.Name)
	for shard := range 4 {
		if _, ok := ledger.Data[contract.BudgetShareKey(shard)]; !ok && meters[shard].Used().Requests == 0 {
			continue // a shard that found no slice left and spent nothing has nothing to write
		}
		var share contract.BudgetShare
		if err := json.Unmarshal([]byte(ledger.Data[contract.BudgetShareKey(shard)]), &share); err != nil ||
			share.Used.Requests != meters[shard].Used().Requests || share.Granted.Requests != share.Used.Requests {
			t.Errorf("shard %d's share %+v (%v): its spend, and its grant given back to it", shard, share, err)
		}
	}

	// The operator's apply of changed caps keeps the shards' keys (server-side apply removes only what its
	// own manager set).
	if err := updateJobSpec(ns, dj.Name, func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget.MaxRequests = ptr.To[int64](90) }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the raised caps beside the shards' keys", func() error {
		cm := waitForBudgetLedger(t, ns, dj.Name)
		c, err := contract.ParseBudgetCaps(cm.Data[contract.BudgetCapsKey])
		if err != nil || c.MaxRequests != 90 {
			return fmt.Errorf("caps %+v (%v)", c, err)
		}
		for k := range ledger.Data {
			if _, ok := cm.Data[k]; !ok {
				return fmt.Errorf("key %s is gone: %v", k, cm.Data)
			}
		}
		return nil
	})

	// The Role allows the ledger and the progress ConfigMap, nothing else.
	api := stageAPI(t, ns, dj)
	_, err := api.Do(context.Background(), "PATCH", api.ConfigMapURL(configMapName(dj)), "application/merge-patch+json", []byte(`{"data":{"x":"y"}}`))
	var se *kubeapi.StatusError
	if !errors.As(err, &se) || se.Code != 403 {
		t.Errorf("patching the stage config with the stage account: %v, want 403", err)
	}
}

// shardsOnTheLedger runs the annotator's meters of shards shards, four workers each, against the job's
// ledger ConfigMap as the stage pods do (impersonating the job's stage service account, whose Role allows
// get and patch on the ledger and nothing else), every request costing usage, until each meter says the
// budget is spent; it returns the closed meters.
func shardsOnTheLedger(t *testing.T, ns string, dj *v1alpha1.DistillationJob, shards int, caps contract.BudgetCaps, usage contract.Usage) []*budget.Meter {
	t.Helper()
	api := stageAPI(t, ns, dj)
	meters := make([]*budget.Meter, shards)
	var g errgroup.Group
	for shard := range meters {
		meters[shard] = budget.New(&budget.ConfigMapLedger{API: api, Name: contract.BudgetConfigMapName(dj.Name)},
			shard, shards, 64, caps, contract.Spend{})
		for range 4 {
			g.Go(func() error {
				for {
					res, err := meters[shard].Start(context.Background(), 300)
					if budget.IsExceeded(err) {
						return nil
					}
					if err != nil {
						return err
					}
					u := usage
					meters[shard].Settle(res, &u)
				}
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, m := range meters {
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return meters
}

// stageAPI is the annotator's API client as dj's stage pods have it: the job's stage service account.
func stageAPI(t *testing.T, ns string, dj *v1alpha1.DistillationJob) *kubeapi.Client {
	t.Helper()
	var rb rbacv1.RoleBinding
	eventually(t, "the stage RoleBinding", func() error {
		return k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: serviceAccountName(dj)}, &rb)
	})
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: fmt.Sprintf("system:serviceaccount:%s:%s", ns, serviceAccountName(dj))}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &kubeapi.Client{Host: cfg.Host, Namespace: ns, HTTP: hc}
}
