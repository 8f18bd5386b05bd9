package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The health table: what kstatus (sigs.k8s.io/cli-utils, the library Flux and kubectl-based rollouts use)
// computes from the live objects in every state. These tests read the objects from the apiserver as
// unstructured, exactly as kstatus's users do.

// liveStatus computes kstatus over the live object of the given kind.
func liveStatus(t *testing.T, kind, ns, name string) (*kstatus.Result, *unstructured.Unstructured) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind(kind)
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatalf("getting %s %s: %v", kind, name, err)
	}
	res, err := kstatus.Compute(u)
	if err != nil {
		t.Fatalf("kstatus.Compute(%s %s): %v", kind, name, err)
	}
	return res, u
}

// waitForKstatus waits until kstatus reads want from the live object, and returns its result.
func waitForKstatus(t *testing.T, kind, ns, name string, want kstatus.Status) *kstatus.Result {
	t.Helper()
	var res *kstatus.Result
	eventually(t, fmt.Sprintf("kstatus %s for %s %s", want, kind, name), func() error {
		var u *unstructured.Unstructured
		res, u = liveStatus(t, kind, ns, name)
		if res.Status != want {
			return fmt.Errorf("kstatus reads %s (%s); conditions %v", res.Status, res.Message, u.Object["status"])
		}
		return nil
	})
	return res
}

// assertKstatusHolds checks kstatus keeps reading want for a while (no flapping back to Current).
func assertKstatusHolds(t *testing.T, kind, ns, name string, want kstatus.Status) {
	t.Helper()
	consistently(t, fmt.Sprintf("kstatus %s for %s %s", want, kind, name), shortWhile, func() error {
		if res, _ := liveStatus(t, kind, ns, name); res.Status != want {
			return fmt.Errorf("kstatus reads %s (%s)", res.Status, res.Message)
		}
		return nil
	})
}

func TestKstatusReadsEveryStateOfAJob(t *testing.T) {
	ns := newNamespace(t)
	const dj = "health"
	createJob(t, utiltesting.MakeJob(dj, ns).Obj())

	// Annotating.
	aj := waitForStageJob(t, ns, dj, StageAnnotation)
	res := waitForKstatus(t, "DistillationJob", ns, dj, kstatus.InProgressStatus)
	if !strings.Contains(res.Message, "annotation") {
		t.Errorf("kstatus message %q should say the job is annotating", res.Message)
	}

	// Unschedulable, then a pod waiting for its volumes: still in progress, saying why.
	createPod(t, utiltesting.MakePod(aj.Name+"-0-a", ns).StageOf(aj, dj, StageAnnotation).Index(0).
		Unschedulable("0/3 nodes are available: 3 Insufficient memory.").Obj())
	waitForCondition(t, ns, dj, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonUnschedulable)
	assertKstatusHolds(t, "DistillationJob", ns, dj, kstatus.InProgressStatus)
	if err := k8sClient.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: aj.Name + "-0-a"}}); err != nil {
		t.Fatal(err)
	}
	createPod(t, utiltesting.MakePod(aj.Name+"-0-b", ns).StageOf(aj, dj, StageAnnotation).Index(0).Waiting("ContainerCreating", "").Obj())
	waitForCondition(t, ns, dj, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonPodsWaiting)
	assertKstatusHolds(t, "DistillationJob", ns, dj, kstatus.InProgressStatus)

	// Suspended, then resumed.
	if err := updateJobSpec(ns, dj, func(j *v1alpha1.DistillationJob) { j.Spec.Suspend = ptr.To(true) }); err != nil {
		t.Fatal(err)
	}
	waitForCondition(t, ns, dj, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonSuspended)
	assertKstatusHolds(t, "DistillationJob", ns, dj, kstatus.InProgressStatus)
	if err := updateJobSpec(ns, dj, func(j *v1alpha1.DistillationJob) { j.Spec.Suspend = ptr.To(false) }); err != nil {
		t.Fatal(err)
	}

	// Training.
	finishShards(t, ns, dj, annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10}))
	waitForCondition(t, ns, dj, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonTraining)
	assertKstatusHolds(t, "DistillationJob", ns, dj, kstatus.InProgressStatus)

	// Succeeded.
	finishTraining(t, ns, dj, trainMsg(t, contract.TrainResult{Steps: 5, EvalAccuracy: 0.9, EvalExamples: 1}))
	waitForKstatus(t, "DistillationJob", ns, dj, kstatus.CurrentStatus)
	got := waitForCondition(t, ns, dj, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	for _, c := range []v1alpha1.ConditionType{v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled} {
		if isTrue(got.Status.Conditions, c) {
			t.Errorf("a succeeded job has %s=True", c)
		}
	}

	// Spec changed: in progress until the operator observed the new generation, then current again.
	_, u := liveStatus(t, "DistillationJob", ns, dj)
	u.SetGeneration(u.GetGeneration() + 1)
	if res, err := kstatus.Compute(u); err != nil || res.Status != kstatus.InProgressStatus {
		t.Errorf("an unobserved generation reads %v (%v), want InProgress", res, err)
	}
	if err := updateJobSpec(ns, dj, func(j *v1alpha1.DistillationJob) { j.Spec.TTLSecondsAfterFinished = ptr.To[int32](3600) }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new generation observed", func() error {
		got := getJob(t, ns, dj)
		if got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observed %d of %d", got.Status.ObservedGeneration, got.Generation)
		}
		return nil
	})
	waitForKstatus(t, "DistillationJob", ns, dj, kstatus.CurrentStatus)
}

func TestKstatusReadsAJobWaitingForItsExamplesAsInProgress(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("pending", ns).Examples().ExamplesFrom("shots", "examples.jsonl").Obj())
	waitForCondition(t, ns, "pending", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec)
	res := waitForKstatus(t, "DistillationJob", ns, "pending", kstatus.InProgressStatus)
	if !strings.Contains(res.Message, "examplesFrom") {
		t.Errorf("kstatus message %q should say what the job waits for", res.Message)
	}
}

// assertFailedForKstatus checks a failed job reads Failed with its reason, and keeps reading it.
func assertFailedForKstatus(t *testing.T, ns, name string, reason v1alpha1.ConditionReason) {
	t.Helper()
	res := waitForKstatus(t, "DistillationJob", ns, name, kstatus.FailedStatus)
	if len(res.Conditions) != 1 || res.Conditions[0].Reason != string(reason) {
		t.Errorf("kstatus conditions %+v, want Stalled with reason %s", res.Conditions, reason)
	}
	assertKstatusHolds(t, "DistillationJob", ns, name, kstatus.FailedStatus)
}

func TestStagePodConfigErrorFailsTheJobWithTheKubeletsWords(t *testing.T) {
	ns := newNamespace(t)
	const dj = "badimage"
	createJob(t, utiltesting.MakeJob(dj, ns).Obj())
	aj := waitForStageJob(t, ns, dj, StageAnnotation)
	const kubelet = `Back-off pulling image "registry.example/annotator:typo": not found`
	createPod(t, utiltesting.MakePod(aj.Name+"-0-x", ns).StageOf(aj, dj, StageAnnotation).Index(0).Waiting("ImagePullBackOff", kubelet).Obj())

	// Within the grace period the wait is reported; past it (2s in this suite) the job fails.
	got := waitForCondition(t, ns, dj, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonStagePodConfigError)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, kubelet) || !strings.Contains(c.Message, aj.Name+"-0-x") {
		t.Errorf("Failed message %q should quote the kubelet and name the pod", c.Message)
	}
	assertFailedForKstatus(t, ns, dj, v1alpha1.ReasonStagePodConfigError)
	eventually(t, "the stuck stage Job deleted", func() error {
		if n := countStageJobs(t, ns, dj, StageAnnotation); n != 0 {
			return fmt.Errorf("%d annotation jobs left", n)
		}
		return nil
	})
}

func TestInvalidImageNameFailsAtOnce(t *testing.T) {
	ns := newNamespace(t)
	const dj = "badname"
	createJob(t, utiltesting.MakeJob(dj, ns).Obj())
	tj := waitForStageJob(t, ns, dj, StageAnnotation)
	createPod(t, utiltesting.MakePod(tj.Name+"-0-x", ns).StageOf(tj, dj, StageAnnotation).Index(0).
		Waiting("InvalidImageName", `couldn't parse image name "UPPER:case": invalid reference format`).Obj())
	got := waitForCondition(t, ns, dj, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonStagePodConfigError)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "invalid reference format") {
		t.Errorf("Failed message %q should quote the kubelet", c.Message)
	}
}

func TestAChildTheAPIServerRefusesFailsTheJobBeforeTheTeacherIsPaid(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	// Only the apiserver can judge this: a limit range caps a container's memory below what the trainer asks.
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "small"}, Spec: corev1.LimitRangeSpec{
		Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("3Gi")}}},
	}}
	if err := k8sClient.Create(ctx, lr); err != nil {
		t.Fatal(err)
	}
	const dj = "toobig"
	createJob(t, utiltesting.MakeJob(dj, ns).TrainingResources(corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Gi")},
	}).Obj())
	got := waitForCondition(t, ns, dj, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	c := findCondition(got, v1alpha1.ConditionFailed)
	if !strings.Contains(c.Message, "training pod of Job "+dj+"-train") || !strings.Contains(c.Message, "maximum memory usage per Container is 3Gi") {
		t.Errorf("Failed message %q should name the training Job and quote the apiserver", c.Message)
	}
	assertFailedForKstatus(t, ns, dj, v1alpha1.ReasonInvalidSpec)
	if n := countStageJobs(t, ns, dj, StageAnnotation); n != 0 {
		t.Errorf("annotation started (the teacher would be paid) for a job whose training pod is refused")
	}
	eventually(t, "a Warning event with reason InvalidSpec", func() error { return warningEvent(ns, v1alpha1.ReasonInvalidSpec) })
}

func TestARefusedWorkspaceClaimFailsTheJob(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "claims"}, Spec: corev1.LimitRangeSpec{
		Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypePersistentVolumeClaim, Max: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}}
	if err := k8sClient.Create(ctx, lr); err != nil {
		t.Fatal(err)
	}
	createJob(t, utiltesting.MakeJob("bigclaim", ns).StorageSize("5Gi").Obj())
	got := waitForCondition(t, ns, "bigclaim", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "PersistentVolumeClaim bigclaim-workspace") {
		t.Errorf("Failed message %q should name the claim", c.Message)
	}
}

// warningEvent finds a Warning event with the reason in the namespace.
func warningEvent(ns string, reason v1alpha1.ConditionReason) error {
	var events corev1.EventList
	if err := k8sClient.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		return err
	}
	for _, e := range events.Items {
		if e.Reason == string(reason) && e.Type == corev1.EventTypeWarning {
			return nil
		}
	}
	return fmt.Errorf("%d events, none a Warning %s", len(events.Items), reason)
}

func TestKstatusReadsEveryStateOfAStudentModel(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	sm := utiltesting.MakeModel("served", ns).Replicas(2).Obj()
	if err := k8sClient.Create(ctx, sm); err != nil {
		t.Fatal(err)
	}
	d := waitForDeployment(t, ns, sm.Name+"-student")

	// Not ready, then serving.
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonReplicasNotReady)
	waitForKstatus(t, "StudentModel", ns, sm.Name, kstatus.InProgressStatus)
	setDeploymentReady(t, d, 2)
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonServing)
	waitForKstatus(t, "StudentModel", ns, sm.Name, kstatus.CurrentStatus)

	// A replica lost: not Ready any more (no stale Ready).
	setDeploymentReady(t, d, 1)
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonReplicasNotReady)
	waitForKstatus(t, "StudentModel", ns, sm.Name, kstatus.InProgressStatus)

	// Stalled: the rollout exceeded its progress deadline.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur appsv1.Deployment
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
			return err
		}
		utiltesting.DeploymentStuck(&cur, `ReplicaSet "served-student-5d8" has timed out progressing.`)
		return k8sClient.Status().Update(ctx, &cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonProgressDeadlineExceeded)
	res := waitForKstatus(t, "StudentModel", ns, sm.Name, kstatus.FailedStatus)
	if !strings.Contains(res.Message, "timed out progressing") {
		t.Errorf("kstatus message %q should quote the Deployment", res.Message)
	}

	// Scaled to zero on purpose, and stopped: current, not waiting forever.
	if err := updateModel(ns, sm.Name, func(m *v1alpha1.StudentModel) { m.Spec.Serving.Replicas = ptr.To[int32](0) }); err != nil {
		t.Fatal(err)
	}
	setDeploymentReady(t, d, 0)
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonScaledToZero)
	waitForKstatus(t, "StudentModel", ns, sm.Name, kstatus.CurrentStatus)
	if err := updateModel(ns, sm.Name, func(m *v1alpha1.StudentModel) {
		m.Spec.Serving.Replicas = ptr.To[int32](1)
		m.Spec.Stopped = true
	}); err != nil {
		t.Fatal(err)
	}
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonStopped)
	waitForKstatus(t, "StudentModel", ns, sm.Name, kstatus.CurrentStatus)
}

// failJobWith fails a stage Job as the Job controller would, with one failed pod saying msg.
func failJobWith(t *testing.T, ns, djName, stage string, exitCode int32, msg string) {
	t.Helper()
	j := waitForStageJob(t, ns, djName, stage)
	createPod(t, utiltesting.MakePod(j.Name+"-0-f", ns).StageOf(j, djName, stage).Index(0).Failed(exitCode, msg).Obj())
	updateJobStatus(t, j, func(j *batchv1.Job) {
		utiltesting.FailJob(j, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	})
}

func TestKstatusReadsEveryFailureAsFailed(t *testing.T) {
	ns := newNamespace(t)
	cases := map[string]struct {
		drive  func(t *testing.T, name string)
		reason v1alpha1.ConditionReason
	}{
		"teacher-unreachable": {func(t *testing.T, name string) {
			failJobWith(t, ns, name, StageAnnotation, contract.ExitCodePermanent, annotateMsg(t, contract.AnnotateResult{
				Error: "teacher unreachable", Reason: contract.ReasonTeacherUnreachable}))
		}, v1alpha1.ReasonTeacherUnreachable},
		"annotation-failed": {func(t *testing.T, name string) {
			failJobWith(t, ns, name, StageAnnotation, 1, "panic: boom")
		}, v1alpha1.ReasonAnnotationFailed},
		"no-usable": {func(t *testing.T, name string) {
			finishShards(t, ns, name, annotateMsg(t, contract.AnnotateResult{Total: 3, Unparseable: 3}))
		}, v1alpha1.ReasonNoUsableAnnotations},
		"training-failed": {func(t *testing.T, name string) {
			finishShards(t, ns, name, annotateMsg(t, contract.AnnotateResult{Total: 3, OK: 3}))
			failJobWith(t, ns, name, StageTraining, 1, "CUDA out of memory")
		}, v1alpha1.ReasonTrainingFailed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			createJob(t, utiltesting.MakeJob(name, ns).Obj())
			tc.drive(t, name)
			assertFailedForKstatus(t, ns, name, tc.reason)
		})
	}
}

// refuseConfigMapsIn registers an admission webhook for ConfigMaps of the namespace that nothing answers
// (a policy webhook that is down, failurePolicy Fail): the apiserver fails such writes with an internal
// error, neither the spec's fault nor the operator's to decide. It returns once the apiserver calls it, and
// a function that removes it.
func refuseConfigMapsIn(t *testing.T, ns string) (remove func()) {
	t.Helper()
	ctx := contextFor(t)
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	wh := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "down-" + ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "down.distillery.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/validate")},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](2),
		}},
	}
	if err := k8sClient.Create(ctx, wh); err != nil {
		t.Fatal(err)
	}
	remove = func() {
		if err := k8sClient.Delete(context.Background(), wh); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting webhook %s: %v", wh.Name, err)
		}
	}
	t.Cleanup(remove)
	// The apiserver loads webhook configurations from its own informer: wait until it calls this one.
	eventually(t, "the apiserver calling the webhook", func() error {
		probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}}
		err := k8sClient.Create(ctx, probe, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			return fmt.Errorf("a ConfigMap create (dry run) returned %v", err)
		}
		return nil
	})
	return remove
}

func TestAFailingPassSaysReconcileErrorUntilAPassSucceeds(t *testing.T) {
	ns := newNamespace(t)
	remove := refuseConfigMapsIn(t, ns)
	const dj = "webhookdown"
	jw := watchJob(t, ns, dj)
	createJob(t, utiltesting.MakeJob(dj, ns).Obj())

	// Every pass fails applying the workspace ConfigMaps: retried, and said on Ready and Reconciling.
	ready := jw.condition(t, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonReconcileError)
	got := waitForCondition(t, ns, dj, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonReconcileError)
	for _, c := range []metav1.Condition{ready, *findCondition(got, v1alpha1.ConditionReconciling)} {
		if !strings.HasPrefix(c.Message, "retrying after an error: ") || !strings.Contains(c.Message, "applying ConfigMap") ||
			!strings.Contains(c.Message, "failed calling webhook") {
			t.Errorf("%s message %q should say the pass is retried and quote the error", c.Type, c.Message)
		}
	}
	if c := findCondition(got, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Stalled = %+v, want False: a pass that failed is retried, the job has not failed", c)
	}
	if isTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
		t.Errorf("a failing pass failed the job: %+v", findCondition(got, v1alpha1.ConditionFailed))
	}
	eventually(t, "a Warning event with reason ReconcileError", func() error { return warningEvent(ns, v1alpha1.ReasonReconcileError) })
	if n := countStageJobs(t, ns, dj, StageAnnotation); n != 0 {
		t.Errorf("annotation started although the workspace could not be applied (%d jobs)", n)
	}

	// The webhook gone, the next pass succeeds and the conditions say what the job does again. A label
	// change starts that pass now: the failed passes' backoff has grown with the test's own steps.
	remove()
	eventually(t, "the apiserver no longer calling the webhook", func() error {
		probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}}
		return k8sClient.Create(context.Background(), probe, client.DryRunAll)
	})
	if err := k8sClient.Patch(context.Background(), &v1alpha1.DistillationJob{ObjectMeta: metav1.ObjectMeta{Name: dj, Namespace: ns}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"test.distillery.dev/nudge":"1"}}}`))); err != nil {
		t.Fatal(err)
	}
	got = waitForCondition(t, ns, dj, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAnnotating)
	if c := findCondition(got, v1alpha1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(v1alpha1.ReasonAnnotating) {
		t.Errorf("Reconciling = %+v after a pass succeeded, want True/Annotating", c)
	}
}

func TestKstatusReadsAStudentModelWhosePodsAreRefusedAsFailed(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	sm := utiltesting.MakeModel("refused", ns).Replicas(2).Obj()
	if err := k8sClient.Create(ctx, sm); err != nil {
		t.Fatal(err)
	}
	d := waitForDeployment(t, ns, sm.Name+"-student")
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonReplicasNotReady)

	// The ReplicaSet cannot create pods (a quota refuses them): the Deployment controller reports
	// ReplicaFailure while its rollout still counts as progressing.
	const refusal = `pods "refused-student-5d8-x7k2p" is forbidden: exceeded quota: compute, requested: limits.memory=16Gi, used: limits.memory=0, limited: limits.memory=8Gi`
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur appsv1.Deployment
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
			return err
		}
		utiltesting.DeploymentAvailable(&cur, 0)
		now := metav1.Now()
		cur.Status.Conditions = []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "ReplicaSetUpdated",
				Message: `ReplicaSet "refused-student-5d8" is progressing.`, LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate",
				Message: refusal, LastUpdateTime: now, LastTransitionTime: now},
		}
		return k8sClient.Status().Update(ctx, &cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonReplicaFailure)
	if c := meta.FindStatusCondition(got.Status.Conditions, string(v1alpha1.ConditionStalled)); !strings.Contains(c.Message, "Deployment "+d.Name+" cannot create pods") ||
		!strings.Contains(c.Message, refusal) {
		t.Errorf("Stalled message %q should name the Deployment and quote its condition", c.Message)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, string(v1alpha1.ConditionReady)); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != string(v1alpha1.ReasonReplicaFailure) || !strings.Contains(c.Message, "0/2 replicas ready") || !strings.Contains(c.Message, refusal) {
		t.Errorf("Ready = %+v, want False/ReplicaFailure with the replicas ready and the refusal", c)
	}
	res := waitForKstatus(t, "StudentModel", ns, sm.Name, kstatus.FailedStatus)
	if !strings.Contains(res.Message, "exceeded quota") {
		t.Errorf("kstatus message %q should quote the Deployment", res.Message)
	}
	assertKstatusHolds(t, "StudentModel", ns, sm.Name, kstatus.FailedStatus)
	eventually(t, "a Warning event with reason ReplicaFailure", func() error { return warningEvent(ns, v1alpha1.ReasonReplicaFailure) })

	// The quota raised, the pods are created and become ready: no stale Stalled.
	setDeploymentReady(t, d, 2)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur appsv1.Deployment
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
			return err
		}
		cur.Status.Conditions = cur.Status.Conditions[:1] // the Deployment controller removes ReplicaFailure
		return k8sClient.Status().Update(ctx, &cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionStalled, metav1.ConditionFalse, v1alpha1.ReasonNotStalled)
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonServing)
	waitForKstatus(t, "StudentModel", ns, sm.Name, kstatus.CurrentStatus)
}
