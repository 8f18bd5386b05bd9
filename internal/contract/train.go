package contract

// Training modes and student architectures, as written in train.json and distillery.json.
const (
	ModeStepByStep = "step-by-step"
	ModeStandard   = "standard"
	ModeSingleTask = "single-task"

	ArchitectureSeq2Seq = "seq2seq"
	ArchitectureCausal  = "causal"
)

// TrainConfig is train.json, rendered by the operator and read by the student trainer.
type TrainConfig struct {
	Job string `json:"job"`
	// JobUID is the job run's UID; the trainer claims Output.JobDir for it (ClaimJobDir).
	JobUID     string          `json:"jobUID"`
	Student    Student         `json:"student"`
	Data       TrainData       `json:"data"`
	Task       TrainTask       `json:"task"`
	Training   Training        `json:"training"`
	Output     TrainOut        `json:"output"`
	Provenance TrainProvenance `json:"provenance"`
	// Point is set only in a sweep: which of its points this config trains.
	Point *TrainPoint `json:"point,omitempty"`
}

// TrainPoint is one point of a sweep: its index (0-based, in the documented order of spec.experiments)
// and how many points the sweep has.
type TrainPoint struct {
	Index int `json:"index"`
	Total int `json:"total"`
}

// Student is the model to fine-tune: a hub id or a local directory.
type Student struct {
	BaseModel    string `json:"baseModel"`
	Architecture string `json:"architecture"`
}

// TrainData says where the annotations and the eval split are, and which training records are used.
type TrainData struct {
	AnnotationsDir string `json:"annotationsDir"`
	// EvalPath is a JSONL file with gold labels (the annotator also annotates it, EvalShardFileName); when
	// empty, the records of any status whose id hashes below EvalFraction are held out instead.
	EvalPath     string  `json:"evalPath,omitempty"`
	EvalFraction float64 `json:"evalFraction"`
	IDField      string  `json:"idField"`
	InputField   string  `json:"inputField"`
	LabelField   string  `json:"labelField,omitempty"`
	// ValidationFraction of the ok training records (never eval) is the validation slice the best
	// checkpoint is chosen on; 0 disables it (the last step is served).
	ValidationFraction float64 `json:"validationFraction"`
	// Fraction (0 < f <= 1) of the training records left after eval and validation is trained on: those
	// whose id hashes, with SubsetSeed, below it, so a smaller fraction is a subset of a larger one.
	Fraction   float64 `json:"fraction"`
	SubsetSeed int     `json:"subsetSeed"`
}

// TrainTask is what the student learns; prefixes select the task for one model.
type TrainTask struct {
	Type            string   `json:"type"`
	Labels          []string `json:"labels,omitempty"`
	LabelPrefix     string   `json:"labelPrefix"`
	RationalePrefix string   `json:"rationalePrefix"`
}

// Training holds the optimisation settings.
type Training struct {
	Mode                 string  `json:"mode"`
	RationaleWeight      float64 `json:"rationaleWeight"`
	Epochs               int     `json:"epochs"`
	MaxSteps             int     `json:"maxSteps"`
	BatchSize            int     `json:"batchSize"`
	LearningRate         float64 `json:"learningRate"`
	MaxInputLength       int     `json:"maxInputLength"`
	MaxTargetLength      int     `json:"maxTargetLength"`
	Precision            string  `json:"precision"`
	Seed                 int     `json:"seed"`
	CheckpointEverySteps int     `json:"checkpointEverySteps"`
	// EvalEverySteps is how often the validation slice is scored; 0 means about 10 times per run. The last
	// step is always scored.
	EvalEverySteps int `json:"evalEverySteps"`
	// Strategy is StrategyDDP or StrategyFSDP.
	Strategy string `json:"strategy"`
	// LoRA, when set, trains adapters instead of all weights; nil is full fine-tuning.
	LoRA *LoRA `json:"lora,omitempty"`
	// ActivationCheckpointing recomputes activations in the backward pass.
	ActivationCheckpointing bool `json:"activationCheckpointing"`
	// Compile runs each transformer block through torch.compile where it was measured (full fine-tuning of a
	// T5 student in one process on a GPU; step.compiled_blocks_wanted).
	Compile bool `json:"compile"`
	// CUDAGraphs is CUDAGraphsAuto (the trainer chooses; it trains eagerly today) or CUDAGraphsOff.
	CUDAGraphs string `json:"cudaGraphs"`
}

// CUDA graph modes, as written in train.json.
const (
	CUDAGraphsAuto = "auto"
	CUDAGraphsOff  = "off"
)

// Training strategies, as written in train.json.
const (
	StrategyDDP  = "DDP"
	StrategyFSDP = "FSDP"
)

// LoRA configures low-rank adapters (PEFT). An empty TargetModules means PEFT's default for the architecture.
type LoRA struct {
	Rank          int      `json:"rank"`
	Alpha         float64  `json:"alpha"`
	Dropout       float64  `json:"dropout"`
	TargetModules []string `json:"targetModules,omitempty"`
}

// TrainOut says where the trainer writes.
type TrainOut struct {
	// JobDir is the job run's own folder (JobDir); the other paths are inside it (a sweep's point writes
	// in PointDir).
	JobDir        string `json:"jobDir"`
	CheckpointDir string `json:"checkpointDir"`
	ModelDir      string `json:"modelDir"`
	MetricsPath   string `json:"metricsPath"`
	// ReportConfigMap, when set, is the ConfigMap (ReportConfigMapName) the trainer of a single run patches
	// with ReportJSONKey and ReportSVGKey at its end; absent (a sweep's point), it writes only its files.
	ReportConfigMap string `json:"reportConfigMap,omitempty"`
}

// PointsDir is the folder of a sweep's points inside its job folder; PointDir one point's folder.
const PointsDir = "points"

// PointDir is a sweep point's folder relative to the job folder: points/<index>.
func PointDir(index int) string { return PointsDir + "/" + itoa(index) }

// TrainConfigKey is the key of a training config in ConfigMap <job>-config: train.json for a single run,
// train-<index>.json for a sweep's point (index >= 0).
func TrainConfigKey(index int) string {
	if index < 0 {
		return "train.json"
	}
	return "train-" + itoa(index) + ".json"
}

// TrainProvenance is copied into distillery.json so a model says what made it.
type TrainProvenance struct {
	TeacherModel string `json:"teacherModel"`
	PromptHash   string `json:"promptHash"`
	DatasetPath  string `json:"datasetPath"`
}
