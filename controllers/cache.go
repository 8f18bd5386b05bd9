package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions keeps the informer caches to the objects the operator made, so memory does not grow with
// the cluster's other pods, jobs and config maps. The manager and the envtest suite both use it.
//
// Memory per job matters at a thousand jobs (hack/bench/scale): no cached object keeps its managedFields
// (about half of an applied object; the operator never reads them), pods are cached only for the stage
// pods (not the servers: StudentModel status comes from the Deployment), and stage pods, Jobs and
// Deployments without their pod spec or template (see slimCached).
func CacheOptions() cache.Options {
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
	by := cache.ByObject{Label: sel}
	stage, err := labels.NewRequirement(LabelStage, selection.In, []string{StageEstimate, StageAnnotation, StageTraining, StageReport})
	if err != nil {
		panic(err)
	}
	pods := cache.ByObject{Label: sel.Add(*stage)}
	return cache.Options{
		DefaultTransform: slimCached,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: pods, &batchv1.Job{}: by, &corev1.ConfigMap{}: by, &corev1.Service{}: by,
			&corev1.ServiceAccount{}: by, &corev1.PersistentVolumeClaim{}: by, &appsv1.Deployment{}: by,
			&rbacv1.Role{}: by, &rbacv1.RoleBinding{}: by,
			&autoscalingv2.HorizontalPodAutoscaler{}: by, &policyv1.PodDisruptionBudget{}: by, &networkingv1.NetworkPolicy{}: by,
		},
	}
}

// slimCached drops from an object entering the cache what the operator never reads: managedFields, a
// stage pod's spec (the passes read its labels, annotations, owner and status), and the pod template of a
// Job or Deployment (the passes compare the spec-hash annotation, owners and spec.suspend, and read
// status; what is applied is always built anew). Anything else (a deletion tombstone) passes unchanged.
func slimCached(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		o.Spec = corev1.PodSpec{NodeName: o.Spec.NodeName}
	case *batchv1.Job:
		o.Spec.Template = corev1.PodTemplateSpec{}
	case *appsv1.Deployment:
		o.Spec.Template = corev1.PodTemplateSpec{}
	}
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
