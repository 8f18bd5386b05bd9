package controllers

import (
	"testing"
	"time"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// feed runs a synthetic progress series through updateRate: one report every step from start, done
// growing by perStep, the operator looking right after each report. It returns the rate after the last.
func feed(r *v1alpha1.ProgressRate, unit string, start time.Time, reports int, step time.Duration, done0, perStep, total int64) (*v1alpha1.ProgressRate, time.Time, int64) {
	at, done := start, done0
	for range reports {
		r, _ = updateRate(r, &stageReport{unit: unit, done: done, total: total, at: at}, at.Add(time.Second))
		at, done = at.Add(step), done+perStep
	}
	return r, at.Add(-step), done - perStep
}

func TestTheETAFollowsAMovingWindowOfTheReports(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	// 10 minutes at 2.5 inputs/s (25 per 10 s report) of 5000.
	r, last, done := feed(nil, "inputs", t0, 61, 10*time.Second, 0, 25, 5000)
	if r.PerSecond != "2.50" || done != 1500 {
		t.Fatalf("steady: %s inputs/s at %d done, want 2.50 at 1500", r.PerSecond, done)
	}
	if r.ETA != "23m" || *r.ETASeconds != 1400 { // 3500 left at 2.5/s, as kubectl writes ages
		t.Errorf("steady ETA %s (%v s), want 23m (1400 s)", r.ETA, *r.ETASeconds)
	}
	if n := len(r.Samples); n > maxRateSamples || r.Samples[n-1].Time.Sub(r.Samples[0].Time.Time) > rateWindow {
		t.Errorf("the window holds %d samples over %s", n, r.Samples[n-1].Time.Sub(r.Samples[0].Time.Time))
	}

	// The teacher slows to 1 input/s. Two minutes in, the window mixes both speeds; five minutes in,
	// only the new one is left: the ETA follows the window, not the average since the start (1.96/s).
	r, _, _ = feed(r, "inputs", last.Add(10*time.Second), 12, 10*time.Second, done+10, 10, 5000)
	if r.PerSecond == "1.00" || r.PerSecond == "2.50" {
		t.Errorf("two minutes after the slowdown the rate is %s; the window should still mix both", r.PerSecond)
	}
	r, last, done = feed(r, "inputs", last.Add(130*time.Second), 20, 10*time.Second, done+130, 10, 5000)
	if r.PerSecond != "1.00" {
		t.Errorf("five minutes after the slowdown the rate is %s, want 1.00", r.PerSecond)
	}
	if want := 5000 - done; r.ETASeconds == nil || *r.ETASeconds != want {
		t.Errorf("ETA %s (%v s), want %d s", r.ETA, r.ETASeconds, want)
	}

	// No report for longer than staleAfter: the ETA says stale instead of freezing; the pass that turns it
	// stale is requeued for; a new report makes it live again.
	rep := &stageReport{unit: "inputs", done: done, total: 5000, at: last}
	r, requeue := updateRate(r, rep, last.Add(30*time.Second))
	if r.ETA == etaStale || requeue != staleAfter-30*time.Second+time.Second {
		t.Errorf("30 s after the last report: ETA %q, look again in %s", r.ETA, requeue)
	}
	r, requeue = updateRate(r, rep, last.Add(staleAfter+time.Second))
	if r.ETA != etaStale || r.ETASeconds != nil || requeue != 0 || !r.LastReportTime.Time.Equal(last) {
		t.Errorf("silent for %s: ETA %q (%v), requeue %s, last report %v", staleAfter, r.ETA, r.ETASeconds, requeue, r.LastReportTime)
	}
	r, _ = updateRate(r, &stageReport{unit: "inputs", done: done + 200, total: 5000, at: last.Add(3 * time.Minute)}, last.Add(3*time.Minute))
	if r.ETA == etaStale || r.ETA == "" {
		t.Errorf("a new report after the silence: ETA %q", r.ETA)
	}
}

func TestTheRateStartsOverForANewStageOrACountThatWentDown(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	r, last, _ := feed(nil, "inputs", t0, 10, 10*time.Second, 0, 50, 1000)
	if r.ETA == "" {
		t.Fatal("no ETA after 90 s of reports")
	}
	// Training: steps, not inputs.
	tr, _ := updateRate(r, &stageReport{unit: "steps", done: 3, total: 300, at: last.Add(time.Minute)}, last.Add(time.Minute))
	if tr.Unit != "steps" || len(tr.Samples) != 1 || tr.PerSecond != "" || tr.ETA != "" {
		t.Errorf("the first training report kept the annotation window: %+v", tr)
	}
	// The count went down (a stage that started over): the window restarts.
	down, _ := updateRate(r, &stageReport{unit: "inputs", done: 10, total: 1000, at: last.Add(20 * time.Second)}, last.Add(20*time.Second))
	if len(down.Samples) != 1 || down.Samples[0].Done != 10 {
		t.Errorf("after the count went down the window is %+v", down.Samples)
	}
	// No stage runs: no rate.
	if none, requeue := updateRate(r, nil, last); none != nil || requeue != 0 {
		t.Errorf("without a running stage: %+v, %s", none, requeue)
	}
}

func TestSlowTrainingStepsAreNotStaleTooSoon(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	// One report a minute (each step is slow); the stale limit is three gaps.
	r, last, _ := feed(nil, "steps", t0, 6, time.Minute, 0, 1, 100)
	rep := &stageReport{unit: "steps", done: 5, total: 100, at: last}
	if r, _ = updateRate(r, rep, last.Add(150*time.Second)); r.ETA == etaStale {
		t.Errorf("stale 2.5 minutes after the last of reports a minute apart")
	}
	if r, _ = updateRate(r, rep, last.Add(190*time.Second)); r.ETA != etaStale {
		t.Errorf("ETA %q after three gaps of silence, want stale", r.ETA)
	}
	if r.PerSecond != "0.02" {
		t.Errorf("rate %s steps/s, want 0.02", r.PerSecond)
	}
}
