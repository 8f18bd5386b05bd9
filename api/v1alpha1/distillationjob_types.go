package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// DistillationJobSpec describes one distilling step-by-step run. Everything but suspend,
// ttlSecondsAfterFinished, activeDeadlineSeconds, serving and teacher.budget is immutable after creation,
// like a batch Job's template: a different teacher, task or dataset is a different job.
// +kubebuilder:validation:XValidation:rule="!has(self.storage.accessModes) || !('ReadWriteOncePod' in self.storage.accessModes) || ((!has(self.annotation.shards) || self.annotation.shards == 1) && (!has(self.training.workers) || self.training.workers == 1))",message="spec.storage.accessModes: ReadWriteOncePod lets only one pod use the workspace at a time, so spec.annotation.shards and spec.training.workers must be 1",fieldPath=".storage.accessModes"
// +kubebuilder:validation:XValidation:rule="!has(self.storage.accessModes) || !('ReadWriteOncePod' in self.storage.accessModes) || !has(self.experiments) || !has(self.experiments.maxParallel) || self.experiments.maxParallel == 1",message="spec.storage.accessModes: ReadWriteOncePod lets only one pod use the workspace at a time, so spec.experiments.maxParallel must be 1",fieldPath=".storage.accessModes"
// +kubebuilder:validation:XValidation:rule="has(self.experiments) == has(oldSelf.experiments)",message="spec.experiments is immutable: it cannot be added or removed after creation"
type DistillationJobSpec struct {
	// teacher is the large LLM that writes a rationale and a label for every input.
	// Immutable, except budget (which can be changed, not added or removed).
	// +required
	// +kubebuilder:validation:XValidation:rule="self.endpoint == oldSelf.endpoint && self.model == oldSelf.model && (has(self.apiKeySecretRef) ? has(oldSelf.apiKeySecretRef) && self.apiKeySecretRef == oldSelf.apiKeySecretRef : !has(oldSelf.apiKeySecretRef)) && (has(self.maxConcurrency) ? has(oldSelf.maxConcurrency) && self.maxConcurrency == oldSelf.maxConcurrency : !has(oldSelf.maxConcurrency)) && (has(self.requestsPerMinute) ? has(oldSelf.requestsPerMinute) && self.requestsPerMinute == oldSelf.requestsPerMinute : !has(oldSelf.requestsPerMinute)) && (has(self.temperature) ? has(oldSelf.temperature) && self.temperature == oldSelf.temperature : !has(oldSelf.temperature)) && (has(self.maxTokens) ? has(oldSelf.maxTokens) && self.maxTokens == oldSelf.maxTokens : !has(oldSelf.maxTokens)) && (has(self.timeoutSeconds) ? has(oldSelf.timeoutSeconds) && self.timeoutSeconds == oldSelf.timeoutSeconds : !has(oldSelf.timeoutSeconds)) && (has(self.maxRetries) ? has(oldSelf.maxRetries) && self.maxRetries == oldSelf.maxRetries : !has(oldSelf.maxRetries))",message="spec.teacher is immutable, except spec.teacher.budget"
	// +kubebuilder:validation:XValidation:rule="has(self.budget) == has(oldSelf.budget)",message="spec.teacher.budget cannot be added to or removed from a job after it was created; change its caps instead",fieldPath=".budget"
	Teacher TeacherSpec `json:"teacher"`

	// task is the few-shot chain-of-thought task the teacher is prompted with.
	// Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.task is immutable"
	Task TaskSpec `json:"task"`

	// dataset is the unlabelled (or gold-labelled) input data, as JSONL.
	// Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.dataset is immutable"
	Dataset DatasetSpec `json:"dataset"`

	// annotation configures the annotation stage (the pods that query the teacher).
	// Immutable.
	// +optional
	// +kubebuilder:default={}
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.annotation is immutable"
	Annotation AnnotationSpec `json:"annotation,omitempty"`

	// student is the small model to train.
	// Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.student is immutable"
	Student StudentSpec `json:"student"`

	// training configures the training stage (the multi-task loss and the pods that run it).
	// Immutable.
	// +optional
	// +kubebuilder:default={}
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.training is immutable"
	Training TrainingSpec `json:"training,omitempty"`

	// experiments, when set, makes the job a sweep: it annotates once, then trains one student per point of
	// the lists' Cartesian product, each in a training Job of its own, evaluates every one on the same eval
	// split and serves one of them. Default: unset, one student from spec.training and spec.student.
	// Immutable.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.experiments is immutable"
	Experiments *ExperimentsSpec `json:"experiments,omitempty"`

	// serving configures the StudentModel the job creates when training succeeds. Mutable; changes apply to
	// a StudentModel the job has not created yet.
	// +optional
	// +kubebuilder:default={}
	Serving JobServingSpec `json:"serving,omitempty"`

	// storage is the job's workspace volume (annotations, cache, checkpoints, model).
	// Immutable. Default: a 10Gi ReadWriteOnce PVC of the default storage class, created by the operator.
	// +optional
	// +kubebuilder:default={}
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.storage is immutable"
	Storage StorageSpec `json:"storage,omitempty"`

	// suspend stops the running stage (its Job is suspended, its pods deleted) until set back to false.
	// Default: false.
	// +optional
	Suspend *bool `json:"suspend,omitempty"`

	// ttlSecondsAfterFinished deletes the job (and its stage Jobs) this many seconds after it succeeded or
	// failed. The StudentModel and the model files stay. Default: unset, never deleted.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// activeDeadlineSeconds fails the job with reason DeadlineExceeded when it has run this long (time
	// spent suspended counts). Default: unset, no deadline.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
}

// TeacherSpec says how to reach an OpenAI-compatible endpoint (vLLM, TGI, OpenAI, Ollama, ...).
type TeacherSpec struct {
	// endpoint is the base URL of the OpenAI-compatible API, e.g. http://vllm.teachers:8000/v1.
	// Requests go to endpoint + "/chat/completions". It carries no credentials (user:key@) and no query
	// string: the key goes in apiKeySecretRef. Refusals never repeat the value.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="spec.teacher.endpoint must be an http:// or https:// URL",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[a-zA-Z][-a-zA-Z0-9+.]*://[^/?#]*@')",message="spec.teacher.endpoint must not carry credentials (user:key@host): put the key in a Secret and name it in spec.teacher.apiKeySecretRef",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="spec.teacher.endpoint must not have a query string or fragment: give the base URL ending in /v1 (requests go to endpoint + /chat/completions); a key belongs in spec.teacher.apiKeySecretRef",reason=FieldValueForbidden
	// +kubebuilder:validation:XValidation:rule="!self.matches('/(chat/)?completions/*$')",message="spec.teacher.endpoint must be the base URL ending in /v1, not .../chat/completions or .../completions: requests go to endpoint + /chat/completions",reason=FieldValueForbidden
	Endpoint string `json:"endpoint"`

	// model is the teacher model name sent in every request.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Model string `json:"model"`

	// apiKeySecretRef selects the Secret key holding the API key, sent as "Authorization: Bearer".
	// Default: no key.
	// +optional
	APIKeySecretRef *SecretKeyRef `json:"apiKeySecretRef,omitempty"`

	// maxConcurrency is the most requests in flight per annotation pod. Default: 16.
	// +optional
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	MaxConcurrency int32 `json:"maxConcurrency,omitempty"`

	// requestsPerMinute caps the request rate per annotation pod. Default: unset, no cap.
	// +optional
	// +kubebuilder:validation:Minimum=1
	RequestsPerMinute *int32 `json:"requestsPerMinute,omitempty"`

	// temperature is the sampling temperature, a decimal string such as "0" or "0.7". Default: "0".
	// +optional
	// +kubebuilder:default="0"
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	Temperature string `json:"temperature,omitempty"`

	// maxTokens is the most tokens the teacher may write per answer. Default: 256.
	// +optional
	// +kubebuilder:default=256
	// +kubebuilder:validation:Minimum=1
	MaxTokens int32 `json:"maxTokens,omitempty"`

	// timeoutSeconds is the per-request timeout. Default: 60.
	// +optional
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=1
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`

	// maxRetries is how often a request is retried on 429, 5xx, timeouts and connection errors. Default: 5.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxRetries *int32 `json:"maxRetries,omitempty"`

	// budget caps what the annotation stage spends on the teacher, over all shards together; with
	// prices it also puts the cost in status. The only part of teacher that can change after creation:
	// raising it resumes a job stopped by it. Default: unset, no cap.
	// +optional
	Budget *TeacherBudget `json:"budget,omitempty"`
}

// BudgetAction is what a job does when its teacher budget runs out.
// +kubebuilder:validation:Enum=Fail;Train
type BudgetAction string

const (
	// BudgetActionFail fails the job with reason BudgetExceeded; raising the budget above the spend
	// resumes the annotation where it stopped.
	BudgetActionFail BudgetAction = "Fail"
	// BudgetActionTrain trains the student on the usable annotations the budget paid for.
	BudgetActionTrain BudgetAction = "Train"
)

// TeacherBudget caps the teacher's spend. The shards stop asking the teacher when the caps are reached;
// each may pass them by the one request it started last (docs/operating.md).
// +kubebuilder:validation:XValidation:rule="!has(self.maxCost) || (has(self.promptPricePerMillion) && has(self.completionPricePerMillion))",message="spec.teacher.budget.maxCost needs promptPricePerMillion and completionPricePerMillion",fieldPath=".maxCost"
type TeacherBudget struct {
	// maxTokens caps the prompt plus completion tokens of the teacher's answers. Default: unset, no cap.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxTokens *int64 `json:"maxTokens,omitempty"`

	// maxRequests caps the teacher's answers: a request retried until answered counts once; refused and
	// failed requests are not billed and do not count; cache hits are free. Default: unset, no cap.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRequests *int64 `json:"maxRequests,omitempty"`

	// maxCost caps the cost at the prices below, a decimal string in their currency such as "25" or
	// "12.50". Default: unset, no cap.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0",message="spec.teacher.budget.maxCost must be greater than 0"
	MaxCost string `json:"maxCost,omitempty"`

	// promptPricePerMillion is the price of one million prompt tokens, a decimal string such as "3" or
	// "0.15". Default: unset.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	PromptPricePerMillion string `json:"promptPricePerMillion,omitempty"`

	// completionPricePerMillion is the price of one million completion tokens, a decimal string.
	// Default: unset.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	CompletionPricePerMillion string `json:"completionPricePerMillion,omitempty"`

	// onExceeded is what the job does when the budget runs out: Fail (reason BudgetExceeded; a larger
	// budget resumes it) or Train (on the usable annotations so far). Default: Fail.
	// +optional
	// +kubebuilder:default=Fail
	OnExceeded BudgetAction `json:"onExceeded,omitempty"`
}

// SecretKeyRef selects one key of a Secret in the job's namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// key is the key within the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && !self.startsWith('..')",message="a Secret key must not be '.' or start with '..'"
	Key string `json:"key"`
}

// TaskType says what the student learns to produce.
// +kubebuilder:validation:Enum=Classification;Generation
type TaskType string

const (
	// TaskTypeClassification: the label is one of spec.task.labels.
	TaskTypeClassification TaskType = "Classification"
	// TaskTypeGeneration: the label is free text.
	TaskTypeGeneration TaskType = "Generation"
)

// TaskSpec is the few-shot chain-of-thought task.
// +kubebuilder:validation:XValidation:rule="self.type != 'Classification' || (has(self.labels) && size(self.labels) >= 2)",message="spec.task.labels must list at least 2 labels when spec.task.type is Classification"
// +kubebuilder:validation:XValidation:rule="has(self.examples) != has(self.examplesFrom)",message="spec.task must set exactly one of examples or examplesFrom"
// +kubebuilder:validation:XValidation:rule="self.type != 'Classification' || !has(self.examples) || !has(self.labels) || self.examples.all(e, e.label in self.labels)",message="spec.task.examples: every example's label must be one of spec.task.labels",fieldPath=".examples"
type TaskSpec struct {
	// type is Classification or Generation.
	// +required
	Type TaskType `json:"type"`

	// instruction tells the teacher what to do; it opens every prompt.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Instruction string `json:"instruction"`

	// labels are the allowed labels of a Classification task; teacher answers outside them are rejected.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Labels []string `json:"labels,omitempty"`

	// answerMarker separates the rationale from the label in the teacher's answer.
	// Default: "So the answer is".
	// +optional
	// +kubebuilder:default="So the answer is"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	AnswerMarker string `json:"answerMarker,omitempty"`

	// examples are the hand-written few-shot demonstrations (1 to 32).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Examples []FewShotExample `json:"examples,omitempty"`

	// examplesFrom reads the demonstrations from a ConfigMap key holding JSONL
	// ({"input","rationale","label"} per line).
	// +optional
	ExamplesFrom *ConfigMapKeyRef `json:"examplesFrom,omitempty"`
}

// FewShotExample is one demonstration: an input, the reasoning, the answer.
type FewShotExample struct {
	// input is the example's input text.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	Input string `json:"input"`
	// rationale is the step-by-step reasoning that leads to the label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	Rationale string `json:"rationale"`
	// label is the answer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Label string `json:"label"`
}

// ConfigMapKeyRef selects one key of a ConfigMap in the job's namespace.
type ConfigMapKeyRef struct {
	// name is the ConfigMap's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// key is the key within the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && !self.startsWith('..')",message="a ConfigMap key must not be '.' or start with '..'"
	Key string `json:"key"`
}

// VolumeFileRef is a file or folder on a PersistentVolumeClaim in the job's namespace.
type VolumeFileRef struct {
	// claimName is the PersistentVolumeClaim's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ClaimName string `json:"claimName"`
	// path is relative to the volume's root, e.g. "datasets/anli/train.jsonl".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.contains('..')",message="path must be relative and must not contain '..'"
	Path string `json:"path"`
}

// DataSource is exactly one place a JSONL file is read from.
type DataSource struct {
	// configMap reads the JSONL from a ConfigMap key (small datasets, demos).
	// +optional
	ConfigMap *ConfigMapKeyRef `json:"configMap,omitempty"`
	// persistentVolumeClaim reads the JSONL from a file on a PVC.
	// +optional
	PersistentVolumeClaim *VolumeFileRef `json:"persistentVolumeClaim,omitempty"`
}

// DatasetSpec is the input data: one JSON object per line.
// +kubebuilder:validation:XValidation:rule="[has(self.configMap), has(self.persistentVolumeClaim)].filter(x, x).size() == 1",message="spec.dataset must set exactly one source: configMap or persistentVolumeClaim"
type DatasetSpec struct {
	DataSource `json:",inline"`

	// idField is the field holding each record's unique id. Default: "id".
	// +optional
	// +kubebuilder:default="id"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	IDField string `json:"idField,omitempty"`

	// inputField is the field holding the input text. Default: "input".
	// +optional
	// +kubebuilder:default="input"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	InputField string `json:"inputField,omitempty"`

	// labelField is the field holding a gold label. Default: unset, the teacher's labels are used.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	LabelField string `json:"labelField,omitempty"`

	// evalFraction of the dataset's records is held out as the eval split when eval is not set, chosen by
	// a hash of the record id before any teacher answer or filter is seen; a decimal string in (0, 0.5].
	// The teacher annotates them too, so its accuracy is measured on the same inputs. Default: "0.1".
	// +optional
	// +kubebuilder:default="0.1"
	// +kubebuilder:validation:Pattern=`^0(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0 && double(self) <= 0.5",message="spec.dataset.evalFraction must be greater than 0 and at most 0.5"
	EvalFraction string `json:"evalFraction,omitempty"`

	// eval is a separate eval split with gold labels in labelField. Default: unset, evalFraction is used.
	// +optional
	// +kubebuilder:validation:XValidation:rule="[has(self.configMap), has(self.persistentVolumeClaim)].filter(x, x).size() == 1",message="spec.dataset.eval must set exactly one source: configMap or persistentVolumeClaim"
	Eval *DataSource `json:"eval,omitempty"`

	// maxExamples annotates (and pays the teacher for) only a random sample of this many usable dataset
	// lines, drawn over the whole dataset with spec.training.seed, the same on every shard and retry; the
	// eval split, when evalFraction makes one, comes out of it. Default: unset, every line.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxExamples *int32 `json:"maxExamples,omitempty"`
}

// AnnotationSpec configures the annotation stage.
type AnnotationSpec struct {
	// shards is how many annotation pods split the dataset (an Indexed Job). Default: 1, at most 256.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	Shards int32 `json:"shards,omitempty"`

	// image runs the annotator. Default: the operator's --annotator-image.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^\S*$`
	Image string `json:"image,omitempty"`

	// resources of each annotation pod. Default: 100m CPU and 128Mi memory requested.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// filter decides which teacher answers become training targets.
	// +optional
	// +kubebuilder:default={}
	Filter AnnotationFilter `json:"filter,omitempty"`

	// estimate, when set, runs a first stage before annotation: one short Job asks the teacher about a
	// seeded sample of the dataset with the job's real prompt and puts the projected tokens, cost and time
	// and the sample's parse and reject rates in status.estimate and the Estimated condition. It runs even
	// while spec.suspend is true, so a job created suspended waits with its estimate in status until it is
	// approved (spec.suspend: false). An estimate that parses no answer, or a teacher that cannot be
	// reached, fails the job before annotation is paid. Default: unset, no estimate.
	// Immutable (with spec.annotation).
	// +optional
	Estimate *EstimateSpec `json:"estimate,omitempty"`
}

// EstimateSpec configures the estimate stage.
type EstimateSpec struct {
	// sampleSize is how many inputs of the dataset the estimate asks the teacher about, drawn with
	// spec.training.seed (the rule of spec.dataset.maxExamples). Default: 20, from 1 to 500.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 500",message="spec.annotation.estimate.sampleSize must be from 1 to 500"
	SampleSize int32 `json:"sampleSize,omitempty"`
}

// AnnotationFilter decides which teacher answers are kept.
type AnnotationFilter struct {
	// dropLabelMismatch rejects an answer whose label differs from the input's gold label.
	// Default: true.
	// +optional
	// +kubebuilder:default=true
	DropLabelMismatch *bool `json:"dropLabelMismatch,omitempty"`
}

// Architecture is the student's model family.
// +kubebuilder:validation:Enum=Seq2Seq;CausalLM
type Architecture string

const (
	// ArchitectureSeq2Seq is an encoder-decoder student such as T5.
	ArchitectureSeq2Seq Architecture = "Seq2Seq"
	// ArchitectureCausalLM is a decoder-only student.
	ArchitectureCausalLM Architecture = "CausalLM"
)

// StudentSpec is the small model to train.
// +kubebuilder:validation:XValidation:rule="has(self.baseModel) != has(self.baseModelFrom)",message="spec.student must set exactly one of baseModel or baseModelFrom"
type StudentSpec struct {
	// baseModel is a Hugging Face hub id, e.g. "google/t5-v1_1-base".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	BaseModel string `json:"baseModel,omitempty"`

	// baseModelFrom is a model directory (save_pretrained layout) on a PVC.
	// +optional
	BaseModelFrom *VolumeFileRef `json:"baseModelFrom,omitempty"`

	// architecture is Seq2Seq (T5 and the like) or CausalLM (decoder-only). Default: Seq2Seq.
	// +optional
	// +kubebuilder:default=Seq2Seq
	Architecture Architecture `json:"architecture,omitempty"`
}

// TrainingMode is how rationales are used.
// +kubebuilder:validation:Enum=StepByStep;Standard;SingleTask
type TrainingMode string

const (
	// TrainingModeStepByStep trains label and rationale as two tasks of one model:
	// L = L_label + rationaleWeight * L_rationale.
	TrainingModeStepByStep TrainingMode = "StepByStep"
	// TrainingModeStandard trains on labels only (standard fine-tuning).
	TrainingModeStandard TrainingMode = "Standard"
	// TrainingModeSingleTask puts rationale and label in one target.
	TrainingModeSingleTask TrainingMode = "SingleTask"
)

// Precision is the training number format.
// +kubebuilder:validation:Enum=Auto;BF16;FP32
type Precision string

// The training number formats.
const (
	// PrecisionAuto is bf16 on a GPU and fp32 on a CPU.
	PrecisionAuto Precision = "Auto"
	// PrecisionBF16 trains in bfloat16 mixed precision.
	PrecisionBF16 Precision = "BF16"
	// PrecisionFP32 trains in float32.
	PrecisionFP32 Precision = "FP32"
)

// CUDAGraphsMode says whether the trainer may replay its steps as CUDA graphs.
// +kubebuilder:validation:Enum=Auto;Off
type CUDAGraphsMode string

// The CUDA graph modes.
const (
	// CUDAGraphsAuto lets the trainer choose. It trains eagerly today: CUDA graphs made the step faster
	// but did not shorten a measured job through the trainer's loop (docs/benchmarks.md).
	CUDAGraphsAuto CUDAGraphsMode = "Auto"
	// CUDAGraphsOff trains eagerly.
	CUDAGraphsOff CUDAGraphsMode = "Off"
)

// DecoderCompileMode says whether a student server may compile its decoder.
// +kubebuilder:validation:Enum=Auto;Off
type DecoderCompileMode string

// The decoder compile modes.
const (
	// DecoderCompileAuto compiles a T5 student's decoder layers and encoder blocks on a GPU whose image has a
	// C compiler, before the server captures its CUDA graphs.
	DecoderCompileAuto DecoderCompileMode = "Auto"
	// DecoderCompileOff decodes uncompiled.
	DecoderCompileOff DecoderCompileMode = "Off"
)

// TrainingStrategy is how the training processes share the work.
// +kubebuilder:validation:Enum=DDP;FSDP
type TrainingStrategy string

// The training strategies.
const (
	// TrainingStrategyDDP replicates the model in every process and averages gradients (DistributedDataParallel).
	TrainingStrategyDDP TrainingStrategy = "DDP"
	// TrainingStrategyFSDP shards parameters, gradients and optimizer state over the processes (FSDP2), for
	// full fine-tuning of students that do not fit one GPU.
	TrainingStrategyFSDP TrainingStrategy = "FSDP"
)

// LoRASpec trains low-rank adapters (LoRA, through PEFT) instead of every weight. The saved model holds the
// adapters merged into the weights, so it is served like a full fine-tune.
type LoRASpec struct {
	// rank is the rank r of each adapter. Default: 16.
	// +optional
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	Rank int32 `json:"rank,omitempty"`

	// alpha scales the adapters' output by alpha/rank, a decimal string greater than 0. Default: "32".
	// +optional
	// +kubebuilder:default="32"
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0",message="spec.training.lora.alpha must be greater than 0"
	Alpha string `json:"alpha,omitempty"`

	// dropout on the adapters' input, a decimal string in [0, 1). Default: "0.05".
	// +optional
	// +kubebuilder:default="0.05"
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="double(self) < 1.0",message="spec.training.lora.dropout must be less than 1"
	Dropout string `json:"dropout,omitempty"`

	// targetModules are the names of the modules that get adapters (e.g. q, v for T5; q_proj, v_proj for
	// Llama). Default: empty, PEFT's choice for the architecture.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	TargetModules []string `json:"targetModules,omitempty"`
}

// TrainingSpec configures the training stage.
// +kubebuilder:validation:XValidation:rule="!has(self.lora) || !has(self.strategy) || self.strategy != 'FSDP'",message="spec.training.lora is supported with strategy DDP only"
// +kubebuilder:validation:XValidation:rule="!has(self.batchSize) || self.batchSize >= (has(self.workers) ? self.workers : 1) * (has(self.gpusPerWorker) && self.gpusPerWorker > 1 ? self.gpusPerWorker : 1)",message="spec.training.batchSize must be at least the number of training processes, workers × gpusPerWorker (a CPU worker, gpusPerWorker 0, is one process): a process with no records in a step would leave the others waiting",fieldPath=".batchSize"
type TrainingSpec struct {
	// mode is StepByStep, Standard or SingleTask. Default: StepByStep.
	// +optional
	// +kubebuilder:default=StepByStep
	Mode TrainingMode `json:"mode,omitempty"`

	// rationaleWeight is λ in L = L_label + λ·L_rationale, a decimal string greater than 0. Default: "1.0".
	// +optional
	// +kubebuilder:default="1.0"
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0",message="spec.training.rationaleWeight must be greater than 0"
	RationaleWeight string `json:"rationaleWeight,omitempty"`

	// epochs over the training annotations. Default: 3. Ignored when maxSteps is set.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	Epochs int32 `json:"epochs,omitempty"`

	// maxSteps stops training after this many optimizer steps. Default: unset, epochs decide.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxSteps *int32 `json:"maxSteps,omitempty"`

	// batchSize is the global batch size (examples per optimizer step). Default: 64.
	// +optional
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	BatchSize int32 `json:"batchSize,omitempty"`

	// learningRate is a decimal string such as "5e-5" or "0.0003". Default: "5e-5".
	// +optional
	// +kubebuilder:default="5e-5"
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0",message="spec.training.learningRate must be greater than 0"
	LearningRate string `json:"learningRate,omitempty"`

	// maxInputLength in tokens; longer inputs are truncated. Default: 512.
	// +optional
	// +kubebuilder:default=512
	// +kubebuilder:validation:Minimum=8
	MaxInputLength int32 `json:"maxInputLength,omitempty"`

	// maxTargetLength in tokens, for labels and rationales. Default: 256.
	// +optional
	// +kubebuilder:default=256
	// +kubebuilder:validation:Minimum=1
	MaxTargetLength int32 `json:"maxTargetLength,omitempty"`

	// precision is Auto (bf16 on GPU, fp32 on CPU), BF16 or FP32. Default: Auto.
	// +optional
	// +kubebuilder:default=Auto
	Precision Precision `json:"precision,omitempty"`

	// seed makes data order and initialisation repeatable. Default: 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Seed int32 `json:"seed,omitempty"`

	// validationFraction of the training records (never the eval split) is held out as a validation slice,
	// on which the trainer scores checkpoints to keep and serve the best one; a decimal string in [0, 0.5].
	// "0" disables it: the last step is served. Default: "0.1".
	// +optional
	// +kubebuilder:default="0.1"
	// +kubebuilder:validation:Pattern=`^0(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="double(self) <= 0.5",message="spec.training.validationFraction must be at most 0.5"
	ValidationFraction string `json:"validationFraction,omitempty"`

	// evalEverySteps is how often, in optimizer steps, the trainer scores the model on the validation slice
	// (always also at the end). Default: 0, about 10 times per run.
	// +optional
	// +kubebuilder:validation:Minimum=0
	EvalEverySteps int32 `json:"evalEverySteps,omitempty"`

	// checkpointEverySteps is how often a checkpoint is written; a restarted pod resumes from the newest.
	// Default: 500.
	// +optional
	// +kubebuilder:default=500
	// +kubebuilder:validation:Minimum=1
	CheckpointEverySteps int32 `json:"checkpointEverySteps,omitempty"`

	// strategy is DDP (a replica per GPU) or FSDP (parameters, gradients and optimizer state sharded over
	// the GPUs, for full fine-tuning of students that do not fit one). One process trains alike under both.
	// Default: DDP.
	// +optional
	// +kubebuilder:default=DDP
	Strategy TrainingStrategy `json:"strategy,omitempty"`

	// lora trains LoRA adapters instead of all weights; the saved model holds merged weights. Needs strategy
	// DDP. Default: unset, full fine-tuning.
	// +optional
	LoRA *LoRASpec `json:"lora,omitempty"`

	// activationCheckpointing recomputes activations in the backward pass (one more forward pass) to keep
	// less of them in GPU memory. Default: false.
	// +optional
	ActivationCheckpointing bool `json:"activationCheckpointing,omitempty"`

	// compile runs each transformer block of a T5 student through torch.compile on a GPU. Steps get faster
	// after a minute or two of compiling at the start, so short jobs lose (docs/benchmarks.md). The trainer
	// leaves it off, and logs why, where it was not measured: on a CPU, for decoder-only students, with more than
	// one process (workers or GPUs), with LoRA, with activation checkpointing, and in an image without a C
	// compiler. Default: false.
	// +optional
	Compile bool `json:"compile,omitempty"`

	// cudaGraphs Auto lets the trainer choose whether to replay each padded batch shape's forward and backward
	// as a CUDA graph (today it trains eagerly: graphs did not shorten a measured job); Off trains eagerly.
	// Default: Auto.
	// +optional
	// +kubebuilder:default=Auto
	CUDAGraphs CUDAGraphsMode `json:"cudaGraphs,omitempty"`

	// workers is the number of training pods (torchrun nodes). Default: 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=128
	Workers int32 `json:"workers,omitempty"`

	// gpusPerWorker is the nvidia.com/gpu count of each pod; 0 trains on CPU. Default: 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16
	GPUsPerWorker *int32 `json:"gpusPerWorker,omitempty"`

	// image runs the student trainer. Default: the operator's --trainer-image.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^\S*$`
	Image string `json:"image,omitempty"`

	// resources of each training pod; nvidia.com/gpu is set from gpusPerWorker. Default: none beyond GPUs.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// nodeSelector for training pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations for training pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// backoffLimit is how often a failed training pod is retried (it resumes from its checkpoint).
	// Default: 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
}

// ServingTemplate is how a student is served.
type ServingTemplate struct {
	// replicas of the student server. Default: 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// compileDecoder Auto lets a T5 student's server on a GPU compile its decoder's layers and its encoder's
	// blocks (torch.compile) before it captures its CUDA graphs: faster decoding, a longer warm-up, and an
	// uncompiled reload when the compiled warm-up raises. "Off" (quoted in YAML) decodes uncompiled, about 1.5x
	// slower per token, for failures that fallback cannot catch or pods that must be ready sooner. Default: Auto.
	// +optional
	// +kubebuilder:default=Auto
	CompileDecoder DecoderCompileMode `json:"compileDecoder,omitempty"`

	// image runs the student server. Default: the operator's --trainer-image (the student runtime).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^\S*$`
	Image string `json:"image,omitempty"`

	// resources of each server pod.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// nodeSelector for server pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations for server pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// autoscaling, when set, creates a HorizontalPodAutoscaler for the StudentModel on CPU use; replicas
	// is then the autoscaler's to set.
	// +optional
	Autoscaling *ServingAutoscaling `json:"autoscaling,omitempty"`

	// auth, when set, requires a bearer token from a Secret on the server's /v1 routes.
	// +optional
	Auth *ServingAuth `json:"auth,omitempty"`

	// allowFrom, when set, creates a NetworkPolicy that admits traffic to the server only from these peers
	// (pod, namespace or IP block selectors, as in a NetworkPolicy rule). Unset: no policy.
	// +optional
	// +listType=atomic
	AllowFrom NetworkPolicyPeers `json:"allowFrom,omitempty"`
}

// JobServingSpec says whether and how the job's StudentModel serves.
type JobServingSpec struct {
	// enabled creates a StudentModel (and its Deployment) when training succeeds. Default: true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	ServingTemplate `json:",inline"`
}

// StorageSpec is the job's workspace volume.
// +kubebuilder:validation:XValidation:rule="!has(self.existingClaim) || !(has(self.size) || has(self.storageClassName) || has(self.accessModes))",message="spec.storage.existingClaim cannot be combined with size, storageClassName or accessModes"
type StorageSpec struct {
	// existingClaim uses this PVC as the workspace instead of creating one.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ExistingClaim string `json:"existingClaim,omitempty"`

	// size of the PVC the operator creates. Default: 10Gi.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="spec.storage.size must be greater than 0"
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName of the PVC the operator creates. Default: the cluster's default class.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	StorageClassName *string `json:"storageClassName,omitempty"`

	// accessModes of the PVC the operator creates: ReadWriteOnce, ReadWriteMany or ReadWriteOncePod
	// (alone). Default: [ReadWriteOnce]; use ReadWriteMany with more than one shard or worker on several
	// nodes.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=3
	// +kubebuilder:validation:items:Enum=ReadWriteOnce;ReadWriteMany;ReadWriteOncePod
	// +kubebuilder:validation:XValidation:rule="!('ReadWriteOncePod' in self) || size(self) == 1",message="spec.storage.accessModes: ReadWriteOncePod cannot be combined with other access modes"
	AccessModes []corev1.PersistentVolumeAccessMode `json:"accessModes,omitempty"`
}

// MaxExperimentPoints bounds a sweep: the point index is at most two digits in the training Jobs'
// names <job>-train-<index> (TestTheLongestAdmittedNamesMakeValidChildren).
const MaxExperimentPoints = 100

// ExperimentsSpec is a sweep over training settings, all from one annotation. Every list that is set is a
// dimension; one that is left out is the single value of spec.training (mode, rationaleWeight, seed),
// spec.student (baseModels) or 1 (dataFractions). The points are the lists' Cartesian product, numbered
// from 0 in this order, the last list varying fastest: baseModels, modes, rationaleWeights, dataFractions,
// seeds (each list in the order written).
// +kubebuilder:validation:XValidation:rule="has(self.dataFractions) || has(self.modes) || has(self.rationaleWeights) || has(self.baseModels) || has(self.seeds)",message="spec.experiments must list at least one of dataFractions, modes, rationaleWeights, baseModels or seeds"
// +kubebuilder:validation:XValidation:rule="(has(self.baseModels) ? size(self.baseModels) : 1) * (has(self.modes) ? size(self.modes) : 1) * (has(self.rationaleWeights) ? size(self.rationaleWeights) : 1) * (has(self.dataFractions) ? size(self.dataFractions) : 1) * (has(self.seeds) ? size(self.seeds) : 1) <= 100",message="spec.experiments has more than 100 points (the product of the lists' sizes)"
// +kubebuilder:validation:XValidation:rule="!has(self.servePoint) || self.servePoint < (has(self.baseModels) ? size(self.baseModels) : 1) * (has(self.modes) ? size(self.modes) : 1) * (has(self.rationaleWeights) ? size(self.rationaleWeights) : 1) * (has(self.dataFractions) ? size(self.dataFractions) : 1) * (has(self.seeds) ? size(self.seeds) : 1)",message="spec.experiments.servePoint must be the index of a point: less than the number of points (the product of the lists' sizes)",fieldPath=".servePoint"
type ExperimentsSpec struct {
	// dataFractions are the shares of the training records each student trains on, decimal strings in
	// (0, 1]. The subsets are nested for one seed: 0.25 takes a part of what 0.5 takes. Default: unset, all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:items:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.all(f, double(f) > 0.0 && double(f) <= 1.0)",message="spec.experiments.dataFractions must each be greater than 0 and at most 1"
	DataFractions []string `json:"dataFractions,omitempty"`

	// modes are the training modes to compare. Default: unset, spec.training.mode.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=3
	Modes []TrainingMode `json:"modes,omitempty"`

	// rationaleWeights are values of λ, decimal strings greater than 0. Default: unset,
	// spec.training.rationaleWeight.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:items:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.all(w, double(w) > 0.0)",message="spec.experiments.rationaleWeights must each be greater than 0"
	RationaleWeights []string `json:"rationaleWeights,omitempty"`

	// baseModels are the students to compare (sizes of one family: spec.student.architecture applies to
	// every one). Default: unset, spec.student.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	BaseModels []ExperimentStudent `json:"baseModels,omitempty"`

	// seeds vary the initialisation, the data order and the data subset. Default: unset,
	// spec.training.seed.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=0
	Seeds []int32 `json:"seeds,omitempty"`

	// maxParallel is how many training Jobs of the sweep run at once. Default: 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxParallel int32 `json:"maxParallel,omitempty"`

	// servePoint is the index of the point whose student becomes the job's StudentModel. Default: unset,
	// the point with the best eval score (accuracy with gold labels, else exact match for Generation,
	// else agreement with the teacher), the lowest index on a tie. A named point that failed is not
	// served: the best one is, and the Trained condition says so.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ServePoint *int32 `json:"servePoint,omitempty"`
}

// ExperimentStudent is one base model of a sweep: a Hugging Face hub id, or a model directory on a PVC.
// +kubebuilder:validation:XValidation:rule="has(self.baseModel) != has(self.baseModelFrom)",message="every entry of spec.experiments.baseModels must set exactly one of baseModel or baseModelFrom"
type ExperimentStudent struct {
	// baseModel is a Hugging Face hub id, e.g. "google/t5-v1_1-small".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	BaseModel string `json:"baseModel,omitempty"`

	// baseModelFrom is a model directory (save_pretrained layout) on a PVC.
	// +optional
	BaseModelFrom *VolumeFileRef `json:"baseModelFrom,omitempty"`
}
