package teacher

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

var question = []prompt.Message{{Role: "system", Content: "Which is larger?"}, {Role: "user", Content: "Q: First: 3\nSecond: 9\nA:"}}

const goodAnswer = "The first number is 3 and the second number is 9. 9 is larger than 3. So the answer is second."

func newClient(t *testing.T, script faketeacher.Script) (*Client, *faketeacher.Server) {
	t.Helper()
	fake := &faketeacher.Server{Script: script}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return New(Config{
		Endpoint: srv.URL + "/v1", Model: "m", Timeout: 300 * time.Millisecond, MaxRetries: 3, MaxConcurrency: 4,
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
	}), fake
}

func TestTransientFailuresAreRetried(t *testing.T) {
	good := faketeacher.Reply{}
	cases := map[string]faketeacher.Reply{
		"500":               {Fault: faketeacher.ServerError},
		"hang past timeout": {Fault: faketeacher.Hang},
		"closed connection": {Fault: faketeacher.CloseConnection},
		"invalid JSON body": {Fault: faketeacher.InvalidJSON},
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			c, fake := newClient(t, faketeacher.FirstN(2, fault, good))
			ans, err := c.Complete(context.Background(), question)
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if ans.Content != goodAnswer || ans.Usage.CompletionTokens == 0 || ans.Usage.PromptTokens == 0 {
				t.Errorf("answer = %+v", ans)
			}
			if fake.Calls() != 3 {
				t.Errorf("calls = %d, want 2 failures and 1 success", fake.Calls())
			}
		})
	}
}

func TestRetriesRunOut(t *testing.T) {
	c, fake := newClient(t, faketeacher.Always(faketeacher.Reply{Fault: faketeacher.ServerError}))
	_, err := c.Complete(context.Background(), question)
	var exhausted *ExhaustedError
	if !errors.As(err, &exhausted) || exhausted.Attempts != 4 || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want ExhaustedError after 4 attempts naming the 500", err)
	}
	if fake.Calls() != 4 {
		t.Errorf("calls = %d, want 1 + 3 retries", fake.Calls())
	}
}

func TestA4xxIsNotRetriedAndKeepsTheServersMessage(t *testing.T) {
	c, fake := newClient(t, faketeacher.Always(faketeacher.Reply{Fault: faketeacher.Reject, Status: 400, Message: "context length exceeded"}))
	_, err := c.Complete(context.Background(), question)
	var rejected *RejectedError
	if !errors.As(err, &rejected) || rejected.StatusCode != 400 || rejected.Message != "context length exceeded" {
		t.Fatalf("err = %v, want RejectedError 400 with the server's message", err)
	}
	if fake.Calls() != 1 {
		t.Errorf("calls = %d, want 1", fake.Calls())
	}
}

// TestRetryAfterIsHonoured checks a lower bound only: the retry cannot come before the server's
// Retry-After, however fast or slow the machine.
func TestRetryAfterIsHonoured(t *testing.T) {
	var first, second time.Time
	script := func(req faketeacher.Request) faketeacher.Reply {
		if req.N == 1 {
			first = time.Now()
			return faketeacher.Reply{Fault: faketeacher.TooManyRequests, RetryAfter: time.Second}
		}
		second = time.Now()
		return faketeacher.Reply{}
	}
	c, _ := newClient(t, script)
	if _, err := c.Complete(context.Background(), question); err != nil {
		t.Fatal(err)
	}
	if gap := second.Sub(first); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
}

func TestUnreachableTeacherFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String() + "/v1"
	l.Close() // nothing listens there now: connection refused
	c := New(Config{Endpoint: endpoint, Model: "m", MaxRetries: 1000, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond, UnreachableAfter: 5})
	_, err = c.Complete(context.Background(), question)
	var u *UnreachableError
	if !errors.As(err, &u) || u.Attempts != 5 || !strings.Contains(err.Error(), endpoint) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v, want UnreachableError after 5 attempts naming %s and the cause", err, endpoint)
	}
	if _, again := c.Complete(context.Background(), question); !errors.As(again, &u) {
		t.Errorf("later calls should fail at once, got %v", again)
	}
}

func TestTheAPIKeyIsSentButNeverInErrors(t *testing.T) {
	const key = "sk-test-0123456789abcdef"
	var auth string
	echo := func(req faketeacher.Request) faketeacher.Reply {
		auth = req.Authorization
		return faketeacher.Reply{Fault: faketeacher.Reject, Status: 401, Message: "Incorrect API key provided: " + strings.TrimPrefix(req.Authorization, "Bearer ")}
	}
	fake := &faketeacher.Server{Script: echo}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := New(Config{Endpoint: srv.URL + "/v1/", Model: "m", APIKey: key})
	_, err := c.Complete(context.Background(), question)
	if auth != "Bearer "+key {
		t.Errorf("Authorization = %q", auth)
	}
	if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "Incorrect API key provided: [redacted]") {
		t.Errorf("err = %v, want the server's message with the key redacted", err)
	}
}

func TestRequestsPerMinuteLimitsTheRate(t *testing.T) {
	c, _ := newClient(t, nil)
	c = New(Config{Endpoint: c.cfg.Endpoint, Model: "m", RequestsPerMinute: 60})
	// The limiter's state says how long the next request must wait; no clock is read by the test.
	if _, err := c.Complete(context.Background(), question); err != nil {
		t.Fatal(err)
	}
	r := c.limiter.Reserve()
	defer r.Cancel()
	if d := r.Delay(); d < 900*time.Millisecond {
		t.Errorf("at 60 requests/minute the next request may go after %v, want about 1s", d)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	cases := map[string]time.Duration{"": 0, "3": 3 * time.Second, "0.5": 500 * time.Millisecond, "-4": 0, "soon": 0, "999999": maxRetryAfter}
	for h, want := range cases {
		if got := retryAfter(h); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
	date := time.Now().Add(3 * time.Minute).UTC().Format(http.TimeFormat)
	if got := retryAfter(date); got < time.Minute || got > 3*time.Minute {
		t.Errorf("retryAfter(%q) = %v", date, got)
	}
}

func TestBackoffGrowsAndRespectsRetryAfter(t *testing.T) {
	c := New(Config{RetryBaseDelay: 10 * time.Millisecond, RetryMaxDelay: 80 * time.Millisecond})
	for attempt := 1; attempt <= 8; attempt++ {
		window := min(10*time.Millisecond<<(attempt-1), 80*time.Millisecond)
		for range 50 {
			if d := c.backoff(attempt, 0); d <= 0 || d > window {
				t.Fatalf("backoff(%d) = %v, want in (0, %v]", attempt, d, window)
			}
		}
	}
	if d := c.backoff(1, time.Second); d != time.Second {
		t.Errorf("backoff with Retry-After 1s = %v", d)
	}
}

// A key pasted into the endpoint (user:key@, ?api_key=) must not reach an error: Go's HTTP errors quote
// the URL with its user and query.
func TestAKeyInTheEndpointIsNeverInErrors(t *testing.T) {
	const userKey, queryKey = "sk-user-0123456789", "sk-query-0123456789"
	withKeys := func(base string) string {
		u := strings.Replace(base, "http://", "http://apikey:"+userKey+"@", 1)
		return u + "/v1?api_key=" + queryKey
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()
	hanging := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client hanging up
		<-r.Context().Done()
	}))
	defer hanging.Close()

	cases := map[string]Config{
		"unreachable": {Endpoint: withKeys(refused), Model: "m", MaxRetries: 1000, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond, UnreachableAfter: 2},
		"timeouts":    {Endpoint: withKeys(hanging.URL), Model: "m", Timeout: 50 * time.Millisecond, MaxRetries: 1, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(cfg).Complete(context.Background(), question)
			if err == nil {
				t.Fatal("Complete succeeded")
			}
			if strings.Contains(err.Error(), userKey) || strings.Contains(err.Error(), queryKey) {
				t.Errorf("err = %v carries a key from the endpoint", err)
			}
			var u *UnreachableError
			var x *ExhaustedError
			if !errors.As(err, &u) && !errors.As(err, &x) {
				t.Errorf("err = %T %v, want the typed error kept", err, err)
			}
		})
	}
}

func TestAnAnswerOverTheLimitIsRejectedOnceAndNotRetried(t *testing.T) {
	const limit = 4096
	cases := map[string]struct {
		reply    faketeacher.Reply
		wantSize string
	}{
		"streamed, 1 GiB":        {faketeacher.Reply{Fault: faketeacher.HugeAnswer, Size: 1 << 30}, "more than 4096 bytes"},
		"declared, 1 GiB":        {faketeacher.Reply{Fault: faketeacher.HugeAnswer, Size: 1 << 30, DeclareLength: true}, "1073742023 bytes"},
		"one byte over, chunked": {faketeacher.Reply{Fault: faketeacher.HugeAnswer, Size: limit - faketeacher.HugeAnswerEnvelope + 1}, "more than 4096 bytes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, fake := newClient(t, faketeacher.Always(tc.reply))
			c.cfg.MaxResponseBytes = limit
			_, err := c.Complete(context.Background(), question)
			var over *OversizedError
			if !errors.As(err, &over) || over.Limit != limit {
				t.Fatalf("err = %v, want an OversizedError with limit %d", err, limit)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.wantSize) || !strings.Contains(msg, "4096-byte limit") {
				t.Errorf("error %q should give the size (%s) and the limit", msg, tc.wantSize)
			}
			if fake.Calls() != 1 {
				t.Errorf("calls = %d; an oversized answer must not be asked again", fake.Calls())
			}
		})
	}
	t.Run("an answer at the limit is read", func(t *testing.T) {
		size := limit - faketeacher.HugeAnswerEnvelope
		c, _ := newClient(t, faketeacher.Always(faketeacher.Reply{Fault: faketeacher.HugeAnswer, Size: size}))
		c.cfg.MaxResponseBytes = limit
		if ans, err := c.Complete(context.Background(), question); err != nil || int64(len(ans.Content)) != size {
			t.Errorf("Complete = %d content bytes, %v", len(ans.Content), err)
		}
	})
}

func TestAServersLongErrorMessageIsCut(t *testing.T) {
	c, _ := newClient(t, faketeacher.Always(faketeacher.Reply{Fault: faketeacher.Reject, Status: 400, Message: strings.Repeat("too long ", 2000)}))
	_, err := c.Complete(context.Background(), question)
	var rejected *RejectedError
	if !errors.As(err, &rejected) || len(rejected.Message) > maxServerMessageBytes+len("...") || !strings.HasPrefix(rejected.Message, "too long") {
		t.Errorf("err = %.80v (%d bytes of message), want the message's start in at most %d bytes", err, len(rejected.Message), maxServerMessageBytes)
	}
}
