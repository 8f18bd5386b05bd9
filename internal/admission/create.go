package admission

import (
	"context"
	"fmt"
	"math"
	"strings"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/operation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

// Create admits obj as a create request in namespace would (namespace fills in an object without one,
// as kubectl does from the context). It returns the object as the apiserver would store it (unknown
// fields refused, status dropped, defaults filled in), or the apiserver's error: a BadRequest for unknown
// fields, an Invalid listing every field error. obj is modified.
func (s *Schema) Create(ctx context.Context, obj map[string]any, namespace string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{Object: obj}
	if unknown, err := s.prune(obj); err != nil {
		return nil, s.undecodable(err)
	} else if len(unknown) > 0 {
		errs := make([]error, 0, len(unknown))
		for _, p := range unknown {
			errs = append(errs, fmt.Errorf(`unknown field "%s"`, p))
		}
		return nil, s.undecodable(runtime.NewStrictDecodingError(errs))
	}
	if s.Namespaced && u.GetNamespace() == "" {
		u.SetNamespace(namespace)
	}
	structuraldefaulting.Default(obj, s.structural)
	if s.hasStatus {
		delete(obj, "status")
	}
	u.SetGeneration(1)
	if errs := s.validateCreate(ctx, u); len(errs) > 0 {
		return nil, apierrors.NewInvalid(s.GVK.GroupKind(), u.GetName(), errs)
	}
	return u, nil
}

// undecodable is the apiserver's answer to a body it cannot decode into the kind.
func (s *Schema) undecodable(err error) error {
	return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v",
		s.GVK.Kind, s.GVK.Version, s.GVK.Kind, err))
}

// prune drops unknown fields and returns their paths, as the apiserver's decoder does under strict field
// validation (schemaCoercingDecoder and unstructuredSchemaCoercer.apply).
func (s *Schema) prune(obj map[string]any) ([]string, error) {
	_, _, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return nil, err
	}
	unknown = append(unknown, structuralpruning.PruneWithOptions(obj, s.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, s.structural)
	ferr, paths := schemaobjectmeta.CoerceWithOptions(nil, obj, s.structural, false,
		schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return nil, ferr
	}
	return append(unknown, paths...), nil
}

// validateCreate is the custom resource strategy's Validate followed by the generic create path's
// metadata check (rest.ValidateCreate), in the same order, so the list reads as the apiserver's.
func (s *Schema) validateCreate(ctx context.Context, u *unstructured.Unstructured) field.ErrorList {
	errs := s.validateTypeMeta(u)
	if len(errs) == 0 {
		errs = append(errs, s.validateObjectMeta(ctx, u)...)
		errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u.Object, s.validator)...)
		errs = append(errs, s.validateScaleSpec(u)...)
	}
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, u.Object, s.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, s.structural, u.Object)...)
	if blocked := blockingError(errs); blocked != nil {
		errs = append(errs, blocked)
	} else {
		celErrs, _ := s.cel.Validate(ctx, nil, s.structural, u.Object, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	if len(errs) == 0 {
		errs = metavalidation.ValidateObjectMetaAccessor(u, s.Namespaced, path.ValidatePathSegmentName, field.NewPath("metadata"))
	}
	return errs
}

func (s *Schema) validateTypeMeta(u *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	if u.GetKind() != s.GVK.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), u.GetKind(), fmt.Sprintf("must be %v", s.GVK.Kind)))
	}
	if want := s.GVK.GroupVersion().String(); u.GetAPIVersion() != want {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), u.GetAPIVersion(), fmt.Sprintf("must be %v", want)))
	}
	return errs
}

func (s *Schema) validateObjectMeta(ctx context.Context, u *unstructured.Unstructured) field.ErrorList {
	raw, ok := u.Object["metadata"]
	meta := &metav1.ObjectMeta{}
	if ok && raw != nil {
		m, isMap := raw.(map[string]any)
		if !isMap {
			return field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, fmt.Sprintf("expected map[string]interface{}, got %T", raw))}
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, meta); err != nil {
			return field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, err.Error())}
		}
	}
	return metavalidation.ValidateObjectMetaDeclaratively(ctx, operation.Create, meta, nil, s.Namespaced,
		metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"),
		utilfeature.DefaultFeatureGate.Enabled(features.DeclarativeValidationBeta))
}

// validateScaleSpec checks the scale subresource's replicas, as the apiserver does on every write.
func (s *Schema) validateScaleSpec(u *unstructured.Unstructured) field.ErrorList {
	if s.scale == nil {
		return nil
	}
	p := strings.TrimPrefix(s.scale.SpecReplicasPath, ".")
	replicas, _, err := unstructured.NestedInt64(u.Object, strings.Split(p, ".")...)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(field.NewPath(s.scale.SpecReplicasPath), replicas, err.Error())}
	case replicas < 0:
		return field.ErrorList{field.Invalid(field.NewPath(s.scale.SpecReplicasPath), replicas, "should be a non-negative integer")}
	case replicas > math.MaxInt32:
		return field.ErrorList{field.Invalid(field.NewPath(s.scale.SpecReplicasPath), replicas, fmt.Sprintf("should be less than or equal to %v", math.MaxInt32))}
	}
	return nil
}

// blockingError is the apiserver's note when schema errors keep the CEL rules from running.
func blockingError(errs field.ErrorList) *field.Error {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return nil
}
