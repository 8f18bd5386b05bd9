package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Integration tests of the ownership and snapshot policies (ownership.go, reconcileWorkspace).

// runToSucceeded drives a created job through both stages, as the Job controller and kubelet would.
func runToSucceeded(t *testing.T, ns, name string) *v1alpha1.DistillationJob {
	t.Helper()
	finishShards(t, ns, name, annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10, DatasetHash: datasetHash}))
	finishTraining(t, ns, name, trainMsg(t, contract.TrainResult{Steps: 5, EvalAccuracy: 0.9, EvalExamples: 10,
		Evaluation: goldEvaluation(10, 0.9, 0.95, 0.9)}))
	return waitForStage(t, ns, name, v1alpha1.StageSucceeded)
}

// collectGarbage deletes what the garbage collector would once the owner uid is gone (envtest runs no
// kube-controller-manager).
func collectGarbage(t *testing.T, ns string, uid types.UID) {
	t.Helper()
	ctx := context.Background()
	lists := []client.ObjectList{&batchv1.JobList{}, &corev1.ConfigMapList{}, &corev1.ServiceAccountList{}, &rbacv1.RoleList{},
		&rbacv1.RoleBindingList{}, &corev1.ServiceList{}, &corev1.PersistentVolumeClaimList{}, &corev1.PodList{}}
	for _, l := range lists {
		if err := k8sClient.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		items, _ := metaItems(l)
		for _, obj := range items {
			if controlledByUID(obj, uid) {
				if err := k8sClient.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func metaItems(l client.ObjectList) ([]client.Object, error) {
	var out []client.Object
	switch l := l.(type) {
	case *batchv1.JobList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ConfigMapList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceAccountList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *rbacv1.RoleList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *rbacv1.RoleBindingList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.PersistentVolumeClaimList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.PodList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	default:
		return nil, fmt.Errorf("unknown list %T", l)
	}
	return out, nil
}

// assertNoAnnotationJobOf checks that no annotation Job of the job run uid exists: the teacher was not paid.
func assertNoAnnotationJobOf(t *testing.T, ns, name string, uid types.UID) {
	t.Helper()
	var jobs batchv1.JobList
	if err := k8sClient.List(context.Background(), &jobs, client.InNamespace(ns), client.MatchingLabels{LabelJob: name, LabelStage: StageAnnotation}); err != nil {
		t.Fatal(err)
	}
	for i := range jobs.Items {
		if controlledByUID(&jobs.Items[i], uid) {
			t.Errorf("annotation Job %s was created for a job that cannot finish", jobs.Items[i].Name)
		}
	}
}

// Point 3 of issue 9: a new job under the name of a deleted, finished one must not take the volume its
// StudentModel serves from.
func TestRecreatedJobDoesNotTakeTheServedModelsVolume(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	old := createJob(t, utiltesting.MakeJob("again", ns).Obj())
	runToSucceeded(t, ns, "again")
	sm, err := getModel(ctx, ns, "again")
	if err != nil {
		t.Fatal(err)
	}
	claimKey := client.ObjectKey{Namespace: ns, Name: "again-workspace"}
	eventually(t, "the workspace PVC owned by the StudentModel", func() error {
		var pvc corev1.PersistentVolumeClaim
		if err := k8sClient.Get(ctx, claimKey, &pvc); err != nil {
			return err
		}
		if !metav1.IsControlledBy(&pvc, sm) {
			return fmt.Errorf("owners %+v", pvc.OwnerReferences)
		}
		return nil
	})
	if err := k8sClient.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old job gone", func() error {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(old), &v1alpha1.DistillationJob{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	collectGarbage(t, ns, old.UID)

	renewed := createJob(t, utiltesting.MakeJob("again", ns).Obj())
	got := waitForCondition(t, ns, "again", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonNameConflict)
	msg := findCondition(got, v1alpha1.ConditionFailed).Message
	for _, want := range []string{"PersistentVolumeClaim again-workspace", "StudentModel again", string(sm.UID)} {
		if !strings.Contains(msg, want) {
			t.Errorf("Failed message %q does not name %q", msg, want)
		}
	}
	assertNoAnnotationJobOf(t, ns, "again", renewed.UID)
	assertFailedForKstatus(t, ns, "again", v1alpha1.ReasonNameConflict)
	var pvc corev1.PersistentVolumeClaim
	if err := k8sClient.Get(ctx, claimKey, &pvc); err != nil {
		t.Fatal(err)
	}
	if len(pvc.OwnerReferences) != 1 || pvc.OwnerReferences[0].UID != sm.UID {
		t.Errorf("the served model's PVC changed owners: %+v", pvc.OwnerReferences)
	}
	after, err := getModel(ctx, ns, "again")
	if err != nil {
		t.Fatal(err)
	}
	if after.Labels[LabelJobUID] != string(old.UID) || after.Spec.Provenance == nil || after.Spec.Provenance.JobUID != string(old.UID) {
		t.Errorf("the old StudentModel changed hands: labels %v, provenance %+v", after.Labels, after.Spec.Provenance)
	}
}

// Every derived name that something else holds fails the job before the teacher is paid, naming the
// object and its controller; the other object is left as it was.
func TestForeignObjectsOfDerivedNamesFailTheJobBeforeAnnotation(t *testing.T) {
	foreignOwner := func(ns string) metav1.OwnerReference {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "someone-else"}}
		if err := k8sClient.Create(context.Background(), cm); err != nil {
			t.Fatal(err)
		}
		return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID, Controller: ptr.To(true)}
	}
	cases := []struct {
		name     string
		foreign  func(ns string) client.Object
		reason   v1alpha1.ConditionReason
		wantName []string
	}{
		{"a ConfigMap nobody controls", func(ns string) client.Object {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x-config"}, Data: map[string]string{"mine": "yes"}}
		}, v1alpha1.ReasonNameConflict, []string{"ConfigMap x-config", "no controller"}},
		{"a ServiceAccount another object controls", func(ns string) client.Object {
			return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x-stage", OwnerReferences: []metav1.OwnerReference{foreignOwner(ns)}}}
		}, v1alpha1.ReasonNameConflict, []string{"ServiceAccount x-stage", "controlled by ConfigMap someone-else"}},
		{"the training Job's name", func(ns string) client.Object {
			return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x-train"}, Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}
		}, v1alpha1.ReasonNameConflict, []string{"Job x-train"}},
		{"the StudentModel's name", func(ns string) client.Object {
			return utiltesting.MakeModel("x", ns).Obj()
		}, v1alpha1.ReasonModelNameTaken, []string{"StudentModel x", "not made by this job"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := contextFor(t)
			ns := newNamespace(t)
			obj := tc.foreign(ns)
			if err := k8sClient.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
			dj := createJob(t, utiltesting.MakeJob("x", ns).Obj())
			got := waitForCondition(t, ns, "x", v1alpha1.ConditionFailed, metav1.ConditionTrue, tc.reason)
			msg := findCondition(got, v1alpha1.ConditionFailed).Message
			for _, w := range tc.wantName {
				if !strings.Contains(msg, w) {
					t.Errorf("Failed message %q does not say %q", msg, w)
				}
			}
			assertNoAnnotationJobOf(t, ns, "x", dj.UID)
			assertFailedForKstatus(t, ns, "x", tc.reason)
			cur := obj.DeepCopyObject().(client.Object)
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
				t.Fatal(err)
			}
			for _, mf := range cur.GetManagedFields() {
				if mf.Manager == FieldOwner && mf.Operation == metav1.ManagedFieldsOperationApply {
					t.Errorf("the operator applied to the foreign %T; owners now %+v", cur, cur.GetOwnerReferences())
				}
			}
			if len(cur.GetOwnerReferences()) != len(obj.GetOwnerReferences()) {
				t.Errorf("the foreign %T's owners changed: %+v", cur, cur.GetOwnerReferences())
			}
		})
	}
}

// Leftovers of a deleted job of the same name are waited for (the garbage collector deletes them), not a
// permanent failure.
func TestLeftoversOfADeletedOwnerAreWaitedFor(t *testing.T) {
	ns := newNamespace(t)
	gone := metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "DistillationJob", Name: "w",
		UID: "0b5e5d0e-0000-4000-8000-000000000000", Controller: ptr.To(true)}
	// As a deleted job "w" leaves it until the garbage collector runs: its labels, its owner reference.
	leftover := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "w-config",
		Labels: map[string]string{LabelJob: "w", LabelStage: StageWorkspace, LabelManagedBy: ManagedBy}, OwnerReferences: []metav1.OwnerReference{gone}}}
	if err := k8sClient.Create(context.Background(), leftover); err != nil {
		t.Fatal(err)
	}
	createJob(t, utiltesting.MakeJob("w", ns).Obj())
	got := waitForCondition(t, ns, "w", v1alpha1.ConditionComplete, metav1.ConditionFalse, v1alpha1.ReasonWaitingForGarbageCollection)
	if isTrue(got.Status.Conditions, v1alpha1.ConditionFailed) || !strings.Contains(findCondition(got, v1alpha1.ConditionComplete).Message, "ConfigMap w-config") {
		t.Errorf("conditions %+v", got.Status.Conditions)
	}
	waitForKstatus(t, "DistillationJob", ns, "w", kstatus.InProgressStatus)
	if err := k8sClient.Delete(context.Background(), leftover); err != nil {
		t.Fatal(err)
	}
	waitForStageJob(t, ns, "w", StageAnnotation)
}

// Point 5 of issue 9: the examples are read once, into the job's config; editing or deleting the
// examplesFrom ConfigMap mid-job changes nothing, and the model's provenance describes the snapshot.
func TestExamplesFromIsSnapshottedOnce(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	shots := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shots"},
		Data: map[string]string{"examples.jsonl": `{"input":"a","rationale":"b","label":"yes"}` + "\n"}}
	if err := k8sClient.Create(ctx, shots); err != nil {
		t.Fatal(err)
	}
	createJob(t, utiltesting.MakeJob("snap", ns).Examples().ExamplesFrom("shots", "examples.jsonl").Obj())
	waitForStageJob(t, ns, "snap", StageAnnotation)
	readConfig := func() *corev1.ConfigMap {
		var cm corev1.ConfigMap
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "snap-config"}, &cm); err != nil {
			t.Fatal(err)
		}
		return &cm
	}
	snapshotted := readConfig()
	snap, err := snapshot(snapshotted)
	if err != nil || len(snap.Task.Examples) != 1 || snap.Task.Examples[0].Input != "a" {
		t.Fatalf("snapshot %+v (%v)", snap.Task, err)
	}

	// Edited: the next passes (a progress report brings one) keep the snapshot.
	shots.Data["examples.jsonl"] = `{"input":"edited","rationale":"b","label":"no"}` + "\n"
	if err := k8sClient.Update(ctx, shots); err != nil {
		t.Fatal(err)
	}
	patchProgress(t, ns, "snap", "annotate-0", contract.AnnotateProgress{Done: 1, Total: 10})
	consistently(t, "the snapshot after an edit", 2*time.Second, func() error {
		if cur := readConfig(); cur.ResourceVersion != snapshotted.ResourceVersion {
			return fmt.Errorf("the config was rewritten: %s", cur.Data[annotateConfigKey])
		}
		return nil
	})

	// Deleted: the job still finishes, and its model describes the snapshot.
	if err := k8sClient.Delete(ctx, shots); err != nil {
		t.Fatal(err)
	}
	patchProgress(t, ns, "snap", "annotate-0", contract.AnnotateProgress{Done: 2, Total: 10})
	runToSucceeded(t, ns, "snap")
	if cur := readConfig(); cur.ResourceVersion != snapshotted.ResourceVersion {
		t.Errorf("the config was rewritten: %s", cur.Data[annotateConfigKey])
	}
	sm, err := getModel(ctx, ns, "snap")
	if err != nil {
		t.Fatal(err)
	}
	if p := sm.Spec.Provenance; p == nil || p.PromptHash != contract.PromptHash(snap.Task) || p.DatasetHash != datasetHash {
		t.Errorf("provenance %+v, want prompt hash %s of the snapshot", p, contract.PromptHash(snap.Task))
	}
}

// The job writes the StudentModel's spec once; only the StudentModel controller writes its status, and
// metrics and provenance cannot be changed afterwards.
func TestModelProvenanceAndMetricsAreImmutable(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	createJob(t, utiltesting.MakeJob("fixed", ns).Obj())
	runToSucceeded(t, ns, "fixed")
	sm, err := getModel(ctx, ns, "fixed")
	if err != nil {
		t.Fatal(err)
	}
	for what, mutate := range map[string]func(*v1alpha1.StudentModel){
		"spec.metrics":             func(m *v1alpha1.StudentModel) { m.Spec.Metrics.Accuracy = "0.9999" },
		"spec.provenance":          func(m *v1alpha1.StudentModel) { m.Spec.Provenance.TeacherModel = "someone-else" },
		"spec.metrics is set when": func(m *v1alpha1.StudentModel) { m.Spec.Metrics = nil },
	} {
		m := sm.DeepCopy()
		mutate(m)
		err := k8sClient.Update(ctx, m)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), what) {
			t.Errorf("changing %s: %v, want Invalid naming it", what, err)
		}
	}

	// `kubectl get sm` prints the table the API server builds from the CRD's printer columns.
	cells := tableRow(t, "studentmodels", ns, "fixed")
	for col, want := range map[string]string{"Accuracy": "0.9000", "Teacher": "0.9500", "Base": "google/t5-v1_1-small", "Job": "fixed"} {
		if got := cells[col]; got != want {
			t.Errorf("kubectl get sm column %s = %q, want %q (all: %v)", col, got, want, cells)
		}
	}
}

// tableRow is the row `kubectl get <resource> NAME -o wide` prints, by column name.
func tableRow(t *testing.T, resource, ns, name string) map[string]any {
	t.Helper()
	hc, err := rest.HTTPClientFor(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/apis/%s/namespaces/%s/%s/%s",
		strings.TrimSuffix(restConfig.Host, "/"), v1alpha1.GroupVersion.String(), ns, resource, name), nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("table: %v, %d rows", err, len(table.Rows))
	}
	out := map[string]any{}
	for i, c := range table.ColumnDefinitions {
		out[c.Name] = table.Rows[0].Cells[i]
	}
	return out
}

// A name taken after the job started (here the training Job's, while annotation runs) is found before
// that stage's Job would be applied onto it.
func TestANameTakenMidJobFailsTheStageThatNeedsIt(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	createJob(t, utiltesting.MakeJob("late", ns).Obj())
	waitForStageJob(t, ns, "late", StageAnnotation)
	foreign := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late-train"}, Spec: batchv1.JobSpec{
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}
	if err := k8sClient.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	finishShards(t, ns, "late", annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10}))
	got := waitForCondition(t, ns, "late", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonNameConflict)
	if msg := findCondition(got, v1alpha1.ConditionFailed).Message; !strings.Contains(msg, "Job late-train") {
		t.Errorf("Failed message %q does not name the training Job", msg)
	}
	var cur batchv1.Job
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), &cur); err != nil {
		t.Fatal(err)
	}
	if len(cur.OwnerReferences) != 0 || cur.Labels[LabelJob] != "" {
		t.Errorf("the operator applied its training Job onto the foreign one: owners %v, labels %v", cur.OwnerReferences, cur.Labels)
	}
}
