// Package sleep waits for a while unless a context ends first. The annotator's retries share it: the teacher
// client's backoff and the budget ledger's retries on a conflict.
package sleep

import (
	"context"
	"time"
)

// For returns nil once d has passed, or ctx's error as soon as ctx ends (at once when d <= 0).
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
