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
}

// Student is the model to fine-tune: a hub id or a local directory.
type Student struct {
	BaseModel    string `json:"baseModel"`
	Architecture string `json:"architecture"`
}

// TrainData says where the annotations and the eval split are.
type TrainData struct {
	AnnotationsDir string `json:"annotationsDir"`
	// EvalPath is a JSONL file with gold labels; when empty, EvalFraction of the ok records (chosen by a
	// hash of their id) is held out instead.
	EvalPath     string  `json:"evalPath,omitempty"`
	EvalFraction float64 `json:"evalFraction"`
	IDField      string  `json:"idField"`
	InputField   string  `json:"inputField"`
	LabelField   string  `json:"labelField,omitempty"`
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
	// Strategy is StrategyDDP or StrategyFSDP.
	Strategy string `json:"strategy"`
	// LoRA, when set, trains adapters instead of all weights; nil is full fine-tuning.
	LoRA *LoRA `json:"lora,omitempty"`
	// ActivationCheckpointing recomputes activations in the backward pass.
	ActivationCheckpointing bool `json:"activationCheckpointing"`
}

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
	// JobDir is the job run's own folder (JobDir); the other paths are inside it.
	JobDir        string `json:"jobDir"`
	CheckpointDir string `json:"checkpointDir"`
	ModelDir      string `json:"modelDir"`
	MetricsPath   string `json:"metricsPath"`
}

// TrainProvenance is copied into distillery.json so a model says what made it.
type TrainProvenance struct {
	TeacherModel string `json:"teacherModel"`
	PromptHash   string `json:"promptHash"`
	DatasetPath  string `json:"datasetPath"`
}
