// Package progress reports how far a shard has got: into the job's progress ConfigMap through the
// in-cluster API when running in a pod, into the log otherwise (docs/workloads.md, "Progress").
package progress

import (
	"context"
	"time"

	"github.com/go-logr/logr"

	"github.com/distillery-dev/distillery/internal/contract"
)

// DefaultInterval is the contract's "at most every 10 s".
const DefaultInterval = 10 * time.Second

// Reporter publishes one progress snapshot.
type Reporter interface {
	Report(ctx context.Context, p contract.AnnotateProgress) error
}

// LogReporter writes progress to the log, for runs outside a cluster.
type LogReporter struct{ Log logr.Logger }

// Report logs the snapshot.
func (l LogReporter) Report(_ context.Context, p contract.AnnotateProgress) error {
	l.Log.Info("progress", "done", p.Done, "total", p.Total)
	return nil
}

// Loop reports snapshot() every interval until ctx ends. A failed report is logged and the next tick
// tries again: progress never fails the shard.
func Loop(ctx context.Context, interval time.Duration, r Reporter, snapshot func() contract.AnnotateProgress, log logr.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			Once(ctx, r, snapshot(), log)
		}
	}
}

// Once reports one snapshot, logging a failure.
func Once(ctx context.Context, r Reporter, p contract.AnnotateProgress, log logr.Logger) {
	if p.UpdatedAt == "" {
		p.UpdatedAt = time.Now().UTC().Format(time.RFC3339)
	}
	if err := r.Report(ctx, p); err != nil {
		log.Error(err, "reporting progress failed; will try again")
	}
}
