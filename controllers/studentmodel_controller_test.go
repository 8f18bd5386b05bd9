package controllers

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

// waitForModelCondition waits until the model's condition has status and reason.
func waitForModelCondition(t *testing.T, ns, name string, ct v1alpha1.ConditionType, status metav1.ConditionStatus, reason v1alpha1.ConditionReason) *v1alpha1.StudentModel {
	t.Helper()
	var sm *v1alpha1.StudentModel
	eventually(t, fmt.Sprintf("model condition %s=%s (%s)", ct, status, reason), func() (err error) {
		if sm, err = getModel(context.Background(), ns, name); err != nil {
			return err
		}
		c := meta.FindStatusCondition(sm.Status.Conditions, string(ct))
		if c == nil || c.Status != status || c.Reason != string(reason) {
			return fmt.Errorf("condition is %+v", c)
		}
		return nil
	})
	return sm
}

func TestStudentModelServesStopsAndResumes(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	sm := utiltesting.MakeModel("anli-t5", ns).Replicas(2).Obj()
	if err := k8sClient.Create(ctx, sm); err != nil {
		t.Fatal(err)
	}
	name := sm.Name + "-student"
	d := waitForDeployment(t, ns, name)
	if !metav1.IsControlledBy(d, sm) || ptr.Deref(d.Spec.Replicas, 0) != 2 {
		t.Errorf("deployment: owners %v, replicas %v", d.OwnerReferences, d.Spec.Replicas)
	}
	var svc corev1.Service
	eventually(t, "the model's Service", func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc)
	})
	if !metav1.IsControlledBy(&svc, sm) || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("service: owners %v, ports %v", svc.OwnerReferences, svc.Spec.Ports)
	}
	got := waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonReplicasNotReady)
	if want := "http://anli-t5-student." + ns + ".svc:8080"; got.Status.Endpoint != want {
		t.Errorf("endpoint = %q, want %q", got.Status.Endpoint, want)
	}

	// One of two replicas ready: not Ready. Both: Ready.
	setDeploymentReady(t, d, 1)
	eventually(t, "one ready replica in status", func() error {
		got, err := getModel(ctx, ns, sm.Name)
		if err != nil {
			return err
		}
		if got.Status.ReadyReplicas != 1 || got.Status.Replicas != 2 {
			return fmt.Errorf("replicas %d, ready %d", got.Status.Replicas, got.Status.ReadyReplicas)
		}
		if c := meta.FindStatusCondition(got.Status.Conditions, string(v1alpha1.ConditionReady)); c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("Ready is %+v with 1 of 2 replicas ready", c)
		}
		return nil
	})
	setDeploymentReady(t, d, 2)
	got = waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonServing)
	if got.Status.ReadyReplicas != 2 || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("status = %+v", got.Status)
	}

	// Stopped: zero replicas, Stopped condition, Ready (stopped on purpose); the Service stays.
	if err := updateModel(ns, sm.Name, func(m *v1alpha1.StudentModel) { m.Spec.Stopped = true }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Deployment scaled to zero", func() error {
		var d appsv1.Deployment
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		if r := ptr.Deref(d.Spec.Replicas, -1); r != 0 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionStopped, metav1.ConditionTrue, v1alpha1.ReasonStopped)
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonStopped)
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(&svc), &svc); err != nil {
		t.Errorf("the Service of a stopped model is gone: %v", err)
	}

	if err := updateModel(ns, sm.Name, func(m *v1alpha1.StudentModel) { m.Spec.Stopped = false }); err != nil {
		t.Fatal(err)
	}
	waitForModelCondition(t, ns, sm.Name, v1alpha1.ConditionStopped, metav1.ConditionFalse, v1alpha1.ReasonRunning)
	eventually(t, "the Deployment scaled back up", func() error {
		var d appsv1.Deployment
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		if r := ptr.Deref(d.Spec.Replicas, -1); r != 2 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
}

// setDeploymentReady writes a Deployment's status as the Deployment controller would.
func setDeploymentReady(t *testing.T, d *appsv1.Deployment, ready int32) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur appsv1.Deployment
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(d), &cur); err != nil {
			return err
		}
		utiltesting.DeploymentAvailable(&cur, ready)
		return k8sClient.Status().Update(context.Background(), &cur)
	})
	if err != nil {
		t.Fatalf("updating deployment status: %v", err)
	}
}

func updateModel(ns, name string, mutate func(*v1alpha1.StudentModel)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sm, err := getModel(context.Background(), ns, name)
		if err != nil {
			return err
		}
		mutate(sm)
		return k8sClient.Update(context.Background(), sm)
	})
}
