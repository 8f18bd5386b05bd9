package teacher

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff is the wait before attempt+1: full jitter over an exponentially growing window, so that many
// workers failing together do not retry together, and never shorter than the server's Retry-After.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	window := c.cfg.RetryBaseDelay << min(attempt-1, 30)
	if window <= 0 || window > c.cfg.RetryMaxDelay {
		window = c.cfg.RetryMaxDelay
	}
	wait := time.Duration(rand.Int64N(int64(window)) + 1)
	return max(wait, retryAfter)
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date; 0 when absent or unreadable.
func retryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(h, 64); err == nil {
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(h); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), maxRetryAfter)
}
