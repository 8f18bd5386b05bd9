package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StudentModelSpec is a trained student and how to serve it.
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
}

// ModelMetrics is the student's eval score, copied from the job that trained it.
type ModelMetrics struct {
	// accuracy is exact-match label accuracy on the eval split, a decimal string.
	// +optional
	Accuracy string `json:"accuracy,omitempty"`
	// evalExamples is the size of the eval split.
	// +optional
	EvalExamples int64 `json:"evalExamples,omitempty"`
}

// ModelSource says what made the student.
type ModelSource struct {
	// job is the DistillationJob that trained it.
	// +optional
	Job string `json:"job,omitempty"`
	// teacherModel is the teacher that annotated the data.
	// +optional
	TeacherModel string `json:"teacherModel,omitempty"`
	// promptHash identifies the instruction and few-shot examples.
	// +optional
	PromptHash string `json:"promptHash,omitempty"`
	// mode is the training mode.
	// +optional
	Mode TrainingMode `json:"mode,omitempty"`
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

	// metrics are the student's eval scores.
	// +optional
	Metrics *ModelMetrics `json:"metrics,omitempty"`

	// source says which job, teacher and prompt made the student.
	// +optional
	Source *ModelSource `json:"source,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.serving.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=sm,categories=distillery
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Accuracy",type=string,JSONPath=`.status.metrics.accuracy`
// +kubebuilder:printcolumn:name="Base",type=string,JSONPath=`.spec.baseModel`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.readyReplicas`,priority=1
// +kubebuilder:printcolumn:name="Job",type=string,JSONPath=`.status.source.job`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

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
