package contract

import "fmt"

// Record statuses. The trainer trains on StatusOK records only.
const (
	StatusOK            = "ok"
	StatusUnparseable   = "unparseable"
	StatusLabelMismatch = "label_mismatch"
	StatusTeacherError  = "teacher_error"
)

// Record is one line of an annotations shard file: one per input, written once.
type Record struct {
	ID           string `json:"id"`
	Input        string `json:"input"`
	GoldLabel    string `json:"goldLabel,omitempty"`
	TeacherLabel string `json:"teacherLabel,omitempty"`
	Rationale    string `json:"rationale,omitempty"`
	Status       string `json:"status"`
	// Error says why a record is not ok (the teacher's message, or what could not be parsed).
	Error string `json:"error,omitempty"`
	Usage Usage  `json:"usage"`
	// Cached is true when the answer came from the shared cache: Usage is what it cost when it was
	// paid, not a cost of this job.
	Cached bool `json:"cached,omitempty"`
}

// Usage is the teacher's token count for one request, from the response's "usage".
type Usage struct {
	PromptTokens     int `json:"promptTokens"`
	CompletionTokens int `json:"completionTokens"`
}

// ShardFileName is the annotations file of one shard, e.g. "shard-00003-of-00008.jsonl".
func ShardFileName(index, shards int) string {
	return fmt.Sprintf("shard-%05d-of-%05d.jsonl", index, shards)
}

// EvalShardFileName is the annotations file of one shard's part of a separate eval split
// (spec.dataset.eval), e.g. "eval-shard-00003-of-00008.jsonl". The trainer never trains on these.
func EvalShardFileName(index, shards int) string {
	return "eval-" + ShardFileName(index, shards)
}

// InShard reports whether the dataset record at position (0-based, counting every line) belongs to shard
// index of shards.
func InShard(position, index, shards int) bool {
	return shards > 0 && position%shards == index
}
