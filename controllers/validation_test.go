package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

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
		wantMsg   string // optional: what the refusal must also say (the rule that refused it)
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
		{name: "estimate sampleSize 0", job: valid().Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, map[string]any{"sampleSize": int64(0)}, "spec", "annotation", "estimate")
		}, wantField: "spec.annotation.estimate.sampleSize"},
		{name: "estimate sampleSize 501", job: valid().Estimate(501).Obj(), wantField: "spec.annotation.estimate.sampleSize"},
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
		{name: "batchSize below the training processes", job: valid().BatchSize(7).Workers(2).GPUs(4).Obj(), wantField: "spec.training.batchSize"},
		{name: "batchSize below the workers on CPUs", job: valid().BatchSize(1).Workers(2).GPUs(0).Obj(), wantField: "spec.training.batchSize"},
		{name: "lora alpha 0", job: valid().LoRA(v1alpha1.LoRASpec{Alpha: "0"}).Obj(), wantField: "spec.training.lora.alpha"},
		{name: "lora dropout 1", job: valid().LoRA(v1alpha1.LoRASpec{Dropout: "1"}).Obj(), wantField: "spec.training.lora.dropout"},
		{name: "lora rank 0", job: valid().Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, map[string]any{"rank": int64(0)}, "spec", "training", "lora")
		}, wantField: "spec.training.lora.rank"},

		// Names: every name derived from the job's must be valid (the longest is the annotation pod
		// hostname <name>-annotate-255, a DNS-1123 label; the Services <name>-train and <name>-student
		// are DNS-1035 labels).
		{name: "name of 51 characters", job: utiltesting.MakeJob(strings.Repeat("a", 51), ns).Obj(), wantField: "metadata.name"},
		{name: "name of 55 characters", job: utiltesting.MakeJob(strings.Repeat("a", 55), ns).Obj(), wantField: "metadata.name"},
		{name: "name with a dot", job: utiltesting.MakeJob("my.job", ns).Obj(), wantField: "metadata.name"},
		{name: "name starting with a digit (a Service name before Kubernetes 1.36)", job: utiltesting.MakeJob("1job", ns).Obj(), wantField: "metadata.name"},

		// Quantities.
		{name: "storage size 0", job: valid().StorageSize("0").Obj(), wantField: "spec.storage.size"},
		{name: "storage size negative", job: valid().StorageSize("-1Gi").Obj(), wantField: "spec.storage.size"},
		// Storage.
		{name: "unknown access mode", job: edited(valid(), func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Storage.AccessModes = []corev1.PersistentVolumeAccessMode{"ReadWriteSometimes"}
		}), wantField: "spec.storage.accessModes"},
		{name: "ReadWriteOncePod with another mode", job: edited(valid(), func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Storage.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod, corev1.ReadWriteMany}
		}), wantField: "spec.storage.accessModes"},
		{name: "ReadWriteOncePod with two shards", job: edited(valid().Shards(2), func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Storage.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}
		}), wantField: "spec.storage.accessModes"},
		{name: "storage size 0 as a number", job: valid().Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, int64(0), "spec", "storage", "size")
		}, wantField: "spec.storage.size"},
		{name: "existing claim not a DNS name", job: valid().ExistingClaim("My_Claim").Obj(), wantField: "spec.storage.existingClaim"},

		// References to Secrets, ConfigMaps and claims.
		{name: "secret key with a space", job: valid().APIKey("teacher", "api key").Obj(), wantField: "spec.teacher.apiKeySecretRef.key"},
		{name: "secret key '..'", job: valid().APIKey("teacher", "..key").Obj(), wantField: "spec.teacher.apiKeySecretRef.key"},
		{name: "secret name with capitals", job: valid().APIKey("Teacher", "key").Obj(), wantField: "spec.teacher.apiKeySecretRef.name"},
		{name: "configmap key with a slash", job: valid().DatasetSource(v1alpha1.DataSource{
			ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "data", Key: "data/train.jsonl"},
		}).Obj(), wantField: "spec.dataset.configMap.key"},
		{name: "examplesFrom configmap name with a space", job: valid().Examples().ExamplesFrom("my shots", "k").Obj(), wantField: "spec.task.examplesFrom.name"},
		{name: "claim name with capitals", job: valid().DatasetPVC("Data", "train.jsonl").Obj(), wantField: "spec.dataset.persistentVolumeClaim.claimName"},

		// The teacher's budget.
		{name: "budget maxCost without prices", job: valid().Budget(v1alpha1.TeacherBudget{MaxCost: "10", PromptPricePerMillion: "3"}).Obj(),
			wantField: "spec.teacher.budget.maxCost"},
		{name: "budget maxCost 0", job: valid().Budget(v1alpha1.TeacherBudget{MaxCost: "0", PromptPricePerMillion: "3", CompletionPricePerMillion: "15"}).Obj(),
			wantField: "spec.teacher.budget.maxCost"},
		{name: "budget price not a decimal", job: valid().Budget(v1alpha1.TeacherBudget{PromptPricePerMillion: "$3"}).Obj(),
			wantField: "spec.teacher.budget.promptPricePerMillion"},
		{name: "budget maxTokens 0", job: valid().Budget(v1alpha1.TeacherBudget{MaxTokens: ptr.To[int64](0)}).Obj(),
			wantField: "spec.teacher.budget.maxTokens"},
		{name: "budget onExceeded unknown", job: valid().Budget(v1alpha1.TeacherBudget{MaxRequests: ptr.To[int64](9), OnExceeded: "Pray"}).Obj(),
			wantField: "spec.teacher.budget.onExceeded"},
		{name: "budget maxRequests 0", job: valid().Budget(v1alpha1.TeacherBudget{MaxRequests: ptr.To[int64](0)}).Obj(),
			wantField: "spec.teacher.budget.maxRequests", wantMsg: "greater than or equal to 1"},

		// The teacher's endpoint.
		{name: "endpoint with user:key@", job: valid().Endpoint("https://user:sk-secret@api.example.com/v1").Obj(), wantField: "spec.teacher.endpoint"},
		{name: "endpoint with a key as user", job: valid().Endpoint("https://sk-secret@api.example.com/v1").Obj(), wantField: "spec.teacher.endpoint"},
		{name: "endpoint with a key in the query", job: valid().Endpoint("https://api.example.com/v1?api_key=sk-secret").Obj(), wantField: "spec.teacher.endpoint"},
		{name: "endpoint with a fragment", job: valid().Endpoint("https://api.example.com/v1#sk-secret").Obj(), wantField: "spec.teacher.endpoint",
			wantMsg: "must not have a query string or fragment"},
		{name: "endpoint ending in /chat/completions", job: valid().Endpoint("https://api.example.com/v1/chat/completions").Obj(), wantField: "spec.teacher.endpoint"},
		{name: "endpoint ending in /completions/", job: valid().Endpoint("http://vllm:8000/v1/completions/").Obj(), wantField: "spec.teacher.endpoint"},

		// Dataset fields and labels.
		{name: "empty idField", job: valid().Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, "", "spec", "dataset", "idField")
		}, wantField: "spec.dataset.idField"},
		{name: "empty inputField", job: valid().Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, "", "spec", "dataset", "inputField")
		}, wantField: "spec.dataset.inputField"},
		{name: "empty labelField", job: valid().Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, "", "spec", "dataset", "labelField")
		}, wantField: "spec.dataset.labelField"},
		{name: "eval with two sources", job: edited(valid(), func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Dataset.Eval = &v1alpha1.DataSource{
				ConfigMap:             &v1alpha1.ConfigMapKeyRef{Name: "evalset", Key: "eval.jsonl"},
				PersistentVolumeClaim: &v1alpha1.VolumeFileRef{ClaimName: "data", Path: "eval.jsonl"},
			}
		}), wantField: "spec.dataset.eval", wantMsg: "spec.dataset.eval must set exactly one source"},
		{name: "eval with no source", job: edited(valid(), func(dj *v1alpha1.DistillationJob) { dj.Spec.Dataset.Eval = &v1alpha1.DataSource{} }),
			wantField: "spec.dataset.eval", wantMsg: "spec.dataset.eval must set exactly one source"},
		{name: "empty label", job: valid().TaskLabels("yes", "").Obj(), wantField: "spec.task.labels[1]"},
		{name: "duplicate label", job: valid().TaskLabels("yes", "no", "yes").Obj(), wantField: "spec.task.labels[2]"},
		{name: "example label outside the labels", job: valid().Examples(v1alpha1.FewShotExample{
			Input: "A cat sleeps. Is it moving?", Rationale: "Sleeping is not moving.", Label: "maybe",
		}).Obj(), wantField: "spec.task.examples"},

		// Images.
		{name: "image with a space", job: edited(valid(), func(dj *v1alpha1.DistillationJob) { dj.Spec.Training.Image = "student: 1" }),
			wantField: "spec.training.image"},

		// Model selection and sweeps.
		{name: "validationFraction above 0.5", job: edited(valid(), func(dj *v1alpha1.DistillationJob) { dj.Spec.Training.ValidationFraction = "0.6" }),
			wantField: "spec.training.validationFraction"},
		{name: "experiments listing nothing", job: valid().Experiments(v1alpha1.ExperimentsSpec{}).Obj(), wantField: "spec.experiments"},
		{name: "experiments of 112 points", job: valid().Experiments(v1alpha1.ExperimentsSpec{
			DataFractions: fractions(16), Seeds: []int32{0, 1, 2, 3, 4, 5, 6},
		}).Obj(), wantField: "spec.experiments"},
		{name: "servePoint past the last point", job: valid().Experiments(v1alpha1.ExperimentsSpec{
			Seeds: []int32{0, 1}, ServePoint: ptr.To[int32](2),
		}).Obj(), wantField: "spec.experiments.servePoint"},
		{name: "data fraction 0", job: valid().Experiments(v1alpha1.ExperimentsSpec{DataFractions: []string{"0", "1"}}).Obj(),
			wantField: "spec.experiments.dataFractions"},
		{name: "data fraction 1.5", job: valid().Experiments(v1alpha1.ExperimentsSpec{DataFractions: []string{"1.5"}}).Obj(),
			wantField: "spec.experiments.dataFractions"},
		{name: "data fraction not a number", job: valid().Experiments(v1alpha1.ExperimentsSpec{DataFractions: []string{"half"}}).Obj(),
			wantField: "spec.experiments.dataFractions[0]"},
		{name: "rationale weight 0", job: valid().Experiments(v1alpha1.ExperimentsSpec{RationaleWeights: []string{"1", "0"}}).Obj(),
			wantField: "spec.experiments.rationaleWeights"},
		{name: "negative seed", job: valid().Experiments(v1alpha1.ExperimentsSpec{Seeds: []int32{-1}}).Obj(),
			wantField: "spec.experiments.seeds[0]"},
		{name: "a mode twice", job: valid().Experiments(v1alpha1.ExperimentsSpec{
			Modes: []v1alpha1.TrainingMode{v1alpha1.TrainingModeStandard, v1alpha1.TrainingModeStandard},
		}).Obj(), wantField: "spec.experiments.modes[1]"},
		{name: "unknown mode", job: valid().Experiments(v1alpha1.ExperimentsSpec{Modes: []v1alpha1.TrainingMode{"Distill"}}).Obj(),
			wantField: "spec.experiments.modes[0]"},
		{name: "base model entry with both sources", job: valid().Experiments(v1alpha1.ExperimentsSpec{BaseModels: []v1alpha1.ExperimentStudent{
			{BaseModel: "t5-small", BaseModelFrom: &v1alpha1.VolumeFileRef{ClaimName: "models", Path: "t5"}},
		}}).Obj(), wantField: "spec.experiments.baseModels[0]"},
		{name: "base model entry with neither source", job: valid().Experiments(v1alpha1.ExperimentsSpec{BaseModels: []v1alpha1.ExperimentStudent{
			{BaseModel: "t5-small"}, {},
		}}).Obj(), wantField: "spec.experiments.baseModels[1]", wantMsg: "must set exactly one of baseModel or baseModelFrom"},
		{name: "maxParallel 0", job: valid().Experiments(v1alpha1.ExperimentsSpec{Seeds: []int32{0, 1}}).Obj(), raw: func(u map[string]any) {
			_ = unstructured.SetNestedField(u, int64(0), "spec", "experiments", "maxParallel")
		}, wantField: "spec.experiments.maxParallel"},
		{name: "maxParallel 101", job: valid().Experiments(v1alpha1.ExperimentsSpec{Seeds: []int32{0, 1}, MaxParallel: 101}).Obj(),
			wantField: "spec.experiments.maxParallel", wantMsg: "less than or equal to 100"},
		{name: "ReadWriteOncePod with points in parallel", job: edited(valid().Experiments(v1alpha1.ExperimentsSpec{Seeds: []int32{0, 1}, MaxParallel: 2}),
			func(dj *v1alpha1.DistillationJob) {
				dj.Spec.Storage.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}
			}), wantField: "spec.storage.accessModes"},
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
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error %q does not name %s", err, tc.wantField)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "sk-secret") {
				t.Errorf("the refusal repeats the key: %q", err)
			}
		})
	}
}

// fractions are n distinct data fractions, "0.01" to "0.<n>".
func fractions(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("0.%02d", i+1)
	}
	return out
}

// edited applies edit to the wrapper's job, for fields the wrapper has no method for.
func edited(w *utiltesting.JobWrapper, edit func(*v1alpha1.DistillationJob)) *v1alpha1.DistillationJob {
	dj := w.Obj()
	edit(dj)
	return dj
}

func TestValidationAcceptsTheLongestNamesAndEdgeValues(t *testing.T) {
	ns := newNamespace(t)
	good := []struct {
		name string
		obj  client.Object
	}{
		{"job name of 50 characters with 256 shards", utiltesting.MakeJob("j"+strings.Repeat("a", 49), ns).Shards(256).Obj()},
		{"model name of 55 characters", utiltesting.MakeModel("m"+strings.Repeat("a", 54), ns).Obj()},
		{"endpoint with a port and path", utiltesting.MakeJob("endpoint", ns).Endpoint("http://vllm.teachers.svc:8000/openai/v1/").Obj()},
		{"generation task with free examples", utiltesting.MakeJob("generation", ns).Generation().TaskLabels().Examples(v1alpha1.FewShotExample{
			Input: "2+2", Rationale: "Two and two make four.", Label: "4",
		}).Obj()},
		{"secret key with dots and dashes", utiltesting.MakeJob("secretkey", ns).APIKey("teacher-key", "api.key_1-x").Obj()},
		{"a sweep of 100 points serving the last", utiltesting.MakeJob("sweep", ns).Experiments(v1alpha1.ExperimentsSpec{
			DataFractions: append(fractions(9), "1"), Seeds: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, MaxParallel: 100, ServePoint: ptr.To[int32](99),
		}).Obj()},
		{"every sweep dimension", utiltesting.MakeJob("dims", ns).Experiments(v1alpha1.ExperimentsSpec{
			DataFractions: []string{"0.125", "1.0"}, Modes: []v1alpha1.TrainingMode{v1alpha1.TrainingModeStepByStep, v1alpha1.TrainingModeStandard, v1alpha1.TrainingModeSingleTask},
			RationaleWeights: []string{"0.1", "10"}, Seeds: []int32{0},
			BaseModels: []v1alpha1.ExperimentStudent{{BaseModel: "t5-small"}, {BaseModelFrom: &v1alpha1.VolumeFileRef{ClaimName: "models", Path: "t5"}}},
		}).Obj()},
		{"batchSize equal to the training processes", utiltesting.MakeJob("ranks", ns).BatchSize(8).Workers(2).GPUs(4).Obj()},
		{"batchSize 1 on one CPU worker", utiltesting.MakeJob("onecpu", ns).BatchSize(1).GPUs(0).Obj()},
		{"validation disabled", edited(utiltesting.MakeJob("noval", ns), func(dj *v1alpha1.DistillationJob) { dj.Spec.Training.ValidationFraction = "0" })},
		{"ReadWriteOncePod alone, size 1Gi", edited(utiltesting.MakeJob("rwop", ns).StorageSize("1Gi"), func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Storage.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}
		})},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			if err := k8sClient.Create(context.Background(), tc.obj, client.DryRunAll); err != nil {
				t.Errorf("the API server refused a good object: %v", err)
			}
		})
	}
}

func TestValidationRejectsBadModels(t *testing.T) {
	ns := newNamespace(t)
	valid := func() *utiltesting.ModelWrapper { return utiltesting.MakeModel("model", ns) }
	cases := []struct {
		name      string
		model     *v1alpha1.StudentModel
		wantField string
	}{
		{"name of 56 characters", utiltesting.MakeModel("m"+strings.Repeat("a", 55), ns).Obj(), "metadata.name"},
		{"name with a dot", utiltesting.MakeModel("t5.base", ns).Obj(), "metadata.name"},
		{"name starting with a digit", utiltesting.MakeModel("5-base", ns).Obj(), "metadata.name"},
		{"claim name with an underscore", valid().Artifact("my_models", "t5").Obj(), "spec.artifact.claimName"},
		{"image with a space", valid().Image("student :1").Obj(), "spec.serving.image"},
		{"compileDecoder On (Auto or Off)", valid().CompileDecoder("On").Obj(), "spec.serving.compileDecoder"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), tc.model, client.DryRunAll)
			if err == nil {
				t.Fatalf("the API server accepted the bad model")
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error %q does not name %s", err, tc.wantField)
			}
		})
	}
}

// The samples users copy must keep passing admission.
func TestValidationAcceptsTheSamples(t *testing.T) {
	ns := newNamespace(t)
	files, err := filepath.Glob(filepath.Join("..", "config", "samples", "distillery_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(data, &u.Object); err != nil {
				t.Fatal(err)
			}
			u.SetNamespace(ns)
			if err := k8sClient.Create(context.Background(), u, client.DryRunAll); err != nil {
				t.Errorf("the API server refused the sample: %v", err)
			}
		})
	}
}

func TestValidationKeepsTheJobImmutableExceptItsControls(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("frozen", ns).Suspend(true).Budget(v1alpha1.TeacherBudget{MaxTokens: ptr.To[int64](1000)}).Obj())
	createJob(t, utiltesting.MakeJob("unbudgeted", ns).Suspend(true).Obj())

	rejected := []struct {
		name      string
		mutate    func(*v1alpha1.DistillationJob)
		wantField string
	}{
		{"teacher model", func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Model = "other" }, "spec.teacher"},
		{"teacher endpoint", func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Endpoint = "https://other/v1" }, "spec.teacher"},
		{"teacher maxConcurrency", func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.MaxConcurrency = 3 }, "spec.teacher"},
		{"teacher requestsPerMinute added", func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.RequestsPerMinute = ptr.To[int32](60) }, "spec.teacher"},
		{"teacher key added", func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Teacher.APIKeySecretRef = &v1alpha1.SecretKeyRef{Name: "k", Key: "k"}
		}, "spec.teacher"},
		{"task instruction", func(dj *v1alpha1.DistillationJob) { dj.Spec.Task.Instruction = "other" }, "spec.task"},
		{"dataset", func(dj *v1alpha1.DistillationJob) { dj.Spec.Dataset.ConfigMap.Name = "other" }, "spec.dataset"},
		{"shards", func(dj *v1alpha1.DistillationJob) { dj.Spec.Annotation.Shards = 4 }, "spec.annotation"},
		{"estimate added", func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Annotation.Estimate = &v1alpha1.EstimateSpec{SampleSize: 20}
		}, "spec.annotation"},
		{"student", func(dj *v1alpha1.DistillationJob) { dj.Spec.Student.BaseModel = "t5-large" }, "spec.student"},
		{"training", func(dj *v1alpha1.DistillationJob) { dj.Spec.Training.Epochs = 9 }, "spec.training"},
	}
	for _, tc := range rejected {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			err := updateJobSpec(ns, "frozen", func(dj *v1alpha1.DistillationJob) {
				dj.Spec.Teacher.Budget.MaxTokens = ptr.To[int64](2000) // allowed, and allowed with the change
				tc.mutate(dj)
			})
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
		{"teacher budget", func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Teacher.Budget.MaxTokens = ptr.To[int64](5000)
			dj.Spec.Teacher.Budget.MaxRequests = ptr.To[int64](100)
			dj.Spec.Teacher.Budget.OnExceeded = v1alpha1.BudgetActionTrain
		}},
	}
	for _, tc := range accepted {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			if err := updateJobSpec(ns, "frozen", tc.mutate); err != nil {
				t.Errorf("changing %s was rejected: %v", tc.name, err)
			}
		})
	}

	// The budget can change, not come or go: the shards of a running job learn of it from their config.
	for job, mutate := range map[string]func(*v1alpha1.DistillationJob){
		"frozen": func(dj *v1alpha1.DistillationJob) { dj.Spec.Teacher.Budget = nil },
		"unbudgeted": func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Teacher.Budget = &v1alpha1.TeacherBudget{MaxTokens: ptr.To[int64](9)}
		},
	} {
		err := updateJobSpec(ns, job, mutate)
		if err == nil || !strings.Contains(err.Error(), "spec.teacher.budget cannot be added to or removed") {
			t.Errorf("adding or removing the budget of %s: %v", job, err)
		}
	}
}

// The rule that keeps spec.teacher immutable lists its fields one by one (budget may change): a new field
// of TeacherSpec must be added to it.
func TestTheTeacherImmutabilityRuleCoversEveryFieldButTheBudget(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", "distillery.dev_distillationjobs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	var rule string
	for _, v := range crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["teacher"].XValidations {
		if strings.Contains(v.Rule, "self.endpoint == oldSelf.endpoint") {
			rule = v.Rule
		}
	}
	typ := reflect.TypeOf(v1alpha1.TeacherSpec{})
	for i := range typ.NumField() {
		name := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		if name == "budget" {
			if strings.Contains(rule, "self.budget") {
				t.Errorf("the rule compares the budget, which must stay mutable")
			}
			continue
		}
		if !strings.Contains(rule, "self."+name+" == oldSelf."+name) {
			t.Errorf("the spec.teacher immutability rule does not compare %s", name)
		}
	}
}

// A sweep is immutable like the rest of training: it cannot be changed, added or removed.
func TestValidationKeepsTheSweepImmutable(t *testing.T) {
	ns := newNamespace(t)
	createJob(t, utiltesting.MakeJob("plain", ns).Suspend(true).Obj())
	createJob(t, utiltesting.MakeJob("sweep", ns).Suspend(true).Experiments(v1alpha1.ExperimentsSpec{Seeds: []int32{0, 1}}).Obj())
	for _, tc := range []struct {
		name, job string
		mutate    func(*v1alpha1.DistillationJob)
	}{
		{"adding a sweep", "plain", func(dj *v1alpha1.DistillationJob) {
			dj.Spec.Experiments = &v1alpha1.ExperimentsSpec{Seeds: []int32{0, 1}, MaxParallel: 1}
		}},
		{"removing the sweep", "sweep", func(dj *v1alpha1.DistillationJob) { dj.Spec.Experiments = nil }},
		{"changing maxParallel", "sweep", func(dj *v1alpha1.DistillationJob) { dj.Spec.Experiments.MaxParallel = 2 }},
		{"adding a seed", "sweep", func(dj *v1alpha1.DistillationJob) { dj.Spec.Experiments.Seeds = []int32{0, 1, 2} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := updateJobSpec(ns, tc.job, tc.mutate)
			if err == nil || !strings.Contains(err.Error(), "spec.experiments") || !strings.Contains(err.Error(), "immutable") {
				t.Errorf("%s: %v, want a refusal saying spec.experiments is immutable", tc.name, err)
			}
		})
	}
}

// The name limits are exactly the ones the derived names need: with the longest admitted names (and the
// most shards and workers), the apiserver admits every child the builders make; one character more and
// it refuses one, as it does for a dot. This is what the CEL rules on metadata.name were derived from.
// (A leading digit is refused for clusters before Kubernetes 1.36, whose Service names needed a letter.)
func TestTheLongestAdmittedNamesMakeValidChildren(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	job := func(name string) *v1alpha1.DistillationJob {
		return utiltesting.MakeJob(name, ns).UID("u1").Shards(256).Workers(128).GPUs(0).Obj()
	}
	jobChildren := func(dj *v1alpha1.DistillationJob) []client.Object {
		sm := studentModel(dj, renderAnnotateConfig(dj, InlineExamples(dj)))
		sm.UID = "u2"
		objs := []client.Object{
			workspaceClaim(dj, nil), stageConfigMap(dj, InlineExamples(dj)), progressConfigMap(dj), reportConfigMap(dj),
			stageServiceAccount(dj), stageRole(dj), stageRoleBinding(dj),
			annotationJob(dj, testImages), trainingJob(dj, testImages, trainingPoints(dj)[0]), trainingService(dj, trainingPoints(dj)[0]),
			sm, servingDeployment(sm, testImages), servingService(sm),
		}
		// The longest a sweep admits: point 99, an Indexed Job of 128 workers (hostnames <job>-train-99-127).
		sweep := dj.DeepCopy()
		sweep.Spec.Experiments = &v1alpha1.ExperimentsSpec{DataFractions: fractions(10), Seeds: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, MaxParallel: 1}
		last := trainingPoints(sweep)[v1alpha1.MaxExperimentPoints-1]
		return append(objs, trainingJob(sweep, testImages, last), trainingService(sweep, last), reportJob(sweep, testImages))
	}
	modelChildren := func(sm *v1alpha1.StudentModel) []client.Object {
		return []client.Object{servingDeployment(sm, testImages), servingService(sm)}
	}
	for _, obj := range append(jobChildren(job("j"+strings.Repeat("a", 49))),
		modelChildren(utiltesting.MakeModel("m"+strings.Repeat("a", 54), ns).UID("u3").Obj())...) {
		if err := k8sClient.Create(ctx, obj, client.DryRunAll); err != nil {
			t.Errorf("%T %s refused: %v", obj, obj.GetName(), err)
		}
	}
	refusedOne := func(what string, objs []client.Object) {
		t.Helper()
		for _, obj := range objs {
			if err := k8sClient.Create(ctx, obj, client.DryRunAll); err != nil {
				t.Logf("%s: %T refused: %v", what, obj, err)
				return
			}
		}
		t.Errorf("%s: every child was admitted, so the name rule is stricter than it needs to be", what)
	}
	refusedOne("a 51-character job name", jobChildren(job("j"+strings.Repeat("a", 50))))
	refusedOne("a job name with a dot", jobChildren(job("my.job")))
	refusedOne("a 56-character model name", modelChildren(utiltesting.MakeModel("m"+strings.Repeat("a", 55), ns).UID("u4").Obj()))
}

// kubectl reads manifests with sigs.k8s.io/yaml (YAML 1.1 via yaml.v2), where a bare Off is the boolean false:
// docs/operating.md tells users to quote "Off". Both, through the same decoder and the API server.
func TestCompileDecoderOffMustBeQuotedInYAML(t *testing.T) {
	offMustBeQuotedInYAML(t, "spec.serving.compileDecoder", func(name, value string) []byte {
		return []byte("apiVersion: distillery.dev/v1alpha1\nkind: StudentModel\nmetadata:\n  name: " + name +
			"\nspec:\n  artifact: {claimName: models, path: anli}\n  serving:\n    compileDecoder: " + value + "\n")
	})
}

// spec.training.cudaGraphs is the same Auto|Off enum: a bare Off is refused, a quoted "Off" admitted.
func TestCUDAGraphsOffMustBeQuotedInYAML(t *testing.T) {
	offMustBeQuotedInYAML(t, "spec.training.cudaGraphs", func(name, value string) []byte {
		// A valid job as a manifest, with cudaGraphs written by hand under spec.training.
		b, err := yaml.Marshal(utiltesting.MakeJob(name, "").Obj())
		if err != nil {
			t.Fatal(err)
		}
		const training = "\n  training:\n"
		if n := strings.Count(string(b), training); n != 1 {
			t.Fatalf("the job's manifest has %d spec.training keys:\n%s", n, b)
		}
		return []byte(strings.Replace(string(b), training, training+"    cudaGraphs: "+value+"\n", 1))
	})
}

// offMustBeQuotedInYAML creates (dry run) the manifest with the field written "Off" and Off: the quoted one
// must be admitted, the bare one (false) refused with a message naming the field.
func offMustBeQuotedInYAML(t *testing.T, field string, manifest func(name, value string) []byte) {
	ns := newNamespace(t)
	for _, tc := range []struct {
		name, value string
		accepted    bool
	}{{"quoted", `"Off"`, true}, {"bare", "Off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(manifest("yaml-"+tc.name, tc.value), &u.Object); err != nil {
				t.Fatal(err)
			}
			u.SetNamespace(ns)
			err := k8sClient.Create(context.Background(), u, client.DryRunAll)
			if tc.accepted && err != nil {
				t.Errorf("%s: %s refused: %v", field, tc.value, err)
			}
			if got, _, _ := unstructured.NestedString(u.Object, strings.Split(field, ".")...); tc.accepted && err == nil && got != "Off" {
				t.Errorf("%s admitted as %q, want Off", field, got)
			}
			if !tc.accepted && (err == nil || !strings.Contains(err.Error(), field)) {
				t.Errorf("%s: %s: err = %v, want a refusal naming %s", field, tc.value, err, field)
			}
		})
	}
}
