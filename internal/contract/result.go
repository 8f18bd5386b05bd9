package contract

// MaxTerminationMessageBytes is what Kubernetes keeps of /dev/termination-log.
const MaxTerminationMessageBytes = 4096

// Stage names used in termination summaries.
const (
	StageAnnotate = "annotate"
	StageTrain    = "train"
)

// ExitCodePermanent is the exit code of a stage program whose failure a retry cannot fix (bad config or
// input, an unreachable teacher). The operator's stage Jobs fail at once on it instead of retrying.
const ExitCodePermanent = 3

// AnnotateResult is the annotator's one-line termination summary.
type AnnotateResult struct {
	Stage            string `json:"stage"`
	Shard            int    `json:"shard"`
	Total            int    `json:"total"`
	OK               int    `json:"ok"`
	Unparseable      int    `json:"unparseable"`
	LabelMismatch    int    `json:"labelMismatch"`
	TeacherErrors    int    `json:"teacherErrors"`
	CacheHits        int    `json:"cacheHits"`
	PromptTokens     int64  `json:"promptTokens"`
	CompletionTokens int64  `json:"completionTokens"`
	// Requests counts the teacher's paid answers (Spend.Requests); the tokens above are theirs.
	Requests int64 `json:"requests"`
	// CacheSavedPromptTokens and CacheSavedCompletionTokens are what the cache hits would have cost.
	CacheSavedPromptTokens     int64 `json:"cacheSavedPromptTokens,omitempty"`
	CacheSavedCompletionTokens int64 `json:"cacheSavedCompletionTokens,omitempty"`
	// EvalTotal counts the records of the eval file's shard (EvalShardFileName); Total includes them.
	EvalTotal int `json:"evalTotal,omitempty"`
	// BudgetExceeded is true when the teacher budget ran out: the shard stopped asking the teacher and
	// left Unasked inputs without a record (a later run with a larger budget asks them).
	BudgetExceeded bool `json:"budgetExceeded,omitempty"`
	Unasked        int  `json:"unasked,omitempty"`
	// DatasetHash is "sha256:<hex>" of the dataset file as this shard read it.
	DatasetHash string `json:"datasetHash,omitempty"`
	// SkippedLines counts the shard's dataset lines that were not valid JSON or lacked the input field.
	SkippedLines int `json:"skippedLines,omitempty"`
	// FirstSkippedLine is the 1-based number (in the dataset file) of the shard's first skipped line, and
	// FirstSkippedError why it was skipped (at most MaxSkippedErrorBytes); both are unset when none was.
	FirstSkippedLine  int    `json:"firstSkippedLine,omitempty"`
	FirstSkippedError string `json:"firstSkippedError,omitempty"`
	// Error is set when the shard failed; it says what failed in words a user can act on.
	Error string `json:"error,omitempty"`
	// Reason is a machine-readable cause for a failed shard, e.g. ReasonTeacherUnreachable.
	Reason string `json:"reason,omitempty"`
}

// MaxSkippedErrorBytes bounds AnnotateResult.FirstSkippedError, so the summary stays under 4 KiB.
const MaxSkippedErrorBytes = 512

// Spend is the shard's paid spend.
func (r AnnotateResult) Spend() Spend {
	return Spend{Requests: r.Requests, PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens}
}

// Failure reasons a stage pod may put in its termination summary.
const (
	// ReasonTeacherUnreachable: no request reached the teacher (connection refused, DNS, TLS, timeouts).
	ReasonTeacherUnreachable = "TeacherUnreachable"
	// ReasonInvalidInput: the config or the dataset could not be used.
	ReasonInvalidInput = "InvalidInput"
)

// TrainResult is the trainer's one-line termination summary.
type TrainResult struct {
	Stage     string  `json:"stage"`
	Steps     int     `json:"steps"`
	TrainLoss float64 `json:"trainLoss"`
	// EvalAccuracy and EvalExamples repeat Evaluation's primary metric and size, for one release.
	EvalAccuracy float64 `json:"evalAccuracy"`
	EvalExamples int     `json:"evalExamples"`
	ModelDir     string  `json:"modelDir"`
	// BestStep is the step of the checkpoint written to ModelDir (the best on the validation slice).
	BestStep int `json:"bestStep,omitempty"`
	// WallSeconds is how long the trainer ran.
	WallSeconds float64 `json:"wallSeconds,omitempty"`
	// Evaluation is the student's and the teacher's score on the eval split.
	Evaluation *Evaluation `json:"evaluation,omitempty"`
	Error      string      `json:"error,omitempty"`
	Reason     string      `json:"reason,omitempty"`
}

// The primary metrics of an Evaluation.
const (
	MetricAccuracy   = "accuracy"
	MetricAgreement  = "agreement"
	MetricExactMatch = "exactMatch"
)

// Evaluation is the eval split's scores. Metric is MetricAccuracy with gold labels, MetricAgreement
// without, MetricExactMatch for generation. A score that does not apply is absent (nil), never 0.
type Evaluation struct {
	Metric          string   `json:"metric"`
	Examples        int      `json:"examples"`
	StudentAccuracy *float64 `json:"studentAccuracy,omitempty"`
	TeacherAccuracy *float64 `json:"teacherAccuracy,omitempty"`
	Agreement       *float64 `json:"agreement,omitempty"`
	ExactMatch      *float64 `json:"exactMatch,omitempty"`
	TokenF1         *float64 `json:"tokenF1,omitempty"`
}

// AnnotateProgress is one shard's key in ConfigMap <job>-progress ("annotate-3"). The spend is the
// shard's so far, records of earlier attempts included, as in AnnotateResult.
type AnnotateProgress struct {
	Done                       int    `json:"done"`
	Total                      int    `json:"total"`
	Requests                   int64  `json:"requests"`
	PromptTokens               int64  `json:"promptTokens"`
	CompletionTokens           int64  `json:"completionTokens"`
	CacheHits                  int    `json:"cacheHits"`
	CacheSavedPromptTokens     int64  `json:"cacheSavedPromptTokens,omitempty"`
	CacheSavedCompletionTokens int64  `json:"cacheSavedCompletionTokens,omitempty"`
	BudgetExceeded             bool   `json:"budgetExceeded,omitempty"`
	UpdatedAt                  string `json:"updatedAt"`
}

// TrainProgress is the trainer's key in ConfigMap <job>-progress ("train-0"; "point-<i>-train-0" for a
// sweep's point).
type TrainProgress struct {
	Step          int     `json:"step"`
	TotalSteps    int     `json:"totalSteps"`
	Loss          float64 `json:"loss"`
	LabelLoss     float64 `json:"labelLoss"`
	RationaleLoss float64 `json:"rationaleLoss"`
	UpdatedAt     string  `json:"updatedAt"`
}

// ProgressConfigMapName is the ConfigMap a job's stage pods report progress to.
func ProgressConfigMapName(job string) string { return job + "-progress" }

// ReportConfigMapName is the ConfigMap that holds a job's report (ReportJSONKey, ReportSVGKey): the
// operator creates it empty; a single run's trainer, or a sweep's report Job, patches it.
func ReportConfigMapName(job string) string { return job + "-report" }

// The keys of the report ConfigMap.
const (
	ReportJSONKey = "report.json"
	ReportSVGKey  = "report.svg"
)

// AnnotateProgressKey and TrainProgressKey are the keys of that ConfigMap.
func AnnotateProgressKey(shard int) string { return "annotate-" + itoa(shard) }

// TrainProgressKey is the trainer rank's key in the progress ConfigMap.
func TrainProgressKey(rank int) string { return "train-" + itoa(rank) }

// PointProgressKey is a sweep point's trainer rank's key (point-<index>-train-<rank>): the points of a sweep
// train side by side, each reporting its own progress.
func PointProgressKey(index, rank int) string {
	return "point-" + itoa(index) + "-" + TrainProgressKey(rank)
}

// Add sums one shard's summary into s, as the operator sums them into status.annotation (and a local run
// into its table): counts and spend add up, BudgetExceeded is any shard's, and the first skipped line is the
// lowest line number of all shards. DatasetHash is left to the caller (every shard reports the same).
func (s *AnnotateResult) Add(r AnnotateResult) {
	s.Total += r.Total
	s.OK += r.OK
	s.Unparseable += r.Unparseable
	s.LabelMismatch += r.LabelMismatch
	s.TeacherErrors += r.TeacherErrors
	s.CacheHits += r.CacheHits
	s.PromptTokens += r.PromptTokens
	s.CompletionTokens += r.CompletionTokens
	s.Requests += r.Requests
	s.CacheSavedPromptTokens += r.CacheSavedPromptTokens
	s.CacheSavedCompletionTokens += r.CacheSavedCompletionTokens
	s.EvalTotal += r.EvalTotal
	s.BudgetExceeded = s.BudgetExceeded || r.BudgetExceeded
	s.Unasked += r.Unasked
	s.SkippedLines += r.SkippedLines
	if r.FirstSkippedLine > 0 && (s.FirstSkippedLine == 0 || r.FirstSkippedLine < s.FirstSkippedLine) {
		s.FirstSkippedLine, s.FirstSkippedError = r.FirstSkippedLine, r.FirstSkippedError
	}
}

// Add sums one shard's latest progress report into s; UpdatedAt is the newest of them.
func (s *AnnotateProgress) Add(p AnnotateProgress) {
	s.Done += p.Done
	s.Total += p.Total
	s.Requests += p.Requests
	s.PromptTokens += p.PromptTokens
	s.CompletionTokens += p.CompletionTokens
	s.CacheHits += p.CacheHits
	s.CacheSavedPromptTokens += p.CacheSavedPromptTokens
	s.CacheSavedCompletionTokens += p.CacheSavedCompletionTokens
	s.BudgetExceeded = s.BudgetExceeded || p.BudgetExceeded
	if p.UpdatedAt > s.UpdatedAt { // RFC 3339 in UTC sorts as text
		s.UpdatedAt = p.UpdatedAt
	}
}

// StageEstimate names the estimate's termination summary (annotator --estimate).
const StageEstimate = "estimate"

// EstimateResult is the annotator's termination summary in --estimate mode: what a sample of the dataset
// says the whole annotation takes. The operator puts it in status.estimate. It fits in 4 KiB: at most
// MaxEstimateRejections rejections, each error at most MaxSkippedErrorBytes.
type EstimateResult struct {
	Stage string `json:"stage"`
	// Sampled is the number of inputs asked; Answered those the teacher answered.
	Sampled  int `json:"sampled"`
	Answered int `json:"answered"`
	// Inputs is the number of inputs the annotation will ask about: the dataset's (or maxExamples of them)
	// and the eval split's, EvalInputs of them.
	Inputs     int `json:"inputs"`
	EvalInputs int `json:"evalInputs,omitempty"`
	// Per answered input: the mean and 95th percentile (nearest rank).
	PromptTokens     EstimateStats `json:"promptTokensPerInput"`
	CompletionTokens EstimateStats `json:"completionTokensPerInput"`
	Tokens           EstimateStats `json:"tokensPerInput"`
	LatencySeconds   EstimateStats `json:"latencySeconds"`
	// Statuses counts the sample's records by status (ok, unparseable, label_mismatch, teacher_error).
	Statuses map[string]int `json:"statuses"`
	// ParseRate is the share of answered inputs whose answer parsed; RejectRate the share of sampled
	// inputs that would not be trained on.
	ParseRate  float64 `json:"parseRate"`
	RejectRate float64 `json:"rejectRate"`
	// Rejected are the first rejected records, with why.
	Rejected  []EstimateRejection `json:"rejected,omitempty"`
	Projected EstimateProjection  `json:"projected"`
	// Spend is what the sample itself cost: the teacher's paid answers (every sampled input but a
	// teacher_error) and their tokens. It counts against the budget (the ledger's estimate key).
	Spend Spend `json:"spend"`
	// Error and Reason are set when the estimate failed, as in AnnotateResult.
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// MaxEstimateRejections bounds EstimateResult.Rejected.
const MaxEstimateRejections = 5

// EstimateStats are one quantity's mean and 95th percentile over the sample.
type EstimateStats struct {
	Mean float64 `json:"mean"`
	P95  float64 `json:"p95"`
}

// EstimateRejection is one sampled input that would not be trained on.
type EstimateRejection struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

// EstimateProjection is the whole annotation at the sample's means.
type EstimateProjection struct {
	PromptTokens     int64    `json:"promptTokens"`
	CompletionTokens int64    `json:"completionTokens"`
	Tokens           int64    `json:"tokens"`
	Requests         int      `json:"requests"`
	Cost             *float64 `json:"cost,omitempty"`
	// RequestsPerSecond is the pace of all shards together, Seconds the time at that pace, and LimitedBy
	// what sets it ("concurrency" or "requestsPerMinute"); all unset when the sample took no time.
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	Seconds           float64 `json:"seconds"`
	LimitedBy         string  `json:"limitedBy,omitempty"`
}
