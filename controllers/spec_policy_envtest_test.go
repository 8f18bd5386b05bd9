package controllers

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

// A spec the operator refuses (spec_policy.go) fails at once with InvalidSpec naming the field, and no
// child is created: nothing runs, nothing is paid for.
func TestARefusedSpecFailsBeforeAnyChild(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	createJob(t, utiltesting.MakeJob("zero-limit", ns).TrainingResources(corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("0")},
	}).Obj())
	got := waitForCondition(t, ns, "zero-limit", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if c := findCondition(got, v1alpha1.ConditionFailed); !strings.Contains(c.Message, "spec.training.resources.limits[memory]") {
		t.Errorf("Failed message %q should name the field", c.Message)
	}
	assertFailedForKstatus(t, ns, "zero-limit", v1alpha1.ReasonInvalidSpec)
	var cms corev1.ConfigMapList
	var pvcs corev1.PersistentVolumeClaimList
	if err := k8sClient.List(ctx, &cms, client.InNamespace(ns), client.MatchingLabels{LabelJob: "zero-limit"}); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.List(ctx, &pvcs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(cms.Items)+len(pvcs.Items) != 0 {
		t.Errorf("a refused job created %d ConfigMaps and %d PVCs", len(cms.Items), len(pvcs.Items))
	}

	sm := utiltesting.MakeModel("zero-cpu", ns).Obj()
	sm.Spec.Serving.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0")}}
	if err := k8sClient.Create(ctx, sm); err != nil {
		t.Fatal(err)
	}
	got2 := waitForModelCondition(t, ns, "zero-cpu", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec)
	if c := meta.FindStatusCondition(got2.Status.Conditions, string(v1alpha1.ConditionReady)); !strings.Contains(c.Message, "spec.serving.resources.requests[cpu]") {
		t.Errorf("Ready message %q should name the field", c.Message)
	}
	if c := meta.FindStatusCondition(got2.Status.Conditions, string(v1alpha1.ConditionStalled)); c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(v1alpha1.ReasonInvalidSpec) {
		t.Errorf("Stalled = %+v, want True with InvalidSpec (kstatus: Failed)", c)
	}
	waitForKstatus(t, "StudentModel", ns, "zero-cpu", kstatus.FailedStatus)
	var deploys appsv1.DeploymentList
	if err := k8sClient.List(context.Background(), &deploys, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(deploys.Items) != 0 {
		t.Errorf("a refused model got a Deployment")
	}
}
