package controllers

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The spec policy: what the operator refuses in a spec before it creates any child, so that a child the
// apiserver or the cluster's policy would refuse later fails the job before the teacher is paid.
// Admission (CEL, in api/v1alpha1) refuses everything else the spec alone shows; these it cannot: the
// allowed images depend on the operator's flags (image_policy.go), and the resource maps are unbounded,
// which puts any CEL rule over them past the apiserver's cost budget.

// jobSpecRefusal is the permanent reason a job cannot run as written, or nil.
func jobSpecRefusal(dj *v1alpha1.DistillationJob, cfg Config) error {
	if msg := disallowedImage(jobImageOverrides(dj), cfg.AllowedImagePrefixes); msg != "" {
		return &specError{msg: msg, permanent: true}
	}
	for _, r := range []struct {
		field string
		res   *corev1.ResourceRequirements
	}{
		{"spec.annotation.resources", dj.Spec.Annotation.Resources},
		{"spec.training.resources", dj.Spec.Training.Resources},
		{"spec.serving.resources", dj.Spec.Serving.Resources},
	} {
		if msg := badResources(r.field, r.res); msg != "" {
			return &specError{msg: msg, permanent: true}
		}
	}
	return nil
}

// modelSpecRefusal is the reason a StudentModel cannot be served as written, or "".
func modelSpecRefusal(sm *v1alpha1.StudentModel, cfg Config) string {
	if msg := disallowedImage(modelImageOverrides(sm), cfg.AllowedImagePrefixes); msg != "" {
		return msg
	}
	return badResources("spec.serving.resources", sm.Spec.Serving.Resources)
}

// badResources names the first quantity that is not greater than 0, or the first request above its
// limit; "" when there is none.
func badResources(field string, r *corev1.ResourceRequirements) string {
	if r == nil {
		return ""
	}
	for _, part := range []struct {
		name string
		list corev1.ResourceList
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for _, name := range sortedResourceNames(part.list) {
			if q := part.list[name]; q.Sign() <= 0 {
				return fmt.Sprintf("%s.%s[%s] is %s; it must be greater than 0", field, part.name, name, q.String())
			}
		}
	}
	for _, name := range sortedResourceNames(r.Requests) {
		req := r.Requests[name]
		if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
			return fmt.Sprintf("%s.requests[%s] (%s) exceeds %s.limits[%s] (%s)", field, name, req.String(), field, name, lim.String())
		}
	}
	return ""
}

func sortedResourceNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
