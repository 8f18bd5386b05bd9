package controllers

import (
	"time"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The TTL policy: spec.ttlSecondsAfterFinished deletes a finished job that long after its completion
// time. Its stage children go with it; its StudentModel and the model files stay (they are not owned by
// the job).

// ttlLeft is the time until a finished job expires; ok is false when it never does.
func ttlLeft(dj *v1alpha1.DistillationJob, now time.Time) (left time.Duration, ok bool) {
	if dj.Spec.TTLSecondsAfterFinished == nil || dj.Status.CompletionTime == nil || !finished(dj) {
		return 0, false
	}
	end := dj.Status.CompletionTime.Add(time.Duration(*dj.Spec.TTLSecondsAfterFinished) * time.Second)
	return end.Sub(now), true
}
