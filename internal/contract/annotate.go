package contract

// AnnotateConfig is annotate.json, rendered by the operator and read by the annotator.
type AnnotateConfig struct {
	Job string `json:"job"`
	// JobUID is the job run's UID; the annotator claims Output.JobDir for it (ClaimJobDir).
	JobUID  string      `json:"jobUID"`
	Shards  int         `json:"shards"`
	Teacher Teacher     `json:"teacher"`
	Task    Task        `json:"task"`
	Dataset DatasetRef  `json:"dataset"`
	Filter  Filter      `json:"filter"`
	Output  AnnotateOut `json:"output"`
	// Budget caps what the shards together may spend on the teacher; nil means no budget.
	Budget *Budget `json:"budget,omitempty"`
}

// Teacher says how to reach the teacher LLM and how hard to push it.
type Teacher struct {
	// Endpoint is the OpenAI-compatible base URL; requests go to Endpoint + "/chat/completions".
	Endpoint string `json:"endpoint"`
	Model    string `json:"model"`
	// APIKeyEnv names the environment variable that holds the API key; empty means no key.
	// The key itself is never part of any file.
	APIKeyEnv         string  `json:"apiKeyEnv,omitempty"`
	MaxConcurrency    int     `json:"maxConcurrency"`
	RequestsPerMinute int     `json:"requestsPerMinute"`
	Temperature       float64 `json:"temperature"`
	MaxTokens         int     `json:"maxTokens"`
	TimeoutSeconds    int     `json:"timeoutSeconds"`
	MaxRetries        int     `json:"maxRetries"`
	// MaxResponseBytes bounds the body of one teacher answer that the annotator reads; a longer answer
	// is recorded as unparseable and never asked again. The operator renders MaxResponseBytes(maxTokens);
	// 0 means the same.
	MaxResponseBytes int `json:"maxResponseBytes,omitempty"`
}

// ResponseBytesPerToken and ResponseEnvelopeBytes make the default answer size limit: an answer that
// obeys max_tokens needs a few bytes per token even with every character JSON-escaped, plus the
// chat completion's envelope (id, usage, finish reason).
const (
	ResponseBytesPerToken = 64
	ResponseEnvelopeBytes = 32 << 10
)

// MaxResponseBytes is the answer size limit for maxTokens: ResponseEnvelopeBytes plus
// ResponseBytesPerToken per token (48 KiB for the default 256 tokens).
func MaxResponseBytes(maxTokens int) int {
	return ResponseEnvelopeBytes + ResponseBytesPerToken*max(maxTokens, 0)
}

// Task types, as written in the stage configs and distillery.json.
const (
	TaskClassification = "classification"
	TaskGeneration     = "generation"
)

// Task is the few-shot chain-of-thought task given to the teacher.
type Task struct {
	Type         string    `json:"type"`
	Instruction  string    `json:"instruction"`
	Labels       []string  `json:"labels,omitempty"`
	AnswerMarker string    `json:"answerMarker"`
	Examples     []Example `json:"examples"`
}

// Example is one hand-written few-shot demonstration.
type Example struct {
	Input     string `json:"input"`
	Rationale string `json:"rationale"`
	Label     string `json:"label"`
}

// DatasetRef says where the JSONL dataset is and which fields to read.
type DatasetRef struct {
	Path       string `json:"path"`
	IDField    string `json:"idField"`
	InputField string `json:"inputField"`
	// LabelField is empty when the dataset has no gold labels; the teacher's labels are used then.
	LabelField string `json:"labelField,omitempty"`
	// MaxExamples, when above 0, annotates only a seeded random sample of that many usable lines of the
	// whole dataset, drawn before sharding (docs/workloads.md); 0 means every line.
	MaxExamples int `json:"maxExamples,omitempty"`
	// Seed seeds that sample: the same file, maxExamples and seed give the same sample on every shard
	// and every retry.
	Seed int64 `json:"seed,omitempty"`
	// EvalPath, when set, is the eval split's JSONL (same fields). Shard i also annotates the eval lines
	// whose position modulo shards is i, into EvalShardFileName(i, shards); maxExamples does not apply.
	EvalPath string `json:"evalPath,omitempty"`
}

// Filter drops annotations that must not become training targets.
type Filter struct {
	DropLabelMismatch bool `json:"dropLabelMismatch"`
}

// AnnotateOut says where the annotator writes.
type AnnotateOut struct {
	// JobDir is the job run's own folder (JobDir); Dir is inside it.
	JobDir string `json:"jobDir"`
	Dir    string `json:"dir"`
	// CacheDir is the teacher cache that every job on the volume shares.
	CacheDir string `json:"cacheDir"`
}
