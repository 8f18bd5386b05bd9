// Package teacher is the client of an OpenAI-compatible chat completion server (vLLM, TGI, OpenAI,
// Ollama): rate-limited, retrying transient failures with backoff, failing fast when the server cannot be
// reached at all, and never letting the API key, or a key pasted into the endpoint URL, out into an error.
package teacher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/annotator/sleep"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/secreturl"
)

// Config says how to call the teacher.
type Config struct {
	Endpoint    string
	Model       string
	APIKey      string
	Temperature float64
	MaxTokens   int
	// MaxResponseBytes bounds what is read of one answer; 0 means contract.MaxResponseBytes(MaxTokens).
	MaxResponseBytes int
	// Timeout bounds one attempt.
	Timeout           time.Duration
	MaxRetries        int
	RequestsPerMinute int
	MaxConcurrency    int
	// RetryBaseDelay and RetryMaxDelay bound the exponential backoff (full jitter) between attempts.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// UnreachableAfter is how many failed connection attempts, with no answer ever received, make the
	// teacher unreachable.
	UnreachableAfter int
}

// Defaults for the knobs annotate.json does not carry.
const (
	DefaultRetryBaseDelay   = time.Second
	DefaultRetryMaxDelay    = time.Minute
	DefaultUnreachableAfter = 8
	// maxRetryAfter caps a server's Retry-After so a bogus value cannot stall a shard for days.
	maxRetryAfter = 10 * time.Minute
)

// Answer is the teacher's text and the tokens it cost.
type Answer struct {
	Content string
	Usage   contract.Usage
}

// Client calls the teacher; it is safe for concurrent use.
type Client struct {
	cfg     Config
	http    *http.Client
	limiter *rate.Limiter

	// contacted becomes true with the first HTTP answer of any status; until then connection failures
	// count towards UnreachableAfter.
	contacted    atomic.Bool
	connectFails atomic.Int64
	unreachable  atomic.Pointer[UnreachableError]

	// pausedUntil is when a 429's Retry-After ends, shared so that every worker waits, not only the one
	// that was told.
	pauseMu     sync.Mutex
	pausedUntil time.Time
}

// New returns a client for cfg, filling in defaults.
func New(cfg Config) *Client {
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	if cfg.RetryBaseDelay <= 0 {
		cfg.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if cfg.RetryMaxDelay <= 0 {
		cfg.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if cfg.UnreachableAfter <= 0 {
		cfg.UnreachableAfter = DefaultUnreachableAfter
	}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = 1
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = contract.MaxResponseBytes(cfg.MaxTokens)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// One kept-alive connection per worker: the default of 2 would reconnect for almost every request.
	transport.MaxIdleConnsPerHost = cfg.MaxConcurrency
	transport.MaxIdleConns = cfg.MaxConcurrency
	c := &Client{cfg: cfg, http: &http.Client{Transport: transport}}
	if cfg.RequestsPerMinute > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(float64(cfg.RequestsPerMinute)/60), 1)
	}
	return c
}

// Complete asks the teacher once for messages, retrying transient failures. Its errors are
// *RejectedError, *OversizedError, *ExhaustedError, *UnreachableError or the context's error, and never
// contain the key.
func (c *Client) Complete(ctx context.Context, messages []prompt.Message) (Answer, error) {
	for attempt := 1; ; attempt++ {
		if u := c.unreachable.Load(); u != nil {
			return Answer{}, u
		}
		if err := c.waitTurn(ctx); err != nil {
			return Answer{}, err
		}
		ans, err := c.attempt(ctx, messages)
		if err == nil || ctx.Err() != nil {
			return ans, c.redactErr(orContext(ctx, err))
		}
		var transient *transientError
		if !errors.As(err, &transient) {
			return Answer{}, c.redactErr(err)
		}
		if u := c.countConnectFailure(transient); u != nil {
			return Answer{}, u
		}
		if attempt > c.cfg.MaxRetries {
			return Answer{}, c.redactErr(&ExhaustedError{Attempts: attempt, Last: err})
		}
		if err := sleep.For(ctx, c.backoff(attempt, transient.retryAfter)); err != nil {
			return Answer{}, err
		}
	}
}

func orContext(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// waitTurn waits for a shared 429 pause to end and for the rate limiter.
func (c *Client) waitTurn(ctx context.Context) error {
	c.pauseMu.Lock()
	wait := time.Until(c.pausedUntil)
	c.pauseMu.Unlock()
	if err := sleep.For(ctx, wait); err != nil {
		return err
	}
	if c.limiter == nil {
		return nil
	}
	if err := c.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("waiting for the requests-per-minute limit: %w", err)
	}
	return nil
}

// countConnectFailure returns the unreachable error once UnreachableAfter connection failures happened
// before any answer came back.
func (c *Client) countConnectFailure(err *transientError) *UnreachableError {
	if !err.connect || c.contacted.Load() {
		return nil
	}
	n := c.connectFails.Add(1)
	if n < int64(c.cfg.UnreachableAfter) {
		return nil
	}
	u := &UnreachableError{Endpoint: secreturl.Redacted(c.cfg.Endpoint), Attempts: int(n), Last: errors.New(c.redact(err.msg))}
	c.unreachable.CompareAndSwap(nil, u)
	return c.unreachable.Load()
}

// pause makes every worker wait until d from now.
func (c *Client) pause(d time.Duration) {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	if until := time.Now().Add(d); until.After(c.pausedUntil) {
		c.pausedUntil = until
	}
}
