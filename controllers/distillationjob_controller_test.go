package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Integration tests of the DistillationJob controller against envtest (see suite_test.go).

const (
	secretAPIKey = "sk-live-DO-NOT-LEAK-0123456789"
	datasetHash  = "sha256:9e1c6ad3f0b5a4e2c1d8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6"
)

func annotateMsg(t *testing.T, r contract.AnnotateResult) string {
	t.Helper()
	r.Stage = contract.StageAnnotate
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goldEvaluation is a trainer's evaluation on an eval split with gold labels.
func goldEvaluation(examples int, student, teacher, agreement float64) *contract.Evaluation {
	return &contract.Evaluation{Metric: contract.MetricAccuracy, Examples: examples,
		StudentAccuracy: &student, TeacherAccuracy: &teacher, Agreement: &agreement}
}

func trainMsg(t *testing.T, r contract.TrainResult) string {
	t.Helper()
	r.Stage = contract.StageTrain
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// patchProgress merge-patches one key of the job's progress ConfigMap, as a stage pod does.
func patchProgress(t *testing.T, ns, djName, key string, value any) {
	t.Helper()
	b, _ := json.Marshal(value)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: contract.ProgressConfigMapName(djName)}}
	patch, _ := json.Marshal(map[string]any{"data": map[string]string{key: string(b)}})
	eventually(t, "patching the progress ConfigMap", func() error {
		return k8sClient.Patch(context.Background(), cm, client.RawPatch("application/merge-patch+json", patch))
	})
}

// updateJobSpec changes the job's spec through the API, retrying conflicts with the operator's writes.
func updateJobSpec(ns, name string, mutate func(*v1alpha1.DistillationJob)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var dj v1alpha1.DistillationJob
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &dj); err != nil {
			return err
		}
		mutate(&dj)
		return k8sClient.Update(context.Background(), &dj)
	})
}

func TestJobRunsThroughEveryStage(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "teacher-key"}, StringData: map[string]string{"key": secretAPIKey}}
	if err := k8sClient.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	dj := createJob(t, utiltesting.MakeJob("anli", ns).Shards(2).APIKey("teacher-key", "key").Obj())

	// Annotating: an Indexed Job of two shards, owned by the job; live progress from the ConfigMap.
	waitForStage(t, ns, dj.Name, v1alpha1.StageAnnotating)
	aj := waitForStageJob(t, ns, dj.Name, StageAnnotation)
	if !metav1.IsControlledBy(aj, dj) || *aj.Spec.Completions != 2 || *aj.Spec.Parallelism != 2 {
		t.Errorf("annotation job: owner %v, completions %d, parallelism %d", aj.OwnerReferences, *aj.Spec.Completions, *aj.Spec.Parallelism)
	}
	patchProgress(t, ns, dj.Name, "annotate-0", contract.AnnotateProgress{Done: 3, Total: 10})
	patchProgress(t, ns, dj.Name, "annotate-1", contract.AnnotateProgress{Done: 4, Total: 10})
	eventually(t, "annotation progress in status", func() error {
		got := getJob(t, ns, dj.Name).Status
		if got.Progress != "7/20" || got.Annotation == nil || got.Annotation.Done != 7 || got.Annotation.ShardsTotal != 2 {
			return fmt.Errorf("progress %q, annotation %+v", got.Progress, got.Annotation)
		}
		return nil
	})
	if n := countStageJobs(t, ns, dj.Name, StageTraining); n != 0 {
		t.Fatalf("training started before annotation finished (%d jobs)", n)
	}

	// Training: once every shard succeeded, status.annotation sums the shards' termination messages.
	finishShards(t, ns, dj.Name,
		annotateMsg(t, contract.AnnotateResult{Shard: 0, Total: 500, OK: 480, Unparseable: 12, LabelMismatch: 5, TeacherErrors: 3, CacheHits: 40, PromptTokens: 256000, CompletionTokens: 40000, Requests: 457, DatasetHash: datasetHash,
			SkippedLines: 1, FirstSkippedLine: 41, FirstSkippedError: "not a JSON object: unexpected end of JSON input"}),
		annotateMsg(t, contract.AnnotateResult{Shard: 1, Total: 400, OK: 390, Unparseable: 4, LabelMismatch: 6, CacheHits: 2, PromptTokens: 1000, CompletionTokens: 500, Requests: 398, DatasetHash: datasetHash,
			SkippedLines: 2, FirstSkippedLine: 18, FirstSkippedError: `no field "input" (fields: id, text)`}))
	got := waitForStage(t, ns, dj.Name, v1alpha1.StageTraining)
	wantAnnotation := v1alpha1.AnnotationStatus{Total: 900, Done: 900, OK: 870, Rejected: 27, TeacherErrors: 3,
		PromptTokens: 257000, CompletionTokens: 40500, Tokens: 297500, Requests: 855, CacheHits: 42, SkippedLines: 3, ShardsSucceeded: 2, ShardsTotal: 2, DatasetHash: datasetHash}
	if *got.Status.Annotation != wantAnnotation {
		t.Errorf("status.annotation = %+v, want %+v", *got.Status.Annotation, wantAnnotation)
	}
	if c := findCondition(got, v1alpha1.ConditionAnnotated); c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(v1alpha1.ReasonAnnotationSucceeded) ||
		!strings.Contains(c.Message, `3 dataset lines skipped; first: line 18: no field "input" (fields: id, text)`) {
		t.Errorf("Annotated condition = %+v, want the skipped lines and the first one in its message", c)
	}
	waitForStageJob(t, ns, dj.Name, StageTraining)
	patchProgress(t, ns, dj.Name, contract.TrainProgressKey(0), contract.TrainProgress{Step: 30, TotalSteps: 100, Loss: 0.5, LabelLoss: 0.25, RationaleLoss: 0.25})
	eventually(t, "training progress in status", func() error {
		got := getJob(t, ns, dj.Name).Status
		if got.Progress != "step 30/100" || got.Training == nil || got.Training.Loss != "0.5000" {
			return fmt.Errorf("progress %q, training %+v", got.Progress, got.Training)
		}
		return nil
	})

	// Succeeded: a StudentModel not owned by the job, with the job's metrics and provenance in its spec
	// (its status is the StudentModel controller's alone); the workspace PVC now belongs to the model.
	finishTraining(t, ns, dj.Name, trainMsg(t, contract.TrainResult{Steps: 100, TrainLoss: 0.42, EvalAccuracy: 0.875, EvalExamples: 400, ModelDir: "/workspace/model",
		BestStep: 80, WallSeconds: 61.5, Evaluation: goldEvaluation(400, 0.875, 0.9, 0.91)}))
	got = waitForStage(t, ns, dj.Name, v1alpha1.StageSucceeded)
	wantEval := v1alpha1.EvaluationStatus{Metric: v1alpha1.MetricAccuracy, Examples: 400, Accuracy: "0.8750", TeacherAccuracy: "0.9000",
		Agreement: "0.9100", BestStep: 80}
	if got.Status.StudentModel != dj.Name || got.Status.Evaluation == nil || *got.Status.Evaluation != wantEval ||
		got.Status.CompletionTime == nil || got.Status.ObservedGeneration != got.Generation || len(got.Status.Experiments) != 0 {
		t.Errorf("succeeded status = %+v, evaluation %+v, want %+v", got.Status, got.Status.Evaluation, wantEval)
	}
	if c := findCondition(got, v1alpha1.ConditionTrained); c == nil || !strings.Contains(c.Message, "student accuracy 0.8750, teacher accuracy 0.9000") {
		t.Errorf("Trained condition = %+v, want the student's and the teacher's accuracy", c)
	}
	if cells := tableRow(t, "distillationjobs", ns, dj.Name); cells["Accuracy"] != "0.8750" || cells["Teacher"] != "0.9000" || cells["Agreement"] != "0.9100" {
		t.Errorf("kubectl get dj columns = %v, want Accuracy 0.8750 and Teacher 0.9000 side by side", cells)
	}
	if c := findCondition(got, v1alpha1.ConditionComplete); c.Status != metav1.ConditionTrue || c.Reason != string(v1alpha1.ReasonSucceeded) {
		t.Errorf("Complete condition = %+v", c)
	}
	sm, err := getModel(ctx, ns, dj.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(sm.OwnerReferences) != 0 {
		t.Errorf("StudentModel is owned by %v; it must outlive the job", sm.OwnerReferences)
	}
	wantMetrics := v1alpha1.ModelMetrics{Metric: v1alpha1.MetricAccuracy, Accuracy: "0.8750", TeacherAccuracy: "0.9000", Agreement: "0.9100",
		EvalExamples: 400, BestStep: 80}
	if m := sm.Spec.Metrics; m == nil || *m != wantMetrics {
		t.Errorf("StudentModel metrics = %+v, want %+v", m, wantMetrics)
	}
	wantProvenance := v1alpha1.ModelProvenance{Job: dj.Name, JobUID: string(dj.UID), TeacherModel: "teacher-70b",
		TeacherTemperature: "0", TeacherMaxTokens: 256, PromptHash: contract.PromptHash(contractTask(dj, InlineExamples(dj))),
		Dataset: "configmap/dataset/train.jsonl", DatasetHash: datasetHash, Mode: v1alpha1.TrainingModeStepByStep,
		TeacherSpend: &v1alpha1.TeacherSpend{Requests: 855, PromptTokens: 257000, CompletionTokens: 40500, CacheHits: 42}}
	if p := sm.Spec.Provenance; p == nil || !equality.Semantic.DeepEqual(*p, wantProvenance) {
		t.Errorf("StudentModel provenance = %+v, want %+v", p, wantProvenance)
	}
	if want := "jobs/" + dj.Name + "-" + string(dj.UID) + "/model"; sm.Spec.Artifact.ClaimName != dj.Name+"-workspace" || sm.Spec.Artifact.Path != want {
		t.Errorf("StudentModel artifact = %+v, want path %s", sm.Spec.Artifact, want)
	}
	eventually(t, "the workspace PVC owned by the StudentModel", func() error {
		var pvc corev1.PersistentVolumeClaim
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: dj.Name + "-workspace"}, &pvc); err != nil {
			return err
		}
		if !metav1.IsControlledBy(&pvc, sm) || len(pvc.OwnerReferences) != 1 {
			return fmt.Errorf("owners %+v", pvc.OwnerReferences)
		}
		return nil
	})

	t.Run("settled job causes no writes", func(t *testing.T) {
		eventually(t, "the StudentModel settled", func() error {
			sm, err := getModel(ctx, ns, dj.Name)
			if err != nil {
				return err
			}
			if sm.Status.ObservedGeneration != sm.Generation || sm.Status.Endpoint == "" {
				return fmt.Errorf("model status %+v", sm.Status)
			}
			return nil
		})
		// Give the last watch events of the writes above time to arrive, then count.
		before, rv := writes.count(ns), getJob(t, ns, dj.Name).ResourceVersion
		eventually(t, "a quiet second", func() error {
			time.Sleep(time.Second)
			if now := writes.count(ns); now != before {
				before = now
				return fmt.Errorf("still writing (%d writes)", now)
			}
			return nil
		})
		rv = getJob(t, ns, dj.Name).ResourceVersion
		consistently(t, "no writes by the operator", 3*time.Second, func() error {
			if n := writes.count(ns); n != before {
				return fmt.Errorf("%d writes after the job settled", n-before)
			}
			if cur := getJob(t, ns, dj.Name).ResourceVersion; cur != rv {
				return fmt.Errorf("job resourceVersion moved %s -> %s", rv, cur)
			}
			return nil
		})
	})

	t.Run("the API key never leaves its Secret", func(t *testing.T) {
		assertNoSecret := func(what string, obj any) {
			b, _ := json.Marshal(obj)
			if strings.Contains(string(b), secretAPIKey) {
				t.Errorf("the API key appears in %s", what)
			}
		}
		assertNoSecret("the job", getJob(t, ns, dj.Name))
		var cms corev1.ConfigMapList
		var events corev1.EventList
		var jobs batchv1.JobList
		for _, l := range []client.ObjectList{&cms, &events, &jobs} {
			if err := k8sClient.List(ctx, l, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
		}
		assertNoSecret("config maps", cms)
		assertNoSecret("events", events)
		assertNoSecret("stage jobs", jobs)
		if len(events.Items) == 0 {
			t.Errorf("no events were recorded for the stage transitions")
		}
		env := aj.Spec.Template.Spec.Containers[0].Env
		found := false
		for _, e := range env {
			if e.Name == teacherAPIKeyEnv {
				found = e.Value == "" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "teacher-key"
			}
		}
		if !found {
			t.Errorf("annotation pods do not get the API key from the Secret: %+v", env)
		}
	})
}

func countStageJobs(t *testing.T, ns, djName, stage string) int {
	t.Helper()
	var jobs batchv1.JobList
	if err := k8sClient.List(context.Background(), &jobs, client.InNamespace(ns), client.MatchingLabels{LabelJob: djName, LabelStage: stage}); err != nil {
		t.Fatal(err)
	}
	return len(jobs.Items)
}

func TestSuspendAndResume(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("held", ns).Suspend(true).Obj())
	got := waitForCondition(t, ns, "held", v1alpha1.ConditionSuspended, metav1.ConditionTrue, v1alpha1.ReasonSuspended)
	aj := waitForStageJob(t, ns, "held", StageAnnotation)
	if !ptr.Deref(aj.Spec.Suspend, false) {
		t.Errorf("the annotation Job of a suspended job is not suspended")
	}
	waitForStage(t, ns, "held", v1alpha1.StageSuspended)
	if c := findCondition(got, v1alpha1.ConditionComplete); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("a suspended job must not be complete: %+v", c)
	}

	if err := updateJobSpec(ns, "held", func(dj *v1alpha1.DistillationJob) { dj.Spec.Suspend = ptr.To(false) }); err != nil {
		t.Fatal(err)
	}
	waitForCondition(t, ns, "held", v1alpha1.ConditionSuspended, metav1.ConditionFalse, v1alpha1.ReasonResumed)
	eventually(t, "the annotation Job resumed", func() error {
		j := waitForStageJob(t, ns, "held", StageAnnotation)
		if ptr.Deref(j.Spec.Suspend, true) {
			return fmt.Errorf("spec.suspend is still %v", ptr.Deref(j.Spec.Suspend, true))
		}
		return nil
	})
	waitForStage(t, ns, "held", v1alpha1.StageAnnotating)

	if err := updateJobSpec(ns, "held", func(dj *v1alpha1.DistillationJob) { dj.Spec.Suspend = ptr.To(true) }); err != nil {
		t.Fatal(err)
	}
	waitForCondition(t, ns, "held", v1alpha1.ConditionSuspended, metav1.ConditionTrue, v1alpha1.ReasonSuspended)
	eventually(t, "the annotation Job suspended again", func() error {
		if j := waitForStageJob(t, ns, "held", StageAnnotation); !ptr.Deref(j.Spec.Suspend, false) {
			return fmt.Errorf("spec.suspend is false")
		}
		return nil
	})
}

func TestKueueQueueLabelIsCopiedToStageJobs(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("queued", ns).Label(LabelKueueQueue, "gpu-queue").Obj())
	aj := waitForStageJob(t, ns, "queued", StageAnnotation)
	if aj.Labels[LabelKueueQueue] != "gpu-queue" {
		t.Errorf("annotation Job labels = %v", aj.Labels)
	}
}

func TestTeacherUnreachableFailsTheJob(t *testing.T) {
	ns := newNamespace(t)
	const endpoint = "http://vllm.teachers:8000/v1"
	createJob(t, utiltesting.MakeJob("unreachable", ns).Endpoint(endpoint).Shards(2).Obj())
	aj := waitForStageJob(t, ns, "unreachable", StageAnnotation)
	msg := annotateMsg(t, contract.AnnotateResult{Shard: 1, Total: 500,
		Error:  "teacher " + endpoint + " unreachable: the first 8 requests failed: dial tcp 10.0.0.17:8000: connect: connection refused",
		Reason: contract.ReasonTeacherUnreachable})
	createPod(t, utiltesting.MakePod(aj.Name+"-1-x", ns).StageOf(aj, "unreachable", StageAnnotation).Index(1).Failed(contract.ExitCodePermanent, msg).Obj())
	updateJobStatus(t, aj, func(j *batchv1.Job) {
		utiltesting.FailJob(j, "PodFailurePolicy", "Container main for pod exited with code 3")
	})

	got := waitForCondition(t, ns, "unreachable", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonTeacherUnreachable)
	c := findCondition(got, v1alpha1.ConditionFailed)
	if !strings.Contains(c.Message, endpoint) || !strings.Contains(c.Message, "annotation shard 1") {
		t.Errorf("Failed message %q should name the endpoint and the shard", c.Message)
	}
	if a := findCondition(got, v1alpha1.ConditionAnnotated); a.Status != metav1.ConditionFalse || a.Reason != string(v1alpha1.ReasonTeacherUnreachable) {
		t.Errorf("Annotated condition = %+v", a)
	}
	if got.Status.Stage != v1alpha1.StageFailed || got.Status.CompletionTime == nil {
		t.Errorf("stage %s, completionTime %v", got.Status.Stage, got.Status.CompletionTime)
	}
	eventually(t, "a Warning event with reason TeacherUnreachable", func() error {
		var events corev1.EventList
		if err := k8sClient.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == string(v1alpha1.ReasonTeacherUnreachable) && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("%d events, none TeacherUnreachable", len(events.Items))
	})
	if n := countStageJobs(t, ns, "unreachable", StageTraining); n != 0 {
		t.Errorf("a training Job started after annotation failed")
	}
}

func TestTrainingFailureFailsTheJob(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("oom", ns).Obj())
	finishShards(t, ns, "oom", annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10}))
	tj := waitForStageJob(t, ns, "oom", StageTraining)
	// No JSON summary: the kubelet's fallback to the log tail (FallbackToLogsOnError).
	createPod(t, utiltesting.MakePod(tj.Name+"-abc", ns).StageOf(tj, "oom", StageTraining).Failed(1, "torch.OutOfMemoryError: CUDA out of memory").Obj())
	updateJobStatus(t, tj, func(j *batchv1.Job) {
		utiltesting.FailJob(j, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	})

	got := waitForCondition(t, ns, "oom", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonTrainingFailed)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "CUDA out of memory") {
		t.Errorf("Failed message %q should carry the pod's termination message", c.Message)
	}
	if c := findCondition(got, v1alpha1.ConditionTrained); c.Reason != string(v1alpha1.ReasonTrainingFailed) {
		t.Errorf("Trained condition = %+v", c)
	}
	if _, err := getModel(context.Background(), ns, "oom"); !apierrors.IsNotFound(err) {
		t.Errorf("a failed job made a StudentModel (err %v)", err)
	}
}

func TestNoUsableAnnotationsFailsTheJob(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("empty", ns).Obj())
	finishShards(t, ns, "empty", annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 0, Unparseable: 7, TeacherErrors: 3}))
	got := waitForCondition(t, ns, "empty", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonNoUsableAnnotations)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "7 rejected") || !strings.Contains(c.Message, "3 teacher errors") {
		t.Errorf("Failed message %q should give the counts", c.Message)
	}
	if n := countStageJobs(t, ns, "empty", StageTraining); n != 0 {
		t.Errorf("a training Job started without usable annotations")
	}
}

func TestTTLDeletesTheJobButKeepsTheModel(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	createJob(t, utiltesting.MakeJob("short-lived", ns).TTL(1).Obj())
	finishShards(t, ns, "short-lived", annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10}))
	finishTraining(t, ns, "short-lived", trainMsg(t, contract.TrainResult{Steps: 5, EvalAccuracy: 1, EvalExamples: 1}))
	eventually(t, "the job deleted after its TTL", func() error {
		var dj v1alpha1.DistillationJob
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "short-lived"}, &dj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (stage %s, err %v)", dj.Status.Stage, err)
	})
	if _, err := getModel(ctx, ns, "short-lived"); err != nil {
		t.Errorf("the StudentModel went with the job: %v", err)
	}
}

func TestActiveDeadlineFailsTheJob(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("slow", ns).Deadline(1).Obj())
	waitForStageJob(t, ns, "slow", StageAnnotation)
	got := waitForCondition(t, ns, "slow", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonDeadlineExceeded)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "activeDeadlineSeconds") {
		t.Errorf("Failed message %q should name spec.activeDeadlineSeconds", c.Message)
	}
	assertFailedForKstatus(t, ns, "slow", v1alpha1.ReasonDeadlineExceeded)
	eventually(t, "the running stage Job deleted", func() error {
		if n := countStageJobs(t, ns, "slow", StageAnnotation); n != 0 {
			return fmt.Errorf("%d annotation jobs left", n)
		}
		return nil
	})
}

func TestExamplesFromIsWaitedForAndValidated(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	createJob(t, utiltesting.MakeJob("waits", ns).Examples().ExamplesFrom("shots", "examples.jsonl").Obj())
	got := waitForCondition(t, ns, "waits", v1alpha1.ConditionComplete, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec)
	if got.Status.Stage != v1alpha1.StagePending || !strings.Contains(findCondition(got, v1alpha1.ConditionComplete).Message, "spec.task.examplesFrom") {
		t.Errorf("a job waiting for its examples: stage %s, conditions %+v", got.Status.Stage, got.Status.Conditions)
	}
	if isTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
		t.Errorf("a missing examplesFrom ConfigMap must be waited for, not fail the job")
	}

	bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-shots"},
		Data: map[string]string{"examples.jsonl": `{"input":"a","rationale":"b","label":"yes"}` + "\n" + `{"input": broken`}}
	if err := k8sClient.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	createJob(t, utiltesting.MakeJob("broken", ns).Examples().ExamplesFrom("bad-shots", "examples.jsonl").Obj())
	got = waitForCondition(t, ns, "broken", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "line 2") {
		t.Errorf("Failed message %q should name the bad line", c.Message)
	}
	assertFailedForKstatus(t, ns, "broken", v1alpha1.ReasonInvalidSpec)
}
