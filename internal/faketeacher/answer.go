package faketeacher

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// answer writes the reply the script chose.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, call Request, req chatRequest, reply Reply) {
	switch reply.Fault {
	case TooManyRequests:
		secs := max(1, int(reply.RetryAfter.Round(time.Second)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "rate limit reached, slow down")
	case ServerError:
		writeError(w, http.StatusInternalServerError, "the model crashed")
	case Reject:
		status := reply.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		msg := reply.Message
		if msg == "" {
			msg = "this model's maximum context length is 4096 tokens"
		}
		writeError(w, status, msg)
	case Hang:
		<-r.Context().Done()
	case CloseConnection:
		closeConnection(w)
	case InvalidJSON:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[{"message":{"content":"truncated`))
	case HugeAnswer:
		streamHugeAnswer(w, reply)
	default:
		s.complete(w, req, s.content(call, reply))
	}
}

// content is the answer text for a Good, NoMarker or LabelOutsideSet reply.
func (s *Server) content(call Request, reply Reply) string {
	marker := s.Marker
	if marker == "" {
		marker = CompareMarker
	}
	a, b, isCompare := ParseCompareInput(call.Input)
	rationale := "I am not sure what is asked."
	label := "unknown"
	if isCompare {
		rationale, label = CompareRationale(a, b), CompareLabel(a, b)
	}
	switch {
	case reply.Fault == NoMarker:
		return rationale + " I think it is " + label + "."
	case reply.Fault == LabelOutsideSet:
		return rationale + " " + marker + " both."
	case reply.Content != "":
		return reply.Content
	default:
		return rationale + " " + marker + " " + label + "."
	}
}

// complete writes an OpenAI chat completion with a word-count estimate of the tokens.
func (s *Server) complete(w http.ResponseWriter, req chatRequest, content string) {
	promptWords := 0
	for _, m := range req.Messages {
		promptWords += len(strings.Fields(m.Content))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "model": req.Model,
		"choices": []map[string]any{{
			"index": 0, "finish_reason": "stop",
			"message": map[string]string{"role": "assistant", "content": content},
		}},
		"usage": map[string]int{
			"prompt_tokens": promptWords, "completion_tokens": len(strings.Fields(content)),
			"total_tokens": promptWords + len(strings.Fields(content)),
		},
	})
}

func closeConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // the server drops the connection
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes an OpenAI-style error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"message": msg, "type": "fake_teacher_error", "code": fmt.Sprint(status),
	}})
}

// hugeChunk is written again and again, so a huge answer costs the fake no memory.
var hugeChunk = []byte(strings.Repeat("a", 32<<10))

// The body of a HugeAnswer around its content; HugeAnswerEnvelope is their length, so a test can make a
// body of an exact size.
var (
	hugeHead           = []byte(`{"id":"chatcmpl-fake","object":"chat.completion","choices":[{"index":0,"finish_reason":"length","message":{"role":"assistant","content":"`)
	hugeTail           = []byte(`"}}],"usage":{"prompt_tokens":10,"completion_tokens":1000000}}`)
	HugeAnswerEnvelope = int64(len(hugeHead) + len(hugeTail))
)

// streamHugeAnswer writes a valid chat completion of reply.Size content bytes until the client hangs up.
func streamHugeAnswer(w http.ResponseWriter, reply Reply) {
	size := reply.Size
	if size <= 0 {
		size = 1 << 30
	}
	head, tail := hugeHead, hugeTail
	w.Header().Set("Content-Type", "application/json")
	if reply.DeclareLength {
		w.Header().Set("Content-Length", strconv.FormatInt(size+HugeAnswerEnvelope, 10))
	}
	if _, err := w.Write(head); err != nil {
		return
	}
	for left := size; left > 0; left -= int64(len(hugeChunk)) {
		if _, err := w.Write(hugeChunk[:min(left, int64(len(hugeChunk)))]); err != nil {
			return // the client stopped reading
		}
	}
	_, _ = w.Write(tail)
}
