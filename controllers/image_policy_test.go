package controllers

import (
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

func TestDisallowedImage(t *testing.T) {
	allowed := []string{"registry.example.com/ml/", "ghcr.io/acme/"}
	job := func(edit func(*v1alpha1.DistillationJob)) *v1alpha1.DistillationJob {
		dj := utiltesting.MakeJob("dj", "ns").Obj()
		edit(dj)
		return dj
	}
	cases := []struct {
		name      string
		overrides []imageOverride
		allowed   []string
		wantField string // "" when allowed
	}{
		{"no override", jobImageOverrides(job(func(*v1alpha1.DistillationJob) {})), allowed, ""},
		{"no allow-list: anything goes", jobImageOverrides(job(func(dj *v1alpha1.DistillationJob) { dj.Spec.Training.Image = "evil.io/x:1" })), nil, ""},
		{"allowed annotator", jobImageOverrides(job(func(dj *v1alpha1.DistillationJob) { dj.Spec.Annotation.Image = "ghcr.io/acme/annotator:2" })), allowed, ""},
		{"training elsewhere", jobImageOverrides(job(func(dj *v1alpha1.DistillationJob) { dj.Spec.Training.Image = "evil.io/trainer:1" })), allowed, "spec.training.image"},
		{"annotator elsewhere", jobImageOverrides(job(func(dj *v1alpha1.DistillationJob) { dj.Spec.Annotation.Image = "docker.io/ghcr.io/acme/x" })), allowed, "spec.annotation.image"},
		{"job's serving image elsewhere", jobImageOverrides(job(func(dj *v1alpha1.DistillationJob) { dj.Spec.Serving.Image = "registry.example.com/other/s:1" })), allowed, "spec.serving.image"},
		{"model allowed", modelImageOverrides(utiltesting.MakeModel("m", "ns").Image("registry.example.com/ml/server:1").Obj()), allowed, ""},
		{"model elsewhere", modelImageOverrides(utiltesting.MakeModel("m", "ns").Image("registry.example.com/mlx/server:1").Obj()), allowed, "spec.serving.image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := disallowedImage(tc.overrides, tc.allowed)
			if tc.wantField == "" {
				if msg != "" {
					t.Errorf("refused: %s", msg)
				}
				return
			}
			if !strings.HasPrefix(msg, tc.wantField+" ") || !strings.Contains(msg, "registry.example.com/ml/, ghcr.io/acme/") {
				t.Errorf("message %q should name %s and the allowed prefixes", msg, tc.wantField)
			}
		})
	}
}
