package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

// gone waits until the named object of obj's kind no longer exists.
func gone(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	eventually(t, fmt.Sprintf("%T %s deleted", obj, name), func() error {
		err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return errors.New("still there")
	})
}

func TestStudentModelScaleSubresource(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	sm := utiltesting.MakeModel("scaled", ns).Replicas(1).Obj()
	if err := k8sClient.Create(ctx, sm); err != nil {
		t.Fatal(err)
	}
	d := waitForDeployment(t, ns, "scaled-student")

	// What `kubectl scale sm/scaled --replicas=3` and an HPA do: write spec.replicas of the scale subresource.
	scale := &autoscalingv1.Scale{}
	if err := k8sClient.SubResource("scale").Get(ctx, sm, scale); err != nil {
		t.Fatalf("reading the scale subresource: %v", err)
	}
	scale.Spec.Replicas = 3
	if err := k8sClient.SubResource("scale").Update(ctx, sm, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("scaling: %v", err)
	}
	eventually(t, "the Deployment follows the scale", func() error {
		var cur appsv1.Deployment
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
			return err
		}
		if r := ptr.Deref(cur.Spec.Replicas, 0); r != 3 {
			return fmt.Errorf("deployment replicas %d", r)
		}
		return nil
	})
	got, err := getModel(ctx, ns, sm.Name)
	if err != nil || ptr.Deref(got.Spec.Serving.Replicas, 0) != 3 {
		t.Fatalf("spec.serving.replicas = %v (%v)", got.Spec.Serving.Replicas, err)
	}
	setDeploymentReady(t, d, 3)
	eventually(t, "the scale subresource reports replicas and the pod selector", func() error {
		s := &autoscalingv1.Scale{}
		if err := k8sClient.SubResource("scale").Get(ctx, sm, s); err != nil {
			return err
		}
		if s.Status.Replicas != 3 || s.Status.Selector != servingSelector(sm) {
			return fmt.Errorf("scale status %+v", s.Status)
		}
		return nil
	})
}

func TestStudentModelAutoscalingCreatesAnHPAAndAPDBAndRemovesThem(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	sm := utiltesting.MakeModel("auto", ns).Autoscaling(2, 6).Obj()
	if err := k8sClient.Create(ctx, sm); err != nil {
		t.Fatal(err)
	}
	name := "auto-student"
	var hpa autoscalingv2.HorizontalPodAutoscaler
	eventually(t, "the HPA", func() error { return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &hpa) })
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "StudentModel" || ref.Name != "auto" || hpa.Spec.MaxReplicas != 6 || *hpa.Spec.MinReplicas != 2 {
		t.Errorf("hpa spec = %+v", hpa.Spec)
	}
	var pdb policyv1.PodDisruptionBudget
	eventually(t, "the PDB", func() error { return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pdb) })
	if pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("pdb spec = %+v", pdb.Spec)
	}

	// Back to one fixed replica: neither is wanted any more.
	if err := updateModel(ns, sm.Name, func(m *v1alpha1.StudentModel) {
		m.Spec.Serving.Autoscaling = nil
		m.Spec.Serving.Replicas = ptr.To[int32](1)
	}); err != nil {
		t.Fatal(err)
	}
	gone(t, ns, name, &autoscalingv2.HorizontalPodAutoscaler{})
	gone(t, ns, name, &policyv1.PodDisruptionBudget{})

	// Two fixed replicas: a PDB again.
	if err := updateModel(ns, sm.Name, func(m *v1alpha1.StudentModel) { m.Spec.Serving.Replicas = ptr.To[int32](2) }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the PDB for two replicas", func() error { return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pdb) })
}

func TestStudentModelAllowFromCreatesANetworkPolicy(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	sm := utiltesting.MakeModel("fenced", ns).AllowFrom(fromMonitoring).Obj()
	if err := k8sClient.Create(ctx, sm); err != nil {
		t.Fatal(err)
	}
	var np networkingv1.NetworkPolicy
	name := "fenced-student"
	eventually(t, "the NetworkPolicy", func() error { return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &np) })
	rule := np.Spec.Ingress[0]
	if len(rule.From) != 1 || rule.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "apps" || rule.Ports[0].Port.IntValue() != 8080 {
		t.Errorf("ingress = %+v", rule)
	}
	if err := updateModel(ns, sm.Name, func(m *v1alpha1.StudentModel) { m.Spec.Serving.AllowFrom = nil }); err != nil {
		t.Fatal(err)
	}
	gone(t, ns, name, &networkingv1.NetworkPolicy{})
}

func TestStudentModelAutoscalingBoundsAreValidated(t *testing.T) {
	ns := newNamespace(t)
	sm := utiltesting.MakeModel("bad", ns).Autoscaling(5, 2).Obj()
	err := k8sClient.Create(contextFor(t), sm)
	if err == nil || !strings.Contains(err.Error(), "spec.serving.autoscaling.minReplicas must not exceed maxReplicas") {
		t.Fatalf("create = %v, want the CEL message", err)
	}
}

// spec.serving.compileDecoder through the real API server (its default included) into the server's command;
// a change of it changes the Deployment's pod template, both ways.
func TestStudentModelCompileDecoderReachesTheServer(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	sm := utiltesting.MakeModel("uncompiled", ns).Obj()
	if err := k8sClient.Create(ctx, sm); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.StudentModel
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(sm), &got); err != nil || got.Spec.Serving.CompileDecoder != v1alpha1.DecoderCompileAuto {
		t.Fatalf("spec.serving.compileDecoder = %q (%v), want the default Auto", got.Spec.Serving.CompileDecoder, err)
	}
	if cmd := waitForDeployment(t, ns, "uncompiled-student").Spec.Template.Spec.Containers[0].Command; slices.Contains(cmd, "--compile-decoder") {
		t.Errorf("Auto: command %v, want the server's own default", cmd)
	}
	for _, mode := range []v1alpha1.DecoderCompileMode{v1alpha1.DecoderCompileOff, v1alpha1.DecoderCompileAuto} {
		if err := updateModel(ns, sm.Name, func(m *v1alpha1.StudentModel) { m.Spec.Serving.CompileDecoder = mode }); err != nil {
			t.Fatal(err)
		}
		eventually(t, fmt.Sprintf("the server command under %s", mode), func() error {
			var d appsv1.Deployment
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "uncompiled-student"}, &d); err != nil {
				return err
			}
			cmd := d.Spec.Template.Spec.Containers[0].Command
			i := slices.Index(cmd, "--compile-decoder")
			if off := i >= 0 && cmd[i+1] == "off"; off != (mode == v1alpha1.DecoderCompileOff) || (i >= 0 && !off) {
				return fmt.Errorf("command %v", cmd)
			}
			return nil
		})
	}
}
