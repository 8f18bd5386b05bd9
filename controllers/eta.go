package controllers

import (
	"math"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The rate policy: status.rate is the running stage's speed (inputs/s annotating, steps/s training) over
// a moving window of its progress reports, and the time left at that speed. The window is kept in status
// itself (a few (time, done) samples, stamped with the reports' own times), so it survives an operator
// restart and needs no history anywhere else. A stage whose reports stopped coming (its pods gone, the API
// unreachable from them) shows the ETA "stale" instead of a frozen estimate; the pass that would make it
// stale is requeued for, since no report will bring it.

const (
	// rateWindow is how far back the samples reach: old enough to smooth the shards' bursts, young
	// enough to follow a teacher that slows down.
	rateWindow = 5 * time.Minute
	// rateSampleEvery spaces the samples (reports come every 10 s from every shard).
	rateSampleEvery = 15 * time.Second
	// rateMinSpan is the least time two samples must span to give a rate.
	rateMinSpan = 10 * time.Second
	// staleAfter is the least silence that makes progress stale; a stage whose reports are naturally
	// further apart (slow training steps) gets three of its own gaps.
	staleAfter = 2 * time.Minute
	// etaStale is the ETA of a stage whose reports stopped.
	etaStale = "stale"
)

// stageReport is the running stage's newest progress: done of total units at time at.
type stageReport struct {
	unit        string
	done, total int64
	at          time.Time
}

// runningStageReport is the progress of the stage that runs now, nil when none does (pending, suspended,
// finished).
func runningStageReport(dj *v1alpha1.DistillationJob, progress *corev1.ConfigMap) *stageReport {
	switch dj.Status.Stage {
	case v1alpha1.StageAnnotating:
		a := dj.Status.Annotation
		if a == nil {
			return nil
		}
		return &stageReport{unit: "inputs", done: a.Done, total: a.Total, at: parseReportTime(annotationProgress(progress).UpdatedAt)}
	case v1alpha1.StageTraining:
		if len(dj.Status.Experiments) > 0 {
			return nil // a sweep's points train side by side; one trainer's steps say nothing of the stage
		}
		p, ok := trainingProgress(progress)
		if !ok {
			return &stageReport{unit: "steps"}
		}
		return &stageReport{unit: "steps", done: int64(p.Step), total: int64(p.TotalSteps), at: parseReportTime(p.UpdatedAt)}
	}
	return nil
}

func parseReportTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// updateRate folds the running stage's newest report into status.rate at now. It returns the new rate
// (nil when no stage runs) and, while the ETA is live, when it would turn stale without another report.
func updateRate(prev *v1alpha1.ProgressRate, rep *stageReport, now time.Time) (*v1alpha1.ProgressRate, time.Duration) {
	if rep == nil {
		return nil, 0
	}
	r := &v1alpha1.ProgressRate{Unit: rep.unit}
	if prev != nil && prev.Unit == rep.unit {
		r = prev.DeepCopy()
	}
	if !rep.at.IsZero() {
		addSample(r, rep)
	}
	r.PerSecond, r.ETA, r.ETASeconds = "", "", nil
	perSecond, ok := windowRate(r.Samples)
	if ok {
		r.PerSecond = strconv.FormatFloat(perSecond, 'f', 2, 64)
	}
	if r.LastReportTime == nil {
		return r, 0
	}
	silent, limit := now.Sub(r.LastReportTime.Time), staleLimit(r.Samples)
	switch {
	case silent > limit:
		r.ETA = etaStale
		return r, 0
	case rep.total > 0 && rep.done >= rep.total:
		r.ETA, r.ETASeconds = "0s", new(int64)
	case ok && perSecond > 0 && rep.total > rep.done:
		left := time.Duration(float64(rep.total-rep.done) / perSecond * float64(time.Second))
		secs := int64(math.Round(left.Seconds()))
		r.ETA, r.ETASeconds = duration.HumanDuration(left), &secs
	}
	return r, limit - silent + time.Second
}

// addSample records the newest report: the last sample is always the newest report, and becomes a kept
// sample once it is rateSampleEvery after the one before it. A count that went down (a stage that started
// over) restarts the window; what fell out of the window is dropped.
func addSample(r *v1alpha1.ProgressRate, rep *stageReport) {
	at := metav1.NewTime(rep.at)
	if r.LastReportTime != nil && rep.at.Before(r.LastReportTime.Time) {
		return // an older report than one already seen
	}
	r.LastReportTime = &at
	n := len(r.Samples)
	if n > 0 && rep.done < r.Samples[n-1].Done {
		r.Samples, n = nil, 0
	}
	// Every sample but the last is rateSampleEvery after the one before; the last is the newest report.
	s := v1alpha1.ProgressSample{Time: at, Done: rep.done}
	switch {
	case n == 0:
		r.Samples = append(r.Samples, s)
	case rep.at.Equal(r.Samples[n-1].Time.Time):
		r.Samples[n-1] = s // the same report time, more shards seen
	case n == 1 || r.Samples[n-1].Time.Sub(r.Samples[n-2].Time.Time) >= rateSampleEvery:
		r.Samples = append(r.Samples, s)
	default:
		r.Samples[n-1] = s
	}
	// Keep what the window holds, and always the newest two (reports of a slow stage are far apart).
	keep := 0
	for keep < len(r.Samples)-2 && (rep.at.Sub(r.Samples[keep].Time.Time) > rateWindow || len(r.Samples)-keep > maxRateSamples) {
		keep++
	}
	r.Samples = r.Samples[keep:]
}

// maxRateSamples bounds the window in status (rateWindow / rateSampleEvery of them fit).
const maxRateSamples = 20

// windowRate is the units per second between the oldest and newest sample, when they are far enough
// apart.
func windowRate(s []v1alpha1.ProgressSample) (float64, bool) {
	if len(s) < 2 {
		return 0, false
	}
	first, last := s[0], s[len(s)-1]
	span := last.Time.Sub(first.Time.Time)
	if span < rateMinSpan {
		return 0, false
	}
	return float64(last.Done-first.Done) / span.Seconds(), true
}

// staleLimit is how long a stage may be silent before its progress is stale: staleAfter, or three of the
// window's average gaps between samples when that is longer.
func staleLimit(s []v1alpha1.ProgressSample) time.Duration {
	if len(s) < 2 {
		return staleAfter
	}
	gap := s[len(s)-1].Time.Sub(s[0].Time.Time) / time.Duration(len(s)-1)
	return max(staleAfter, 3*gap)
}
