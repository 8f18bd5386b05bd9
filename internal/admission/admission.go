// Package admission applies a CustomResourceDefinition's own schema to an object offline, as the
// apiserver does when the object is created: unknown fields are refused (kubectl's default strict field
// validation), defaults are filled in, and the OpenAPI schema, the embedded metadata rules, the list-type
// invariants and the CEL rules (x-kubernetes-validations) are checked. Errors carry the apiserver's own
// messages, so `distillery validate` says what `kubectl apply` would.
//
// It calls the same k8s.io/apiextensions-apiserver functions as the apiserver's custom resource strategy
// (pkg/registry/customresource: Validate) and create path (k8s.io/apiserver rest.ValidateCreate), not that
// registry package itself, which would pull the etcd client into the CLI. A test compares the messages
// with a real apiserver's (envtest).
package admission

import (
	"fmt"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// Schema is one served version of a CRD, ready to admit objects.
type Schema struct {
	GVK        schema.GroupVersionKind
	Namespaced bool
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
	// hasStatus is the status subresource: a create drops status.
	hasStatus bool
	// scale is the scale subresource, whose replicas path the apiserver checks.
	scale *apiextensionsinternal.CustomResourceSubresourceScale
}

// NewSchemas reads a CRD (YAML or JSON) and prepares every served version that has a schema.
func NewSchemas(crdYAML []byte) ([]*Schema, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(crdYAML, &crd); err != nil {
		return nil, fmt.Errorf("reading the CustomResourceDefinition: %w", err)
	}
	var out []*Schema
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil {
			continue
		}
		s, err := newSchema(&crd, v)
		if err != nil {
			return nil, fmt.Errorf("CustomResourceDefinition %s version %s: %w", crd.Name, v.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// newSchema prepares one version the way the apiserver's custom resource handler does
// (getOrCreateServingInfoFor): the internal schema, the structural schema with pruned defaults, the
// OpenAPI validator and the CEL validator.
func newSchema(crd *apiextensionsv1.CustomResourceDefinition, v apiextensionsv1.CustomResourceDefinitionVersion) (*Schema, error) {
	internal := &apiextensionsinternal.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema, internal, nil); err != nil {
		return nil, fmt.Errorf("converting the schema: %w", err)
	}
	s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("the schema is not structural: %w", err)
	}
	s = s.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		return nil, fmt.Errorf("pruning defaults: %w", err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("building the schema validator: %w", err)
	}
	out := &Schema{
		GVK:        schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind},
		Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		structural: s,
		validator:  validator,
		cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
	}
	if sub := v.Subresources; sub != nil {
		out.hasStatus = sub.Status != nil
		if sub.Scale != nil {
			out.scale = &apiextensionsinternal.CustomResourceSubresourceScale{}
			if err := apiextensionsv1.Convert_v1_CustomResourceSubresourceScale_To_apiextensions_CustomResourceSubresourceScale(sub.Scale, out.scale, nil); err != nil {
				return nil, fmt.Errorf("converting the scale subresource: %w", err)
			}
		}
	}
	return out, nil
}
