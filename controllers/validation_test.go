package controllers

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

// The CRDs' OpenAPI and CEL rules, exercised against the real API server: each bad spec is rejected at
// admission with a message that names the field.

func TestValidationRejectsBadSpecs(t *testing.T) {
	ns := newNamespace(t)
	valid := func() *utiltesting.JobWrapper { return utiltesting.MakeJob("bad", ns) }
	cases := []struct {
		name      string
		job       *v1alpha1.DistillationJob
		raw       func(u map[string]any) // edits the object as JSON, for values the typed client omits
		wantField string
	}{
		{name: "no dataset source", job: valid().DatasetSource(v1alpha1.DataSource{}).Obj(), wantField: "spec.dataset"},
		{name: "two dataset sources", job: valid().DatasetSource(v1alpha1.DataSource{
			ConfigMap:             &v1alpha1.ConfigMapKeyRef{Name: "d", Key: "k"},
			PersistentVolumeClaim: &v1alpha1.VolumeFileRef{ClaimName: "c", Path: "p"},
		}).Obj(), wantField: "spec.dataset"},
		{name: "classification without labels", job: valid().TaskLabels().Obj(), wantField: "spec.task.labels"},
		{name: "classification with one label", job: valid().TaskLabels("yes").Obj(), wantField: "spec.task.labels"},
		{name: "shards 0", job: valid().Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, int64(0), "spec", "annotation", "shards")
		}, wantField: "spec.annotation.shards"},
		{name: "shards 300", job: valid().Shards(300).Obj(), wantField: "spec.annotation.shards"},
		{name: "rationaleWeight 0", job: valid().RationaleWeight("0").Obj(), wantField: "spec.training.rationaleWeight"},
		{name: "rationaleWeight -1", job: valid().RationaleWeight("-1").Obj(), wantField: "spec.training.rationaleWeight"},
		{name: "ftp endpoint", job: valid().Endpoint("ftp://x").Obj(), wantField: "spec.teacher.endpoint"},
		{name: "endpoint not a URL", job: valid().Endpoint("not a url").Obj(), wantField: "spec.teacher.endpoint"},
		{name: "examples and examplesFrom", job: valid().ExamplesFrom("shots", "k").Obj(), wantField: "spec.task"},
		{name: "neither examples nor examplesFrom", job: valid().Examples().Obj(), wantField: "spec.task"},
		{name: "baseModel and baseModelFrom", job: valid().BaseModelFrom("models", "t5").Obj(), wantField: "spec.student"},
		{name: "neither baseModel nor baseModelFrom", job: valid().BaseModel("").Obj(), wantField: "spec.student"},
		{name: "existing claim with size", job: valid().ExistingClaim("ws").StorageSize("1Gi").Obj(), wantField: "spec.storage"},
		{name: "negative ttl", job: valid().TTL(-1).Obj(), wantField: "spec.ttlSecondsAfterFinished"},
		{name: "unknown strategy", job: valid().Strategy("ZeRO").Obj(), wantField: "spec.training.strategy"},
		{name: "lora under FSDP", job: valid().Strategy(v1alpha1.TrainingStrategyFSDP).LoRA(v1alpha1.LoRASpec{}).Obj(), wantField: "spec.training"},
		{name: "lora alpha 0", job: valid().LoRA(v1alpha1.LoRASpec{Alpha: "0"}).Obj(), wantField: "spec.training.lora.alpha"},
		{name: "lora dropout 1", job: valid().LoRA(v1alpha1.LoRASpec{Dropout: "1"}).Obj(), wantField: "spec.training.lora.dropout"},
		{name: "lora rank 0", job: valid().Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, map[string]any{"rank": int64(0)}, "spec", "training", "lora")
		}, wantField: "spec.training.lora.rank"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(tc.job)
			if err != nil {
				t.Fatal(err)
			}
			if tc.raw != nil {
				tc.raw(u)
			}
			err = k8sClient.Create(context.Background(), &unstructured.Unstructured{Object: u})
			if err == nil {
				t.Fatalf("the API server accepted the bad spec")
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error %q does not name %s", err, tc.wantField)
			}
		})
	}
}

func TestValidationKeepsTheJobImmutableExceptItsControls(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("frozen", ns).Suspend(true).Obj())

	rejected := []struct {
		name      string
		mutate    func(*v1alpha1.DistillationJob)
		wantField string
	}{
		{"teacher model", func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Model = "other" }, "spec.teacher"},
		{"teacher endpoint", func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Endpoint = "https://other/v1" }, "spec.teacher"},
		{"task instruction", func(dj *v1alpha1.DistillationJob) { dj.Spec.Task.Instruction = "other" }, "spec.task"},
		{"dataset", func(dj *v1alpha1.DistillationJob) { dj.Spec.Dataset.ConfigMap.Name = "other" }, "spec.dataset"},
		{"shards", func(dj *v1alpha1.DistillationJob) { dj.Spec.Annotation.Shards = 4 }, "spec.annotation"},
		{"student", func(dj *v1alpha1.DistillationJob) { dj.Spec.Student.BaseModel = "t5-large" }, "spec.student"},
		{"training", func(dj *v1alpha1.DistillationJob) { dj.Spec.Training.Epochs = 9 }, "spec.training"},
	}
	for _, tc := range rejected {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			err := updateJobSpec(ns, "frozen", tc.mutate)
			if err == nil {
				t.Fatalf("changing %s after creation was accepted", tc.name)
			}
			if !strings.Contains(err.Error(), tc.wantField) || !strings.Contains(err.Error(), "immutable") {
				t.Errorf("error %q should say %s is immutable", err, tc.wantField)
			}
		})
	}

	accepted := []struct {
		name   string
		mutate func(*v1alpha1.DistillationJob)
	}{
		{"suspend", func(dj *v1alpha1.DistillationJob) { dj.Spec.Suspend = ptr.To(false) }},
		{"ttlSecondsAfterFinished", func(dj *v1alpha1.DistillationJob) { dj.Spec.TTLSecondsAfterFinished = ptr.To[int32](600) }},
		{"activeDeadlineSeconds", func(dj *v1alpha1.DistillationJob) { dj.Spec.ActiveDeadlineSeconds = ptr.To[int64](86400) }},
		{"serving", func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Serving.Replicas = ptr.To[int32](3)
			dj.Spec.Serving.Enabled = ptr.To(false)
		}},
	}
	for _, tc := range accepted {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			if err := updateJobSpec(ns, "frozen", tc.mutate); err != nil {
				t.Errorf("changing %s was rejected: %v", tc.name, err)
			}
		})
	}
}
