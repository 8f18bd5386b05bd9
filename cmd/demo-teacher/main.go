// Command demo-teacher is a DEMO teacher LLM: an OpenAI-compatible server (internal/faketeacher) that
// answers the synthetic "which of two numbers is larger" task in few-shot chain-of-thought format, with
// optional injected faults. It lets a local cluster run a whole distillation without a real LLM; it is
// not a model and knows nothing else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/distillery-dev/distillery/internal/faketeacher"
)

func main() {
	addr := flag.String("addr", ":8000", "listen address; the API is under /v1 (e.g. http://host:8000/v1)")
	latency := flag.Duration("latency", 50*time.Millisecond, "delay before every answer")
	marker := flag.String("marker", faketeacher.CompareMarker, "answer marker used in answers")
	failFirst := flag.Int("fail-first-n", 0, "answer the first N requests with 500")
	garbage := flag.Float64("garbage-fraction", 0, "fraction of answers without a marker or with a label outside the set")
	tooMany := flag.Duration("429-for-seconds", 0, "answer 429 with Retry-After for this long after the first request (e.g. 30s)")
	seed := flag.Uint64("seed", 1, "seed of the garbage answers")
	flag.Parse()

	srv := &faketeacher.Server{
		Latency: *latency, Marker: *marker,
		Script: faketeacher.DemoScript(faketeacher.DemoFaults{
			FailFirstN: *failFirst, GarbageFraction: *garbage, TooManyFor: *tooMany, Seed: *seed,
		}),
	}
	if err := serve(*addr, srv); err != nil {
		fmt.Fprintln(os.Stderr, "demo-teacher:", err)
		os.Exit(1)
	}
}

// serve runs until SIGTERM or SIGINT, then lets in-flight requests finish.
func serve(addr string, h http.Handler) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hs := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	fmt.Fprintf(os.Stderr, "demo-teacher: serving the synthetic compare task on %s (OpenAI API under /v1)\n", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
