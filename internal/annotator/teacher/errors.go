package teacher

import (
	"fmt"
	"time"
)

// RejectedError is a 4xx answer other than 429: asking again would get the same answer, so it is not
// retried and the input is recorded as teacher_error with the server's message.
type RejectedError struct {
	StatusCode int
	Message    string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("teacher answered %d: %s", e.StatusCode, e.Message)
}

// ExhaustedError is a transient failure (429, 5xx, timeout, connection error, unreadable body) that
// outlived every retry.
type ExhaustedError struct {
	Attempts int
	Last     error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("teacher failed %d attempts, the last with: %v", e.Attempts, e.Last)
}

func (e *ExhaustedError) Unwrap() error { return e.Last }

// OversizedError is an answer whose body is over the configured limit: a server that ignored max_tokens.
// Asking again would pay for the same answer, so it is not retried; the input is recorded as unparseable.
type OversizedError struct {
	// Size is the body's declared length, or -1 when it was cut off at Limit+1 bytes without one.
	Size  int64
	Limit int
}

func (e *OversizedError) Error() string {
	size := fmt.Sprintf("more than %d bytes", e.Limit)
	if e.Size >= 0 {
		size = fmt.Sprintf("%d bytes", e.Size)
	}
	return fmt.Sprintf("teacher's answer is %s, over the %d-byte limit (teacher.maxResponseBytes, from maxTokens); it was not read and will not be asked again", size, e.Limit)
}

// UnreachableError means no request ever reached the teacher: the first attempts all failed to connect.
// The shard fails fast with it instead of retrying for hours.
type UnreachableError struct {
	Endpoint string
	Attempts int
	Last     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("teacher %s unreachable: the first %d requests failed: %v", e.Endpoint, e.Attempts, e.Last)
}

func (e *UnreachableError) Unwrap() error { return e.Last }

// transientError is one failed attempt that is worth retrying, perhaps after the server's Retry-After.
type transientError struct {
	msg        string
	retryAfter time.Duration
	// connect is true when no HTTP answer came back at all (refused, DNS, TLS, timeout, reset).
	connect bool
}

func (e *transientError) Error() string { return e.msg }
