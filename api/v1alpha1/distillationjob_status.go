package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Stage is where a DistillationJob is, for humans; conditions are the truth.
// +kubebuilder:validation:Enum=Pending;Annotating;Training;Succeeded;Failed;Suspended
type Stage string

// The stages of a DistillationJob.
const (
	StagePending    Stage = "Pending"
	StageAnnotating Stage = "Annotating"
	StageTraining   Stage = "Training"
	StageSucceeded  Stage = "Succeeded"
	StageFailed     Stage = "Failed"
	StageSuspended  Stage = "Suspended"
)

// DistillationJobStatus is what the operator observed.
type DistillationJobStatus struct {
	// observedGeneration is the spec generation the status describes; written only by a pass that
	// succeeded.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Suspended, Annotated, Trained, and the summary conditions Complete and Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// stage is Pending, Annotating, Training, Succeeded, Failed or Suspended.
	// +optional
	Stage Stage `json:"stage,omitempty"`

	// progress is a short human summary of the running stage, e.g. "4500/5000" or "step 300/1000".
	// +optional
	Progress string `json:"progress,omitempty"`

	// annotation sums the annotation shards' results and progress.
	// +optional
	Annotation *AnnotationStatus `json:"annotation,omitempty"`

	// training is the trainer's latest progress.
	// +optional
	Training *TrainingStatus `json:"training,omitempty"`

	// evaluation is the trained student's score on the eval split.
	// +optional
	Evaluation *EvaluationStatus `json:"evaluation,omitempty"`

	// studentModel is the name of the StudentModel this job created.
	// +optional
	StudentModel string `json:"studentModel,omitempty"`

	// startTime is when the job first started a stage.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the job succeeded or failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// AnnotationStatus sums what the annotation shards reported.
type AnnotationStatus struct {
	// total is the number of inputs across shards (known once each shard reported).
	Total int64 `json:"total"`
	// done is the number of inputs answered so far.
	Done int64 `json:"done"`
	// ok is the number of usable annotations.
	OK int64 `json:"ok"`
	// rejected counts unparseable answers and label mismatches.
	Rejected int64 `json:"rejected"`
	// teacherErrors counts inputs the teacher refused or failed on after retries.
	TeacherErrors int64 `json:"teacherErrors"`
	// promptTokens and completionTokens are the teacher's token usage.
	PromptTokens int64 `json:"promptTokens"`
	// completionTokens is the teacher's completion token usage.
	CompletionTokens int64 `json:"completionTokens"`
	// cacheHits counts answers reused from the cache instead of asking the teacher.
	CacheHits int64 `json:"cacheHits"`
	// skippedLines counts dataset lines of the finished shards that were not a JSON object or lacked
	// spec.dataset.inputField; the Annotated condition names the first of them and why.
	// +optional
	SkippedLines int64 `json:"skippedLines,omitempty"`
	// shardsSucceeded of shardsTotal have finished.
	ShardsSucceeded int32 `json:"shardsSucceeded"`
	// shardsTotal is spec.annotation.shards.
	ShardsTotal int32 `json:"shardsTotal"`
	// datasetHash is "sha256:<hex>" of the dataset file as the annotation shards read it (comma-separated
	// hashes when shards read different contents). Set once every shard succeeded.
	// +optional
	DatasetHash string `json:"datasetHash,omitempty"`
}

// TrainingStatus is the trainer's latest progress report.
type TrainingStatus struct {
	// step is the last optimizer step reported.
	Step int64 `json:"step"`
	// totalSteps is the planned number of steps.
	TotalSteps int64 `json:"totalSteps"`
	// loss, labelLoss and rationaleLoss are decimal strings of the latest losses.
	// +optional
	Loss string `json:"loss,omitempty"`
	// labelLoss is the label task's loss.
	// +optional
	LabelLoss string `json:"labelLoss,omitempty"`
	// rationaleLoss is the rationale task's loss.
	// +optional
	RationaleLoss string `json:"rationaleLoss,omitempty"`
}

// EvaluationStatus is the student's eval score.
type EvaluationStatus struct {
	// accuracy is exact-match label accuracy on the eval split, a decimal string such as "0.8750".
	Accuracy string `json:"accuracy"`
	// examples is the size of the eval split.
	Examples int64 `json:"examples"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dj;distjob,categories=distillery
// +kubebuilder:printcolumn:name="Stage",type=string,JSONPath=`.status.stage`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Accuracy",type=string,JSONPath=`.status.evaluation.accuracy`
// +kubebuilder:printcolumn:name="Student",type=string,JSONPath=`.status.studentModel`
// +kubebuilder:printcolumn:name="Complete",type=string,JSONPath=`.status.conditions[?(@.type=="Complete")].status`,priority=1
// +kubebuilder:printcolumn:name="Teacher",type=string,JSONPath=`.spec.teacher.model`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 50",message="metadata.name must be at most 50 characters: the longest name derived from it, the annotation pod hostname <name>-annotate-255, must fit in 63"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must start with a letter and hold only lowercase letters, digits and '-' (no dots): it names the Services <name>-train and <name>-student, which must be DNS labels (starting with a letter before Kubernetes 1.36)"

// DistillationJob runs distilling step-by-step: a teacher LLM annotates a dataset with rationales and
// labels, a small student learns both as two tasks, and the student is served as a StudentModel.
type DistillationJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the user wants.
	// +required
	Spec DistillationJobSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status DistillationJobStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// DistillationJobList is a list of DistillationJobs.
type DistillationJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DistillationJob `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DistillationJob{}, &DistillationJobList{})
}
