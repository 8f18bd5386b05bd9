package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

func TestJobSpecRefusal(t *testing.T) {
	q := resource.MustParse
	cfg := Config{AllowedImagePrefixes: []string{"registry.example.com/"}}
	cases := []struct {
		name string
		dj   *v1alpha1.DistillationJob
		want string // a substring of the refusal; "" when the spec is fine
	}{
		{"defaults", utiltesting.MakeJob("dj", "ns").Obj(), ""},
		{"sensible resources", utiltesting.MakeJob("dj", "ns").TrainingResources(corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: q("1"), corev1.ResourceMemory: q("2Gi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: q("2Gi")},
		}).Obj(), ""},
		{"zero limit", utiltesting.MakeJob("dj", "ns").TrainingResources(corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: q("0")},
		}).Obj(), "spec.training.resources.limits[memory] is 0; it must be greater than 0"},
		{"negative request", edited(utiltesting.MakeJob("dj", "ns"), func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Annotation.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("-100m")}}
		}), "spec.annotation.resources.requests[cpu] is -100m"},
		{"request above limit", edited(utiltesting.MakeJob("dj", "ns"), func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Serving.Resources = &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: q("2Gi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: q("1Gi")},
			}
		}), "spec.serving.resources.requests[memory] (2Gi) exceeds spec.serving.resources.limits[memory] (1Gi)"},
		{"image outside the allow-list", edited(utiltesting.MakeJob("dj", "ns"), func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Training.Image = "evil.io/trainer:1"
		}), `spec.training.image "evil.io/trainer:1" is not allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := jobSpecRefusal(tc.dj, cfg)
			if tc.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			se, ok := err.(*specError)
			if !ok || !se.permanent || !strings.Contains(se.msg, tc.want) {
				t.Errorf("refusal = %#v, want a permanent one containing %q", err, tc.want)
			}
		})
	}
}

func TestModelSpecRefusal(t *testing.T) {
	cfg := Config{AllowedImagePrefixes: []string{"registry.example.com/"}}
	if msg := modelSpecRefusal(utiltesting.MakeModel("m", "ns").Image("registry.example.com/s:1").Obj(), cfg); msg != "" {
		t.Errorf("allowed model refused: %s", msg)
	}
	if msg := modelSpecRefusal(utiltesting.MakeModel("m", "ns").Image("evil.io/s:1").Obj(), cfg); !strings.Contains(msg, "spec.serving.image") {
		t.Errorf("refusal %q should name spec.serving.image", msg)
	}
	sm := utiltesting.MakeModel("m", "ns").Obj()
	sm.Spec.Serving.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0")}}
	if msg := modelSpecRefusal(sm, Config{}); !strings.Contains(msg, "spec.serving.resources.limits[cpu]") {
		t.Errorf("refusal %q should name spec.serving.resources.limits[cpu]", msg)
	}
}
