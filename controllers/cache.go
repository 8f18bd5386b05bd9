package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
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
// pods (not the servers: StudentModel status comes from the Deployment), and without their spec (the
// passes read a stage pod's labels, annotations, owner and status only).
func CacheOptions() cache.Options {
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
	by := cache.ByObject{Label: sel}
	stage, err := labels.NewRequirement(LabelStage, selection.In, []string{StageAnnotation, StageTraining})
	if err != nil {
		panic(err)
	}
	pods := cache.ByObject{Label: sel.Add(*stage), Transform: slimStagePod}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: pods, &batchv1.Job{}: by, &corev1.ConfigMap{}: by, &corev1.Service{}: by,
			&corev1.ServiceAccount{}: by, &corev1.PersistentVolumeClaim{}: by, &appsv1.Deployment{}: by,
			&rbacv1.Role{}: by, &rbacv1.RoleBinding{}: by,
		},
	}
}

// slimStagePod drops what the operator never reads of a cached stage pod: its spec (but the node's name)
// and managedFields. Anything else (a deletion tombstone) passes unchanged.
func slimStagePod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	p.ManagedFields = nil
	p.Spec = corev1.PodSpec{NodeName: p.Spec.NodeName}
	return p, nil
}
