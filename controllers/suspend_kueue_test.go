package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

// The suspend policy of queued jobs against Kueue's own Workload CRD (installWorkloadCRD). Kueue
// does not run in envtest: the tests play Kueue's part (make the Workload, suspend and unsuspend the Job);
// test/e2e runs the real Kueue.

var workloadCRD struct {
	once sync.Once
	err  error
}

// installWorkloadCRD installs Kueue's Workload CRD into the suite's apiserver, once.
func installWorkloadCRD(t *testing.T) {
	t.Helper()
	workloadCRD.once.Do(func() {
		crd, err := kueueWorkloadCRD()
		if err == nil {
			_, err = envtest.InstallCRDs(restConfig, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}})
		}
		workloadCRD.err = err
	})
	if workloadCRD.err != nil {
		t.Fatalf("installing Kueue's Workload CRD: %v", workloadCRD.err)
	}
}

// kueueWorkload creates the Workload Kueue makes for a Job: labelled with the Job's UID, controlled by it.
func kueueWorkload(t *testing.T, j *batchv1.Job) *unstructured.Unstructured {
	t.Helper()
	wl := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"queueName": j.Labels[LabelKueueQueue],
			"podSets": []any{map[string]any{
				"name": "main", "count": int64(1),
				"template": map[string]any{"spec": map[string]any{"containers": []any{
					map[string]any{"name": "c", "image": "x"},
				}}},
			}},
		},
	}}
	wl.SetGroupVersionKind(workloadGVK)
	wl.SetNamespace(j.Namespace)
	wl.SetName("job-" + j.Name)
	wl.SetLabels(map[string]string{LabelKueueJobUID: string(j.UID)})
	wl.SetOwnerReferences([]metav1.OwnerReference{{
		APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID, Controller: ptr.To(true),
	}})
	if err := k8sClient.Create(context.Background(), wl); err != nil {
		t.Fatalf("creating Kueue Workload: %v", err)
	}
	return wl
}

// workloadState is a Workload's spec.active (Kueue defaults it to true) and whether the operator marked it.
func workloadState(wl *unstructured.Unstructured) (active, marked bool, err error) {
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(wl), wl); err != nil {
		return false, false, err
	}
	a, found, _ := unstructured.NestedBool(wl.Object, "spec", "active")
	return a || !found, wl.GetAnnotations()[AnnotationDeactivatedBy] != "", nil
}

// setJobSuspend writes a stage Job's spec.suspend as Kueue does (an update under Kueue's own name).
func setJobSuspend(t *testing.T, j *batchv1.Job, suspend bool) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur batchv1.Job
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(j), &cur); err != nil {
			return err
		}
		cur.Spec.Suspend = ptr.To(suspend)
		return k8sClient.Update(context.Background(), &cur, client.FieldOwner("kueue-job-controller"))
	})
	if err != nil {
		t.Fatalf("setting spec.suspend of %s: %v", j.Name, err)
	}
}

// jobSuspendUntouched checks that a stage Job keeps its suspend flag and generation (a fight over
// suspend bumps the generation) and that the operator owns no part of spec.suspend.
func jobSuspendUntouched(j *batchv1.Job, suspend bool, generation int64) func() error {
	return func() error {
		var cur batchv1.Job
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(j), &cur); err != nil {
			return err
		}
		if ptr.Deref(cur.Spec.Suspend, false) != suspend || cur.Generation != generation {
			return fmt.Errorf("spec.suspend = %v (want %v), generation %d (want %d)", ptr.Deref(cur.Spec.Suspend, false), suspend, cur.Generation, generation)
		}
		for _, mf := range cur.ManagedFields {
			if mf.Manager == FieldOwner && mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:suspend"`) {
				return fmt.Errorf("the operator owns spec.suspend (%s): it would fight Kueue", mf.Operation)
			}
		}
		return nil
	}
}

func TestQueuedJobSuspendsThroughKueueWorkload(t *testing.T) {
	installWorkloadCRD(t)
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("queued", ns).Label(LabelKueueQueue, "team-a").Label(LabelKueuePriorityClass, "high").Obj())
	aj := waitForStageJob(t, ns, "queued", StageAnnotation)
	if aj.Labels[LabelKueueQueue] != "team-a" || aj.Labels[LabelKueuePriorityClass] != "high" {
		t.Errorf("annotation Job labels = %v, want Kueue's queue-name and priority-class", aj.Labels)
	}
	// Kueue's webhook creates it suspended: the stage says it waits for admission.
	setJobSuspend(t, aj, true)
	waitForCondition(t, ns, "queued", v1alpha1.ConditionAnnotated, metav1.ConditionFalse, v1alpha1.ReasonQueued)
	// Kueue admits it: a Workload exists and the Job runs.
	wl := kueueWorkload(t, aj)
	setJobSuspend(t, aj, false)
	waitForCondition(t, ns, "queued", v1alpha1.ConditionAnnotated, metav1.ConditionFalse, v1alpha1.ReasonAnnotating)
	admitted := waitForStageJob(t, ns, "queued", StageAnnotation)
	consistently(t, "the running queued Job left alone", time.Second, jobSuspendUntouched(aj, false, admitted.Generation))

	if err := updateJobSpec(ns, "queued", func(dj *v1alpha1.DistillationJob) { dj.Spec.Suspend = ptr.To(true) }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Workload deactivated", func() error {
		if active, marked, err := workloadState(wl); err != nil || active || !marked {
			return fmt.Errorf("active %v, marked %v, %v", active, marked, err)
		}
		return nil
	})
	waitForStage(t, ns, "queued", v1alpha1.StageSuspended)
	// Kueue evicts the inactive Workload and suspends the Job; the operator writes neither back.
	setJobSuspend(t, aj, true)
	cur := waitForStageJob(t, ns, "queued", StageAnnotation)
	consistently(t, "the suspended Job and inactive Workload", 2*time.Second, func() error {
		if active, _, err := workloadState(wl); err != nil || active {
			return fmt.Errorf("workload active %v, %v", active, err)
		}
		return jobSuspendUntouched(aj, true, cur.Generation)()
	})

	if err := updateJobSpec(ns, "queued", func(dj *v1alpha1.DistillationJob) { dj.Spec.Suspend = ptr.To(false) }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Workload reactivated and unmarked", func() error {
		if active, marked, err := workloadState(wl); err != nil || !active || marked {
			return fmt.Errorf("active %v, marked %v, %v", active, marked, err)
		}
		return nil
	})
	// Kueue, not the operator, unsuspends the Job once it admits the Workload again; meanwhile it is queued.
	waitForCondition(t, ns, "queued", v1alpha1.ConditionAnnotated, metav1.ConditionFalse, v1alpha1.ReasonQueued)
	consistently(t, "the Job left for Kueue to unsuspend", time.Second, jobSuspendUntouched(aj, true, cur.Generation))

	// An administrator's deactivation (kubectl kueue stop workload) stands while the job is not suspended.
	patch := []byte(`{"spec":{"active":false}}`)
	if err := k8sClient.Patch(context.Background(), wl, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
	consistently(t, "the administrator's deactivation", 2*time.Second, func() error {
		if active, marked, err := workloadState(wl); err != nil || active || marked {
			return fmt.Errorf("active %v, marked %v, %v", active, marked, err)
		}
		return nil
	})
}

func TestSuspendedQueuedJobStartsNoStageJob(t *testing.T) {
	installWorkloadCRD(t)
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("held", ns).Label(LabelKueueQueue, "team-a").Suspend(true).Obj())
	waitForCondition(t, ns, "held", v1alpha1.ConditionSuspended, metav1.ConditionTrue, v1alpha1.ReasonSuspended)
	waitForStage(t, ns, "held", v1alpha1.StageSuspended)
	consistently(t, "no stage Job while suspended", 2*time.Second, func() error {
		if n := countStageJobs(t, ns, "held", StageAnnotation); n != 0 {
			return fmt.Errorf("%d annotation Jobs: Kueue could admit a stage the user stopped", n)
		}
		return nil
	})

	if err := updateJobSpec(ns, "held", func(dj *v1alpha1.DistillationJob) { dj.Spec.Suspend = ptr.To(false) }); err != nil {
		t.Fatal(err)
	}
	aj := waitForStageJob(t, ns, "held", StageAnnotation)
	consistently(t, "the new queued Job's suspend left to Kueue", time.Second, jobSuspendUntouched(aj, false, aj.Generation))
}

// kueueMapper answers for Kueue's Workload kind as a cluster whose Kueue serves the given versions (none:
// a cluster without Kueue), and for everything else as the apiserver does.
type kueueMapper struct {
	meta.RESTMapper
	versions []string
}

func (m kueueMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	if gk != workloadGVK.GroupKind() {
		return m.RESTMapper.RESTMappings(gk, versions...)
	}
	if len(m.versions) == 0 {
		return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
	}
	var out []*meta.RESTMapping
	for _, v := range m.versions {
		out = append(out, &meta.RESTMapping{GroupVersionKind: gk.WithVersion(v), Scope: meta.RESTScopeNamespace})
	}
	return out, nil
}

// withKueueVersions is the test client as in a cluster whose Kueue serves these Workload versions.
type withKueueVersions struct {
	client.Client
	versions []string
}

func (c withKueueVersions) RESTMapper() meta.RESTMapper {
	return kueueMapper{RESTMapper: c.Client.RESTMapper(), versions: c.versions}
}

// A queue-labelled job in a cluster without Kueue: nothing else suspends its stage Jobs, so spec.suspend
// goes on the running stage Job itself (the estimate's and a finished one are left alone), applying the
// Job again does not undo it, and resuming unsuspends only a Job the operator suspended.
func TestAQueuedJobInAClusterWithoutKueueIsSuspendedDirectly(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	r := &DistillationJobReconciler{Client: withKueueVersions{Client: k8sClient}}
	dj := utiltesting.MakeJob("queued", ns).UID("uid-queued").Label(LabelKueueQueue, "team-a").Estimate(10).Obj()
	pass := func(suspend bool, o *observed) bool {
		t.Helper()
		dj.Spec.Suspend = ptr.To(suspend)
		wait, noKueue, err := r.reconcileQueuedSuspend(ctx, dj, o)
		if err != nil || wait != 0 {
			t.Fatalf("suspend=%v: wait %v, error %v; want 0, nil", suspend, wait, err)
		}
		return noKueue
	}
	// Created suspended: no stage Job yet, and the condition already says why nothing is queued.
	if !pass(true, &observed{}) {
		t.Errorf("a suspended job with no stage job yet did not find that the cluster has no Kueue")
	}
	// A whole pass of such a job (without an estimate, whose condition speaks of the estimate instead), by a
	// reconciler of the test's own: the suite's runs too, but the test reads only its own pass's result.
	whole := &DistillationJobReconciler{Client: withKueueVersions{Client: managerClient}, APIReader: k8sClient, Config: testImages, Clock: clock.RealClock{}}
	created := createJob(t, utiltesting.MakeJob("queued-plain", ns).Label(LabelKueueQueue, "team-a").Suspend(true).Obj())
	if _, err := whole.reconcile(ctx, created); err != nil {
		t.Fatalf("a pass of a queued job created suspended: %v", err)
	}
	if c := findCondition(created, v1alpha1.ConditionSuspended); c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "no Kueue") {
		t.Errorf("Suspended condition %+v does not say the cluster has no Kueue", c)
	}

	apply := func(j *batchv1.Job) *batchv1.Job {
		t.Helper()
		if _, err := ensure(ctx, k8sClient, nil, j); err != nil {
			t.Fatal(err)
		}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(j), j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	estimate, running := apply(estimateJob(dj, testImages)), apply(annotationJob(dj, testImages))
	finished := apply(trainingJob(dj, testImages, trainingPoints(dj)[0]))
	updateJobStatus(t, finished, utiltesting.CompleteJob)
	heldByOthers := apply(reportJob(dj, testImages))
	if err := k8sClient.Patch(ctx, heldByOthers, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))); err != nil {
		t.Fatal(err)
	}
	observe := func() *observed {
		t.Helper()
		o := &observed{training: map[int]*jobPods{0: {}}}
		o.estimate.job, o.annotation.job, o.training[0].job, o.reportJob.job = &batchv1.Job{}, &batchv1.Job{}, &batchv1.Job{}, &batchv1.Job{}
		for from, to := range map[*batchv1.Job]*batchv1.Job{estimate: o.estimate.job, running: o.annotation.job, finished: o.training[0].job, heldByOthers: o.reportJob.job} {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(from), to); err != nil {
				t.Fatal(err)
			}
		}
		return o
	}
	state := func(j *batchv1.Job) string {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(j), j); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("suspend=%v marked=%v", ptr.Deref(j.Spec.Suspend, false), j.Annotations[AnnotationDeactivatedBy] == deactivatedForSuspend)
	}
	want := func(when string, j *batchv1.Job, w string) {
		t.Helper()
		if got := state(j); got != w {
			t.Errorf("%s: stage job %s is %s, want %s", when, j.Name, got, w)
		}
	}

	// A pass whose cache still has the Job as it was before someone else changed it writes nothing and
	// looks again soon; the next pass, with the newer Job, suspends it.
	stale := observe()
	if err := k8sClient.Patch(ctx, running.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"x"}}}`))); err != nil {
		t.Fatal(err)
	}
	dj.Spec.Suspend = ptr.To(true)
	if wait, _, err := r.reconcileQueuedSuspend(ctx, dj, stale); err != nil || wait != staleJobRetry {
		t.Errorf("a pass with a stale cached job: wait %v, error %v; want %v, nil", wait, err, staleJobRetry)
	}
	want("after a stale pass", running, "suspend=false marked=false")
	pass(true, observe())
	want("suspended", running, "suspend=true marked=true")
	want("suspended", estimate, "suspend=false marked=false")
	want("suspended", finished, "suspend=false marked=false")
	want("suspended", heldByOthers, "suspend=true marked=false")
	// Applying the stage Job again (the builders leave spec.suspend out) and a second pass change nothing.
	generation, version := running.Generation, running.ResourceVersion
	apply(annotationJob(dj, testImages))
	want("applied again", running, "suspend=true marked=true")
	pass(true, observe())
	if state(running); running.Generation != generation || running.ResourceVersion != version {
		t.Errorf("applying the stage job again or a second suspended pass wrote it (generation %d -> %d)", generation, running.Generation)
	}

	pass(false, observe())
	want("resumed", running, "suspend=false marked=false")
	want("resumed", heldByOthers, "suspend=true marked=false")

	// A Kueue older than v0.15 (Workloads without v1beta2) manages the Jobs: an error, and no Job written.
	r.Client = withKueueVersions{Client: k8sClient, versions: []string{"v1beta1"}}
	dj.Spec.Suspend = ptr.To(true)
	if _, _, err := r.reconcileQueuedSuspend(ctx, dj, observe()); err == nil || !strings.Contains(err.Error(), "v0.15") {
		t.Errorf("a Kueue without v1beta2 Workloads: error %v, want one naming Kueue v0.15", err)
	}
	want("older Kueue", running, "suspend=false marked=false")
}
