package controllers

import (
	"context"
	"fmt"
	"reflect"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// upToDate reports whether the current child already is what the builder wants: same spec hash and,
// for stage Jobs, the same suspend flag (the one field of a Job the operator changes after creation).
func upToDate(current, desired client.Object) bool {
	if current == nil || reflect.ValueOf(current).IsNil() || current.GetUID() == "" {
		return false
	}
	if current.GetAnnotations()[AnnotationSpecHash] != desired.GetAnnotations()[AnnotationSpecHash] {
		return false
	}
	if !equalOwners(current, desired) {
		return false
	}
	if cj, ok := current.(*batchv1.Job); ok {
		dj := desired.(*batchv1.Job)
		if dj.Spec.Suspend != nil && (cj.Spec.Suspend == nil || *cj.Spec.Suspend != *dj.Spec.Suspend) {
			return false
		}
	}
	return true
}

func equalOwners(a, b client.Object) bool {
	ao, bo := a.GetOwnerReferences(), b.GetOwnerReferences()
	if len(ao) != len(bo) {
		return false
	}
	for i := range ao {
		if ao[i].UID != bo[i].UID {
			return false
		}
	}
	return true
}

// ensure server-side applies desired under the operator's field owner unless current is already up to
// date, so a settled object causes no writes. It reports whether it wrote.
func ensure(ctx context.Context, c client.Client, current, desired client.Object) (bool, error) {
	if upToDate(current, desired) {
		return false, nil
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return false, fmt.Errorf("converting %T %s: %w", desired, desired.GetName(), err)
	}
	delete(u, "status")
	unstructured.RemoveNestedField(u, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u, "spec", "template", "metadata", "creationTimestamp")
	obj := &unstructured.Unstructured{Object: u}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return true, nil
}
