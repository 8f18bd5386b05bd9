package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StudentModelSpec is a trained student and how to serve it.
// +kubebuilder:validation:XValidation:rule="has(self.metrics) == has(oldSelf.metrics)",message="spec.metrics is set when the model is created and cannot be added or removed"
// +kubebuilder:validation:XValidation:rule="has(self.provenance) == has(oldSelf.provenance)",message="spec.provenance is set when the model is created and cannot be added or removed"
type StudentModelSpec struct {
	// artifact is the model directory (save_pretrained layout plus distillery.json) on a PVC.
	// +required
	Artifact VolumeFileRef `json:"artifact"`

	// baseModel is the model the student was fine-tuned from (informational).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	BaseModel string `json:"baseModel,omitempty"`

	// serving is the student server's Deployment settings.
	// +optional
	// +kubebuilder:default={}
	Serving ServingTemplate `json:"serving,omitempty"`

	// stopped scales the server to zero and keeps the model, the Service and everything else.
	// Default: false.
	// +optional
	Stopped bool `json:"stopped,omitempty"`

	// metrics are the student's eval scores, written by the DistillationJob that trained it when it
	// creates the model. Immutable.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.metrics is immutable"
	Metrics *ModelMetrics `json:"metrics,omitempty"`

	// provenance says what made the student (job, teacher and its sampling settings, prompt, dataset),
	// written by the DistillationJob that trained it when it creates the model. Immutable.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.provenance is immutable"
	Provenance *ModelProvenance `json:"provenance,omitempty"`
}

// ModelMetrics is the student's eval score beside the teacher's, as the job that trained it measured
// them on its eval split.
type ModelMetrics struct {
	// metric is the primary score: accuracy (gold labels), agreement (no gold labels) or exactMatch
	// (Generation).
	// +optional
	Metric EvaluationMetric `json:"metric,omitempty"`
	// accuracy is the student's label accuracy against the gold labels, a decimal string; only with gold
	// labels.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Accuracy string `json:"accuracy,omitempty"`
	// teacherAccuracy is the teacher's label accuracy on the same inputs, a decimal string; only with gold
	// labels.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	TeacherAccuracy string `json:"teacherAccuracy,omitempty"`
	// agreement is how often the student's label is the teacher's, a decimal string.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Agreement string `json:"agreement,omitempty"`
	// exactMatch is the share of generated answers equal to the reference after normalisation, a decimal
	// string; Generation tasks.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ExactMatch string `json:"exactMatch,omitempty"`
	// tokenF1 is the token-level F1 against the reference, a decimal string; Generation tasks.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	TokenF1 string `json:"tokenF1,omitempty"`
	// evalExamples is the size of the eval split.
	// +optional
	EvalExamples int64 `json:"evalExamples,omitempty"`
	// bestStep is the training step of the checkpoint this model is (the best on the validation slice).
	// +optional
	BestStep int64 `json:"bestStep,omitempty"`
}

// ModelProvenance says what made the student. Everything here comes from the job's snapshot (the
// config rendered once when the job started) and from what its annotator read, never from the job's
// sources as they are later.
type ModelProvenance struct {
	// job is the DistillationJob that trained it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Job string `json:"job,omitempty"`
	// jobUID is that job's UID (a later job of the same name has another).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	JobUID string `json:"jobUID,omitempty"`
	// teacherModel is the teacher that annotated the data.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	TeacherModel string `json:"teacherModel,omitempty"`
	// teacherTemperature is the teacher's sampling temperature, a decimal string.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	TeacherTemperature string `json:"teacherTemperature,omitempty"`
	// teacherMaxTokens is the teacher's completion limit per input, in tokens.
	// +optional
	TeacherMaxTokens int32 `json:"teacherMaxTokens,omitempty"`
	// promptHash identifies the instruction, answer marker, labels and few-shot examples
	// ("sha256:<hex>", docs/workloads.md).
	// +optional
	// +kubebuilder:validation:MaxLength=80
	PromptHash string `json:"promptHash,omitempty"`
	// dataset names the training data the way the job referred to it ("configmap/<name>/<key>" or
	// "pvc/<claim>/<path>").
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Dataset string `json:"dataset,omitempty"`
	// datasetHash is "sha256:<hex>" of the dataset file as the annotator read it. When shards read
	// different contents (the file changed during annotation) it lists every hash seen, comma-separated.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	DatasetHash string `json:"datasetHash,omitempty"`
	// mode is the training mode.
	// +optional
	Mode TrainingMode `json:"mode,omitempty"`
	// teacherSpend is what the teacher was paid for the annotations.
	// +optional
	TeacherSpend *TeacherSpend `json:"teacherSpend,omitempty"`
}

// TeacherSpend is what the teacher was paid for a model's annotations.
type TeacherSpend struct {
	// requests counts the teacher's paid answers.
	// +optional
	Requests int64 `json:"requests,omitempty"`
	// promptTokens of those answers.
	// +optional
	PromptTokens int64 `json:"promptTokens,omitempty"`
	// completionTokens of those answers.
	// +optional
	CompletionTokens int64 `json:"completionTokens,omitempty"`
	// cost at the job's prices, a decimal string; unset without prices.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Cost string `json:"cost,omitempty"`
	// cacheHits counts the answers the cache gave for free.
	// +optional
	CacheHits int64 `json:"cacheHits,omitempty"`
	// budgetExceeded is true when the budget stopped the annotation: the student learned from part of
	// the dataset.
	// +optional
	BudgetExceeded bool `json:"budgetExceeded,omitempty"`
}

// StudentModelStatus is what the operator observed.
type StudentModelStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (summary) and Stopped.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// endpoint is the in-cluster URL of the student's Service, e.g. http://anli-t5.ml.svc:8080.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// replicas is the server Deployment's current replica count.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is how many of them are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// selector is the server pods' label selector, for the scale subresource (kubectl scale, HPA).
	// +optional
	Selector string `json:"selector,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.serving.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=sm,categories=distillery
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Accuracy",type=string,JSONPath=`.spec.metrics.accuracy`,description="the student's accuracy on its job's eval split (gold labels)"
// +kubebuilder:printcolumn:name="Teacher",type=string,JSONPath=`.spec.metrics.teacherAccuracy`,description="the teacher's accuracy on the same eval split"
// +kubebuilder:printcolumn:name="Base",type=string,JSONPath=`.spec.baseModel`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Agreement",type=string,JSONPath=`.spec.metrics.agreement`,priority=1,description="how often the student's label is the teacher's"
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.readyReplicas`,priority=1
// +kubebuilder:printcolumn:name="Job",type=string,JSONPath=`.spec.provenance.job`,priority=1
// +kubebuilder:printcolumn:name="Cost",type=string,JSONPath=`.spec.provenance.teacherSpend.cost`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 55",message="metadata.name must be at most 55 characters: it names the Service <name>-student, which must fit in 63"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must start with a letter and hold only lowercase letters, digits and '-' (no dots): it names the Service <name>-student, which must be a DNS label (starting with a letter before Kubernetes 1.36)"

// StudentModel is a trained student, served by a Deployment and a Service.
type StudentModel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the user (or the DistillationJob that made it) wants.
	// +required
	Spec StudentModelSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status StudentModelStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// StudentModelList is a list of StudentModels.
type StudentModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StudentModel `json:"items"`
}

func init() {
	SchemeBuilder.Register(&StudentModel{}, &StudentModelList{})
}
