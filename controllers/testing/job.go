// Package testing holds fluent builders of test objects for the controllers' unit and envtest tests:
// DistillationJobs, StudentModels, and the stage Pods and Job/Deployment statuses that a kubelet and the
// Job and Deployment controllers would write in a real cluster.
package testing

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// TeacherEndpoint is the endpoint every test job points at.
const TeacherEndpoint = "http://teacher.test:8000/v1"

// JobWrapper builds a DistillationJob.
type JobWrapper struct{ v1alpha1.DistillationJob }

// MakeJob is a small valid Classification job reading its dataset from ConfigMap "dataset", with the
// schema's defaults filled in (as the API server would), so pure builders see what they see in a cluster.
func MakeJob(name, ns string) *JobWrapper {
	return &JobWrapper{v1alpha1.DistillationJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "DistillationJob"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.DistillationJobSpec{
			Teacher: v1alpha1.TeacherSpec{
				Endpoint: TeacherEndpoint, Model: "teacher-70b", MaxConcurrency: 16, Temperature: "0",
				MaxTokens: 256, TimeoutSeconds: 60, MaxRetries: ptr.To[int32](5),
			},
			Task: v1alpha1.TaskSpec{
				Type: v1alpha1.TaskTypeClassification, Instruction: "Does the hypothesis follow from the premise?",
				Labels: []string{"yes", "no"}, AnswerMarker: "So the answer is",
				Examples: []v1alpha1.FewShotExample{{Input: "A dog runs. Is it moving?", Rationale: "Running is moving.", Label: "yes"}},
			},
			Dataset: v1alpha1.DatasetSpec{
				DataSource: v1alpha1.DataSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "dataset", Key: "train.jsonl"}},
				IDField:    "id", InputField: "input", EvalFraction: "0.1",
			},
			Annotation: v1alpha1.AnnotationSpec{Shards: 1, Filter: v1alpha1.AnnotationFilter{DropLabelMismatch: ptr.To(true)}},
			Student:    v1alpha1.StudentSpec{BaseModel: "google/t5-v1_1-small", Architecture: v1alpha1.ArchitectureSeq2Seq},
			Training: v1alpha1.TrainingSpec{
				Mode: v1alpha1.TrainingModeStepByStep, RationaleWeight: "1.0", Epochs: 3, BatchSize: 64, LearningRate: "5e-5",
				MaxInputLength: 512, MaxTargetLength: 256, Precision: v1alpha1.PrecisionAuto, CheckpointEverySteps: 500,
				Workers: 1, GPUsPerWorker: ptr.To[int32](1), BackoffLimit: ptr.To[int32](3), ValidationFraction: "0.1",
				Strategy: v1alpha1.TrainingStrategyDDP,
			},
			Serving: v1alpha1.JobServingSpec{Enabled: ptr.To(true), ServingTemplate: v1alpha1.ServingTemplate{Replicas: ptr.To[int32](1)}},
		},
	}}
}

// Obj returns the built job.
func (w *JobWrapper) Obj() *v1alpha1.DistillationJob { return w.DistillationJob.DeepCopy() }

// UID sets metadata.uid, as the API server would (for unit tests of builders that write owner refs).
func (w *JobWrapper) UID(uid string) *JobWrapper { w.ObjectMeta.UID = types.UID(uid); return w }

// Label sets a label on the job.
func (w *JobWrapper) Label(k, v string) *JobWrapper {
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	w.Labels[k] = v
	return w
}

// Endpoint sets spec.teacher.endpoint.
func (w *JobWrapper) Endpoint(url string) *JobWrapper { w.Spec.Teacher.Endpoint = url; return w }

// APIKey selects the teacher API key Secret.
func (w *JobWrapper) APIKey(secret, key string) *JobWrapper {
	w.Spec.Teacher.APIKeySecretRef = &v1alpha1.SecretKeyRef{Name: secret, Key: key}
	return w
}

// Shards sets spec.annotation.shards.
func (w *JobWrapper) Shards(n int32) *JobWrapper { w.Spec.Annotation.Shards = n; return w }

// Budget sets spec.teacher.budget (onExceeded defaults to Fail, as the schema does).
func (w *JobWrapper) Budget(b v1alpha1.TeacherBudget) *JobWrapper {
	if b.OnExceeded == "" {
		b.OnExceeded = v1alpha1.BudgetActionFail
	}
	w.Spec.Teacher.Budget = &b
	return w
}

// Estimate sets spec.annotation.estimate with the sample size.
func (w *JobWrapper) Estimate(sampleSize int32) *JobWrapper {
	w.Spec.Annotation.Estimate = &v1alpha1.EstimateSpec{SampleSize: sampleSize}
	return w
}

// Suspend sets spec.suspend.
func (w *JobWrapper) Suspend(s bool) *JobWrapper { w.Spec.Suspend = ptr.To(s); return w }

// TTL sets spec.ttlSecondsAfterFinished.
func (w *JobWrapper) TTL(seconds int32) *JobWrapper {
	w.Spec.TTLSecondsAfterFinished = ptr.To(seconds)
	return w
}

// Deadline sets spec.activeDeadlineSeconds.
func (w *JobWrapper) Deadline(seconds int64) *JobWrapper {
	w.Spec.ActiveDeadlineSeconds = ptr.To(seconds)
	return w
}

// BatchSize sets spec.training.batchSize.
func (w *JobWrapper) BatchSize(n int32) *JobWrapper { w.Spec.Training.BatchSize = n; return w }

// Workers sets spec.training.workers.
func (w *JobWrapper) Workers(n int32) *JobWrapper { w.Spec.Training.Workers = n; return w }

// GPUs sets spec.training.gpusPerWorker.
func (w *JobWrapper) GPUs(n int32) *JobWrapper { w.Spec.Training.GPUsPerWorker = ptr.To(n); return w }

// Strategy sets spec.training.strategy.
func (w *JobWrapper) Strategy(s v1alpha1.TrainingStrategy) *JobWrapper {
	w.Spec.Training.Strategy = s
	return w
}

// LoRA sets spec.training.lora.
func (w *JobWrapper) LoRA(l v1alpha1.LoRASpec) *JobWrapper { w.Spec.Training.LoRA = &l; return w }

// RationaleWeight sets spec.training.rationaleWeight.
func (w *JobWrapper) RationaleWeight(s string) *JobWrapper {
	w.Spec.Training.RationaleWeight = s
	return w
}

// TrainingResources sets spec.training.resources.
func (w *JobWrapper) TrainingResources(r corev1.ResourceRequirements) *JobWrapper {
	w.Spec.Training.Resources = &r
	return w
}

// ExistingClaim uses an existing workspace PVC.
func (w *JobWrapper) ExistingClaim(name string) *JobWrapper {
	w.Spec.Storage.ExistingClaim = name
	return w
}

// StorageSize sets spec.storage.size.
func (w *JobWrapper) StorageSize(q string) *JobWrapper {
	w.Spec.Storage.Size = ptr.To(resource.MustParse(q))
	return w
}

// DatasetPVC replaces the dataset source with a PVC file.
func (w *JobWrapper) DatasetPVC(claim, path string) *JobWrapper {
	w.Spec.Dataset.DataSource = v1alpha1.DataSource{PersistentVolumeClaim: &v1alpha1.VolumeFileRef{ClaimName: claim, Path: path}}
	return w
}

// DatasetSource sets the dataset source as given (possibly empty or with two sources, for CEL tests).
func (w *JobWrapper) DatasetSource(src v1alpha1.DataSource) *JobWrapper {
	w.Spec.Dataset.DataSource = src
	return w
}

// EvalConfigMap sets a separate eval split from a ConfigMap key.
func (w *JobWrapper) EvalConfigMap(name, key string) *JobWrapper {
	w.Spec.Dataset.Eval = &v1alpha1.DataSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: name, Key: key}}
	return w
}

// TaskLabels sets spec.task.labels.
func (w *JobWrapper) TaskLabels(labels ...string) *JobWrapper { w.Spec.Task.Labels = labels; return w }

// Generation makes the task a Generation task.
func (w *JobWrapper) Generation() *JobWrapper {
	w.Spec.Task.Type = v1alpha1.TaskTypeGeneration
	return w
}

// Examples sets spec.task.examples.
func (w *JobWrapper) Examples(ex ...v1alpha1.FewShotExample) *JobWrapper {
	w.Spec.Task.Examples = ex
	return w
}

// ExamplesFrom sets spec.task.examplesFrom.
func (w *JobWrapper) ExamplesFrom(name, key string) *JobWrapper {
	w.Spec.Task.ExamplesFrom = &v1alpha1.ConfigMapKeyRef{Name: name, Key: key}
	return w
}

// BaseModelFrom sets spec.student.baseModelFrom.
func (w *JobWrapper) BaseModelFrom(claim, path string) *JobWrapper {
	w.Spec.Student.BaseModelFrom = &v1alpha1.VolumeFileRef{ClaimName: claim, Path: path}
	return w
}

// BaseModel sets spec.student.baseModel.
func (w *JobWrapper) BaseModel(id string) *JobWrapper { w.Spec.Student.BaseModel = id; return w }

// Experiments makes the job a sweep (spec.experiments), with maxParallel defaulted to 1 as the API server
// would.
func (w *JobWrapper) Experiments(e v1alpha1.ExperimentsSpec) *JobWrapper {
	if e.MaxParallel == 0 {
		e.MaxParallel = 1
	}
	w.Spec.Experiments = &e
	return w
}

// LabelField sets spec.dataset.labelField (gold labels).
func (w *JobWrapper) LabelField(f string) *JobWrapper { w.Spec.Dataset.LabelField = f; return w }

// ServingEnabled sets spec.serving.enabled.
func (w *JobWrapper) ServingEnabled(on bool) *JobWrapper {
	w.Spec.Serving.Enabled = ptr.To(on)
	return w
}

// ServingReplicas sets spec.serving.replicas.
func (w *JobWrapper) ServingReplicas(n int32) *JobWrapper {
	w.Spec.Serving.Replicas = ptr.To(n)
	return w
}

// ModelWrapper builds a StudentModel.
type ModelWrapper struct{ v1alpha1.StudentModel }

// MakeModel is a StudentModel serving the model at claim "models", path "anli".
func MakeModel(name, ns string) *ModelWrapper {
	return &ModelWrapper{v1alpha1.StudentModel{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "StudentModel"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.StudentModelSpec{
			Artifact:  v1alpha1.VolumeFileRef{ClaimName: "models", Path: "anli"},
			BaseModel: "google/t5-v1_1-small",
			Serving:   v1alpha1.ServingTemplate{Replicas: ptr.To[int32](1)},
		},
	}}
}

// Obj returns the built model.
func (w *ModelWrapper) Obj() *v1alpha1.StudentModel { return w.StudentModel.DeepCopy() }

// UID sets metadata.uid.
func (w *ModelWrapper) UID(uid string) *ModelWrapper { w.ObjectMeta.UID = types.UID(uid); return w }

// Artifact sets spec.artifact.
func (w *ModelWrapper) Artifact(claim, path string) *ModelWrapper {
	w.Spec.Artifact = v1alpha1.VolumeFileRef{ClaimName: claim, Path: path}
	return w
}

// Replicas sets spec.serving.replicas.
func (w *ModelWrapper) Replicas(n int32) *ModelWrapper { w.Spec.Serving.Replicas = ptr.To(n); return w }

// Image sets spec.serving.image.
func (w *ModelWrapper) Image(img string) *ModelWrapper { w.Spec.Serving.Image = img; return w }

// CompileDecoder sets spec.serving.compileDecoder.
func (w *ModelWrapper) CompileDecoder(m v1alpha1.DecoderCompileMode) *ModelWrapper {
	w.Spec.Serving.CompileDecoder = m
	return w
}

// Stopped sets spec.stopped.
func (w *ModelWrapper) Stopped(s bool) *ModelWrapper { w.Spec.Stopped = s; return w }

// Autoscaling sets spec.serving.autoscaling.
func (w *ModelWrapper) Autoscaling(min, max int32) *ModelWrapper {
	w.Spec.Serving.Autoscaling = &v1alpha1.ServingAutoscaling{MinReplicas: ptr.To(min), MaxReplicas: max}
	return w
}

// AllowFrom sets spec.serving.allowFrom.
func (w *ModelWrapper) AllowFrom(peers ...networkingv1.NetworkPolicyPeer) *ModelWrapper {
	w.Spec.Serving.AllowFrom = peers
	return w
}

// Auth sets spec.serving.auth to the Secret key name/key.
func (w *ModelWrapper) Auth(name, key string) *ModelWrapper {
	w.Spec.Serving.Auth = &v1alpha1.ServingAuth{APIKeySecretRef: v1alpha1.SecretKeyRef{Name: name, Key: key}}
	return w
}
