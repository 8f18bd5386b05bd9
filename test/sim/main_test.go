//go:build sim

// Package sim is the simulation tier: the operator, as a host process, against a real control plane
// (scheduler, Job controller, garbage collector) whose nodes are simulated by KWOK (hack/kwok). Stage pods
// end as hack/kwok/stages/pod-outcome.yaml says: jobs named "hold-*" keep their stage pods Running until a
// test annotates them with an outcome; other jobs' stage pods succeed with contract-valid summaries.
//
//	go test -tags sim ./test/sim/...      (brings the cluster up and down unless one is up already)
package sim

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/distillery-dev/distillery/test/sim/simenv"
)

var env *simenv.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	var err error
	env, err = simenv.Start(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim: starting the cluster:", err)
		if env != nil {
			_ = env.Stop(os.Stderr)
		}
		return 1
	}
	defer func() {
		if err := env.Stop(os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "sim: stopping:", err)
		}
	}()
	op, err := env.StartOperator(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim: starting the operator:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "sim: cluster and operator ready in %s (operator log %s)\n", time.Since(t0).Round(100*time.Millisecond), op.LogPath)
	code := m.Run()
	if st, err := simenv.ReadProcStats(op.Pid()); err == nil {
		fmt.Fprintf(os.Stderr, "sim: operator peak RSS %d MiB, CPU %.1f s\n", st.PeakRSSBytes>>20, st.CPUSeconds)
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "sim: operator log: %s; cluster logs: %s/logs\n", op.LogPath, env.Dir)
	}
	return code
}
