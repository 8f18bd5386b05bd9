package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions keeps the informer caches to the objects the operator made, so memory does not grow with
// the cluster's other pods, jobs and config maps. The manager and the envtest suite both use it.
func CacheOptions() cache.Options {
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
	by := cache.ByObject{Label: sel}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: by, &batchv1.Job{}: by, &corev1.ConfigMap{}: by, &corev1.Service{}: by,
		&corev1.ServiceAccount{}: by, &corev1.PersistentVolumeClaim{}: by, &appsv1.Deployment{}: by,
		&rbacv1.Role{}: by, &rbacv1.RoleBinding{}: by,
	}}
}
