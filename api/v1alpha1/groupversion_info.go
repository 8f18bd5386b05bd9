// Package v1alpha1 holds the distillery.dev/v1alpha1 API: DistillationJob (a declarative distilling
// step-by-step run: annotate with a teacher, train a student, serve it) and StudentModel (a trained student
// and its serving Deployment).
// +kubebuilder:object:generate=true
// +groupName=distillery.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "distillery.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
