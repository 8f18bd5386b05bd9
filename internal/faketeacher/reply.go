package faketeacher

import "time"

// Fault is how the server answers one request.
type Fault int

// The answers a real teacher server gives, good and bad.
const (
	// Good answers the synthetic task correctly (or Reply.Content when set).
	Good Fault = iota
	// NoMarker answers with a rationale but no answer marker.
	NoMarker
	// LabelOutsideSet answers with a label that is not one of the task's.
	LabelOutsideSet
	// TooManyRequests answers 429 with Retry-After.
	TooManyRequests
	// ServerError answers 500.
	ServerError
	// Reject answers a 4xx other than 429 (Reply.Status, default 400) with an OpenAI-style error.
	Reject
	// Hang never answers; the client's timeout must give up.
	Hang
	// CloseConnection closes the connection without an answer.
	CloseConnection
	// InvalidJSON answers 200 with a body that is not JSON.
	InvalidJSON
	// HugeAnswer answers 200 with a chat completion whose content is Reply.Size bytes (default 1 GiB),
	// streamed without a Content-Length unless Reply.DeclareLength: a server that ignores max_tokens.
	HugeAnswer
)

// Reply is the scripted answer to one request.
type Reply struct {
	Fault Fault
	// Content replaces the computed answer of a Good reply.
	Content string
	// RetryAfter is sent with TooManyRequests (whole seconds, at least 1 when zero).
	RetryAfter time.Duration
	// Status and Message make a Reject reply.
	Status  int
	Message string
	// Latency is added before answering, on top of Server.Latency.
	Latency time.Duration
	// Size and DeclareLength shape a HugeAnswer.
	Size          int64
	DeclareLength bool
}

// Request is what the script sees of one call.
type Request struct {
	// N counts the server's requests from 1.
	N int
	// Input is the new question: the text after the last "Q: " of the user message, up to "\nA:".
	Input string
	// Authorization is the request's Authorization header.
	Authorization string
	Model         string
}

// Script decides the reply to each request; it must be safe for concurrent use.
type Script func(Request) Reply

// Always answers every request the same way.
func Always(r Reply) Script { return func(Request) Reply { return r } }

// FirstN answers the first n requests with first, the rest with then.
func FirstN(n int, first, then Reply) Script {
	return func(req Request) Reply {
		if req.N <= n {
			return first
		}
		return then
	}
}

// PerInput answers an input with a reply looked up by its text; inputs not listed get Good.
func PerInput(replies map[string]Reply) Script {
	return func(req Request) Reply { return replies[req.Input] }
}
