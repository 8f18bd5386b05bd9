package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Stage is where a DistillationJob is, for humans; conditions are the truth.
// +kubebuilder:validation:Enum=Pending;Estimating;Annotating;Training;Reporting;Succeeded;Failed;Suspended
type Stage string

// The stages of a DistillationJob.
const (
	StagePending Stage = "Pending"
	// StageEstimating: the estimate Job of spec.annotation.estimate runs.
	StageEstimating Stage = "Estimating"
	StageAnnotating Stage = "Annotating"
	StageTraining   Stage = "Training"
	// StageReporting: a sweep's points are trained and its report Job runs.
	StageReporting Stage = "Reporting"
	StageSucceeded Stage = "Succeeded"
	StageFailed    Stage = "Failed"
	StageSuspended Stage = "Suspended"
)

// DistillationJobStatus is what the operator observed.
type DistillationJobStatus struct {
	// observedGeneration is the spec generation the status describes; written only by a pass that
	// succeeded.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Suspended, Estimated (with spec.annotation.estimate), Annotated, Trained, Reported (sweeps), and the summary conditions Complete and
	// Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// stage is Pending, Estimating, Annotating, Training, Reporting, Succeeded, Failed or Suspended.
	// +optional
	Stage Stage `json:"stage,omitempty"`

	// progress is a short human summary of the running stage, e.g. "4500/5000", "step 300/1000" or, for a
	// sweep, "points 3/8" (finished of all).
	// +optional
	Progress string `json:"progress,omitempty"`

	// rate is the running stage's speed over the last minutes and when it ends at that speed; unset
	// while no stage runs.
	// +optional
	Rate *ProgressRate `json:"rate,omitempty"`

	// estimate is what the estimate stage (spec.annotation.estimate) projects for the annotation, from the
	// teacher's answers about a sample of the dataset.
	// +optional
	Estimate *EstimateStatus `json:"estimate,omitempty"`

	// annotation sums the annotation shards' results and progress.
	// +optional
	Annotation *AnnotationStatus `json:"annotation,omitempty"`

	// training is the trainer's latest progress.
	// +optional
	Training *TrainingStatus `json:"training,omitempty"`

	// evaluation is the trained student's score on the eval split, beside the teacher's; for a sweep, the
	// served point's.
	// +optional
	Evaluation *EvaluationStatus `json:"evaluation,omitempty"`

	// experiments is one row per point of spec.experiments: its settings, state and scores.
	// +optional
	// +listType=map
	// +listMapKey=index
	// +kubebuilder:validation:MaxItems=100
	Experiments []ExperimentStatus `json:"experiments,omitempty"`

	// servedExperiment is the index of the sweep's point whose student is the job's StudentModel.
	// +optional
	ServedExperiment *int32 `json:"servedExperiment,omitempty"`

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

// EstimateStatus is the estimate stage's projection of the whole annotation. Decimals are strings, as
// elsewhere in status.
type EstimateStatus struct {
	// sampleSize is how many inputs were asked about.
	SampleSize int32 `json:"sampleSize"`
	// answered counts the sampled inputs the teacher answered (refusals and failures after retries aside).
	Answered int32 `json:"answered"`
	// inputs is how many inputs the annotation will ask about: the dataset's (or spec.dataset.maxExamples of
	// them) and the eval split's (spec.dataset.eval), which the annotation also asks the teacher about.
	Inputs int64 `json:"inputs"`
	// evalInputs is how many of inputs are the eval split's.
	// +optional
	EvalInputs int64 `json:"evalInputs,omitempty"`
	// tokensPerInputMean and tokensPerInputP95 are the prompt plus completion tokens per answered input:
	// the mean (a decimal string) and the 95th percentile.
	TokensPerInputMean string `json:"tokensPerInputMean"`
	// tokensPerInputP95 is the 95th percentile (nearest rank) of tokens per answered input.
	TokensPerInputP95 int64 `json:"tokensPerInputP95"`
	// projectedTokens is the whole annotation's tokens at the sample's mean (retries and cache hits aside).
	ProjectedTokens int64 `json:"projectedTokens"`
	// projectedCost is projectedTokens at spec.teacher.budget's prices, a decimal string; unset without
	// prices.
	// +optional
	ProjectedCost string `json:"projectedCost,omitempty"`
	// projectedSeconds is how long the annotation takes at the sample's latency with every shard at
	// spec.teacher.maxConcurrency, or at spec.teacher.requestsPerMinute when that is slower.
	ProjectedSeconds int64 `json:"projectedSeconds"`
	// limitedBy is what sets that pace: concurrency or requestsPerMinute.
	// +optional
	LimitedBy string `json:"limitedBy,omitempty"`
	// parseRate is the share of answered inputs whose answer parsed; rejectRate the share of sampled
	// inputs that would not be trained on. Decimal strings from 0 to 1.
	ParseRate string `json:"parseRate"`
	// rejectRate is the share of sampled inputs that would not be trained on (every status but ok).
	RejectRate string `json:"rejectRate"`
	// requests, promptTokens and completionTokens are what the sample itself cost: the teacher's paid
	// answers and their tokens. They count against spec.teacher.budget (the ledger's estimate key) and are
	// part of status.annotation's spend.
	// +optional
	Requests int64 `json:"requests,omitempty"`
	// promptTokens is the sample's prompt tokens.
	// +optional
	PromptTokens int64 `json:"promptTokens,omitempty"`
	// completionTokens is the sample's completion tokens.
	// +optional
	CompletionTokens int64 `json:"completionTokens,omitempty"`
	// tokens is the sample's promptTokens plus completionTokens.
	// +optional
	Tokens int64 `json:"tokens,omitempty"`
	// cost is what the sample cost at spec.teacher.budget's prices, a decimal string; unset without prices.
	// +optional
	Cost string `json:"cost,omitempty"`
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
	// promptTokens and completionTokens are the teacher's token usage. The spend (promptTokens,
	// completionTokens, requests, tokens, cost) includes the estimate's sample (status.estimate), which the
	// budget counts too.
	PromptTokens int64 `json:"promptTokens"`
	// completionTokens is the teacher's completion token usage.
	CompletionTokens int64 `json:"completionTokens"`
	// cacheHits counts answers reused from the cache instead of asking the teacher.
	CacheHits int64 `json:"cacheHits"`
	// requests counts the teacher's paid answers (a request retried until answered counts once).
	// +optional
	Requests int64 `json:"requests,omitempty"`
	// tokens is promptTokens plus completionTokens.
	// +optional
	Tokens int64 `json:"tokens,omitempty"`
	// cost is what the tokens cost at spec.teacher.budget's prices, a decimal string such as "1.2345";
	// unset without prices.
	// +optional
	Cost string `json:"cost,omitempty"`
	// cacheSavedTokens are the tokens the cache hits would have cost.
	// +optional
	CacheSavedTokens int64 `json:"cacheSavedTokens,omitempty"`
	// cacheSavedCost is what the cache hits would have cost, a decimal string; unset without prices.
	// +optional
	CacheSavedCost string `json:"cacheSavedCost,omitempty"`
	// evalTotal counts the annotated lines of spec.dataset.eval (total and done include them).
	// +optional
	EvalTotal int64 `json:"evalTotal,omitempty"`
	// budgetExceeded is true once a shard found the teacher budget spent and stopped asking the teacher.
	// +optional
	BudgetExceeded bool `json:"budgetExceeded,omitempty"`
	// unasked counts the inputs the budget left without a teacher request, in finished shards.
	// +optional
	Unasked int64 `json:"unasked,omitempty"`
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

// ProgressRate is the running stage's speed, measured over a moving window of its progress reports.
type ProgressRate struct {
	// unit is what the rate counts: "inputs" while annotating, "steps" while training.
	Unit string `json:"unit"`
	// perSecond is units per second over the window, a decimal string such as "12.50"; unset until the
	// window spans two reports.
	// +optional
	PerSecond string `json:"perSecond,omitempty"`
	// eta is how long the stage still needs at that speed, counted from the newest report ("6m40s"), or
	// "stale" when no report came for a while (lastReportTime says when the last did); unset while
	// unknown.
	// +optional
	ETA string `json:"eta,omitempty"`
	// etaSeconds is eta in seconds; unset when eta is not a duration.
	// +optional
	ETASeconds *int64 `json:"etaSeconds,omitempty"`
	// lastReportTime is when the newest progress report of the stage was written (its pod's clock).
	// +optional
	LastReportTime *metav1.Time `json:"lastReportTime,omitempty"`
	// samples are the window: the stage's done count at recent reports, oldest first, at least 15 s apart
	// and at most 5 minutes old.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Samples []ProgressSample `json:"samples,omitempty"`
}

// ProgressSample is the done count of the running stage at one progress report.
type ProgressSample struct {
	// time is when the report was written.
	Time metav1.Time `json:"time"`
	// done is how many units were done then.
	Done int64 `json:"done"`
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

// EvaluationMetric names the primary score of an evaluation.
// +kubebuilder:validation:Enum=accuracy;agreement;exactMatch
type EvaluationMetric string

// The primary scores.
const (
	// MetricAccuracy: the eval split has gold labels; the student's label accuracy against them.
	MetricAccuracy EvaluationMetric = "accuracy"
	// MetricAgreement: no gold labels; how often the student's label is the teacher's. Never called
	// accuracy.
	MetricAgreement EvaluationMetric = "agreement"
	// MetricExactMatch: a Generation task; how often the student's answer equals the reference after
	// label normalisation.
	MetricExactMatch EvaluationMetric = "exactMatch"
)

// EvaluationStatus is the student's score on the eval split, beside the teacher's on the same inputs.
// Scores are decimal strings such as "0.8750"; a score that does not apply is absent.
type EvaluationStatus struct {
	// metric is the primary score: accuracy (gold labels), agreement (no gold labels) or exactMatch
	// (Generation).
	// +optional
	Metric EvaluationMetric `json:"metric,omitempty"`
	// examples is the size of the eval split.
	Examples int64 `json:"examples"`
	// accuracy is the student's label accuracy against the gold labels; only with gold labels.
	// +optional
	Accuracy string `json:"accuracy,omitempty"`
	// teacherAccuracy is the teacher's label accuracy on the same inputs (an input it gave no usable answer
	// for counts as wrong); only with gold labels.
	// +optional
	TeacherAccuracy string `json:"teacherAccuracy,omitempty"`
	// agreement is how often the student's label is the teacher's, over the inputs the teacher labelled.
	// +optional
	Agreement string `json:"agreement,omitempty"`
	// exactMatch is the share of answers equal to the reference after normalisation (Generation).
	// +optional
	ExactMatch string `json:"exactMatch,omitempty"`
	// tokenF1 is the mean bag-of-tokens F1 of the answers against the reference (Generation).
	// +optional
	TokenF1 string `json:"tokenF1,omitempty"`
	// bestStep is the step of the checkpoint served: the best on the validation slice.
	// +optional
	BestStep int64 `json:"bestStep,omitempty"`
}

// ExperimentState is where one point of a sweep is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type ExperimentState string

// The states of a sweep's point.
const (
	// ExperimentPending: its training Job waits for a free slot of spec.experiments.maxParallel.
	ExperimentPending ExperimentState = "Pending"
	// ExperimentRunning: its training Job exists and has not finished (queued or waiting pods included).
	ExperimentRunning ExperimentState = "Running"
	// ExperimentSucceeded: its trainer saved its model.
	ExperimentSucceeded ExperimentState = "Succeeded"
	// ExperimentFailed: its training Job failed; the message says why.
	ExperimentFailed ExperimentState = "Failed"
)

// ExperimentStatus is one point of a sweep: its settings, state and scores on the eval split.
type ExperimentStatus struct {
	// index is the point's number in the order of spec.experiments; its training Job is
	// <job>-train-<index>.
	Index int32 `json:"index"`
	// fraction is the share of the training records it trained on, a decimal string.
	Fraction string `json:"fraction"`
	// mode is its training mode.
	Mode TrainingMode `json:"mode"`
	// rationaleWeight is its λ, a decimal string.
	RationaleWeight string `json:"rationaleWeight"`
	// baseModel is its student: a hub id or "pvc/<claim>/<path>".
	BaseModel string `json:"baseModel"`
	// seed is its seed (initialisation, data order, data subset).
	Seed int32 `json:"seed"`
	// state is Pending, Running, Succeeded or Failed.
	State ExperimentState `json:"state"`
	// accuracy is its label accuracy against gold labels, a decimal string; only with gold labels.
	// +optional
	Accuracy string `json:"accuracy,omitempty"`
	// agreement is how often its label is the teacher's, a decimal string.
	// +optional
	Agreement string `json:"agreement,omitempty"`
	// exactMatch is its exact match against the reference, a decimal string (Generation).
	// +optional
	ExactMatch string `json:"exactMatch,omitempty"`
	// steps is how many optimizer steps it trained (while it runs, its trainer's latest report).
	// +optional
	Steps int64 `json:"steps,omitempty"`
	// totalSteps is how many it trains in all, from its trainer's reports.
	// +optional
	TotalSteps int64 `json:"totalSteps,omitempty"`
	// bestStep is the step of its checkpoint kept (the best on the validation slice).
	// +optional
	BestStep int64 `json:"bestStep,omitempty"`
	// wallSeconds is how long its trainer ran, in seconds.
	// +optional
	WallSeconds int64 `json:"wallSeconds,omitempty"`
	// served is true for the point whose student is the job's StudentModel.
	// +optional
	Served bool `json:"served,omitempty"`
	// message says why a point failed, or why it waits.
	// +optional
	Message string `json:"message,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dj;distjob,categories=distillery
// +kubebuilder:printcolumn:name="Stage",type=string,JSONPath=`.status.stage`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="ETA",type=string,JSONPath=`.status.rate.eta`,description="the running stage's time left at its speed over the last minutes, or stale"
// +kubebuilder:printcolumn:name="Accuracy",type=string,JSONPath=`.status.evaluation.accuracy`,description="the served student's accuracy on the eval split (gold labels)"
// +kubebuilder:printcolumn:name="Teacher",type=string,JSONPath=`.status.evaluation.teacherAccuracy`,description="the teacher's accuracy on the same eval split"
// +kubebuilder:printcolumn:name="Cost",type=string,JSONPath=`.status.annotation.cost`,description="the teacher's spend at spec.teacher.budget's prices"
// +kubebuilder:printcolumn:name="Student",type=string,JSONPath=`.status.studentModel`
// +kubebuilder:printcolumn:name="Agreement",type=string,JSONPath=`.status.evaluation.agreement`,priority=1,description="how often the student's label is the teacher's"
// +kubebuilder:printcolumn:name="Complete",type=string,JSONPath=`.status.conditions[?(@.type=="Complete")].status`,priority=1
// +kubebuilder:printcolumn:name="Teacher-Model",type=string,JSONPath=`.spec.teacher.model`,priority=1
// +kubebuilder:printcolumn:name="Tokens",type=integer,JSONPath=`.status.annotation.tokens`,priority=1,description="the teacher's prompt and completion tokens"
// +kubebuilder:printcolumn:name="Rate",type=string,JSONPath=`.status.rate.perSecond`,priority=1,description="inputs/s annotating, steps/s training"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.completionTime) || !has(self.spec.teacher.budget) || !has(oldSelf.spec.teacher.budget) || self.spec.teacher.budget == oldSelf.spec.teacher.budget || (has(oldSelf.status.conditions) && oldSelf.status.conditions.exists(c, c.type == 'Failed' && c.status == 'True' && c.reason == 'BudgetExceeded'))",message="spec.teacher.budget cannot change once the job finished, unless it failed with BudgetExceeded (then a larger budget resumes it)",fieldPath=".spec.teacher.budget"
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
