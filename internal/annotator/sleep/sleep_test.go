package sleep

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestForWaitsUnlessTheContextEnds(t *testing.T) {
	if err := For(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("a short wait: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := For(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("an ended context must end the wait at once, got %v", err)
	}
	if err := For(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("no wait on an ended context still reports it, got %v", err)
	}
}
