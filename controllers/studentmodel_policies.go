package controllers

import (
	"context"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete

// servingPolicyKinds are the optional children of a StudentModel, each present only when its spec asks.
func servingPolicyKinds() []client.Object {
	return []client.Object{&autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}, &networkingv1.NetworkPolicy{}}
}

// reconcileServingPolicies ensures the HPA, PodDisruptionBudget and NetworkPolicy the spec asks for and
// removes those it no longer does, and records the scale subresource's selector.
func (r *StudentModelReconciler) reconcileServingPolicies(ctx context.Context, sm *v1alpha1.StudentModel) error {
	sm.Status.Selector = servingSelector(sm)
	hpa, pdb, np := servingHPA(sm), servingPDB(sm), servingNetworkPolicy(sm)
	steps := []struct {
		list    client.ObjectList
		desired client.Object
		want    bool
	}{
		{&autoscalingv2.HorizontalPodAutoscalerList{}, hpa, hpa != nil},
		{&policyv1.PodDisruptionBudgetList{}, pdb, pdb != nil},
		{&networkingv1.NetworkPolicyList{}, np, np != nil},
	}
	for _, s := range steps {
		if err := r.syncOptionalChild(ctx, sm, s.list, s.desired, s.want); err != nil {
			return err
		}
	}
	return nil
}

// syncOptionalChild applies desired when want, else deletes the model's current child of that kind.
func (r *StudentModelReconciler) syncOptionalChild(ctx context.Context, sm *v1alpha1.StudentModel, list client.ObjectList, desired client.Object, want bool) error {
	if err := r.List(ctx, list, client.InNamespace(sm.Namespace), client.MatchingFields{indexModel: sm.Name},
		client.MatchingLabels{LabelStage: StageServing}); err != nil {
		return fmt.Errorf("listing %T: %w", list, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return fmt.Errorf("reading %T: %w", list, err)
	}
	var current client.Object
	for _, it := range items {
		if o, ok := it.(client.Object); ok && isControlledByModel(o, sm) {
			current = o
		}
	}
	if want {
		if _, err := ensure(ctx, r.Client, current, desired); err != nil {
			return fmt.Errorf("ensuring serving policy: %w", err)
		}
		return nil
	}
	if current != nil {
		if err := r.Delete(ctx, current); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %T %s: %w", current, current.GetName(), err)
		}
	}
	return nil
}
