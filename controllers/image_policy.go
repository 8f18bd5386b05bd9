package controllers

import (
	"fmt"
	"strings"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The image policy: with --allowed-image-prefixes set, every image a spec names instead of the operator's
// own (spec.annotation.image, spec.training.image, spec.serving.image) must start with one of the
// prefixes, compared as written (no registry or tag normalisation). The operator's own images are the
// administrator's choice and are not checked. A refused spec fails before any child exists.

// imageOverride is one image a spec names, with the field it is in.
type imageOverride struct{ field, image string }

// jobImageOverrides are the images a DistillationJob names; the serving image passes to its StudentModel.
func jobImageOverrides(dj *v1alpha1.DistillationJob) []imageOverride {
	return []imageOverride{
		{"spec.annotation.image", dj.Spec.Annotation.Image},
		{"spec.training.image", dj.Spec.Training.Image},
		{"spec.serving.image", dj.Spec.Serving.Image},
	}
}

// modelImageOverrides are the images a StudentModel names.
func modelImageOverrides(sm *v1alpha1.StudentModel) []imageOverride {
	return []imageOverride{{"spec.serving.image", sm.Spec.Serving.Image}}
}

// disallowedImage says which override is outside the allowed prefixes, naming the field and the
// prefixes; "" when every override is allowed (or no allow-list is set).
func disallowedImage(overrides []imageOverride, allowed []string) string {
	if len(allowed) == 0 {
		return ""
	}
	for _, o := range overrides {
		if o.image == "" || hasAnyPrefix(o.image, allowed) {
			continue
		}
		return fmt.Sprintf("%s %q is not allowed: this operator runs only images starting with %s (--allowed-image-prefixes)",
			o.field, o.image, strings.Join(allowed, ", "))
	}
	return ""
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
