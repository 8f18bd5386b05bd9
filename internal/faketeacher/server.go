package faketeacher

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Server is the fake teacher. Set its fields before serving.
type Server struct {
	// Script decides each reply; nil answers everything Good.
	Script Script
	// Latency delays every answer, like a real model's generation time.
	Latency time.Duration
	// Marker is the answer marker of computed answers; empty means CompareMarker.
	Marker string
	// RecordInputs keeps a count per input for Seen. Off by default: a long-running demo teacher would
	// grow without bound.
	RecordInputs bool

	mu       sync.Mutex
	calls    int
	seen     map[string]int
	inFlight int
	peak     int
}

// PeakInFlight is the most chat requests that were waiting for their answer at once (received, the answer
// not started: a huge answer that the client stopped reading may linger on the server after the client
// has moved on, and does not count).
func (s *Server) PeakInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func (s *Server) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
}

// Calls is the number of chat completion requests received.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Seen returns how many requests each input got, when RecordInputs is set.
func (s *Server) Seen() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

// ServeHTTP answers POST .../chat/completions, GET .../models and GET /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions"):
		s.chat(w, r)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/models"):
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]string{{"id": "demo-teacher", "object": "model"}}})
	case r.URL.Path == "/healthz":
		w.WriteHeader(http.StatusOK)
	default:
		writeError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
	}
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("request body is not a chat request: %v", err))
		return
	}
	s.enter()
	call := s.record(req, r.Header.Get("Authorization"))
	reply := Reply{}
	if s.Script != nil {
		reply = s.Script(call)
	}
	waited := wait(r, s.Latency+reply.Latency)
	s.leave()
	if waited {
		s.answer(w, r, call, req, reply)
	}
}

// record counts the request and returns what the script sees of it.
func (s *Server) record(req chatRequest, auth string) Request {
	input := lastQuestion(req.Messages[len(req.Messages)-1].Content)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.RecordInputs {
		if s.seen == nil {
			s.seen = map[string]int{}
		}
		s.seen[input]++
	}
	return Request{N: s.calls, Input: input, Authorization: auth, Model: req.Model}
}

// lastQuestion is the text after the last "Q: " up to the final "\nA:".
func lastQuestion(user string) string {
	if i := strings.LastIndex(user, "Q: "); i >= 0 {
		user = user[i+len("Q: "):]
	}
	return strings.TrimSuffix(strings.TrimRight(user, " "), "\nA:")
}

// wait sleeps d unless the client gives up first.
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
