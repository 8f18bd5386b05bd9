package controllers

import (
	"fmt"
	"time"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The deadline policy: spec.activeDeadlineSeconds counts from status.startTime, suspended time included
// (as for batch Jobs); past it the job fails with DeadlineExceeded and its stage Jobs are deleted.

// deadlineLeft is the time until the deadline; ok is false when the job has no deadline or has not
// started.
func deadlineLeft(dj *v1alpha1.DistillationJob, now time.Time) (left time.Duration, ok bool) {
	if dj.Spec.ActiveDeadlineSeconds == nil || dj.Status.StartTime == nil {
		return 0, false
	}
	end := dj.Status.StartTime.Add(time.Duration(*dj.Spec.ActiveDeadlineSeconds) * time.Second)
	return end.Sub(now), true
}

// deadlineMessage says what passed.
func deadlineMessage(dj *v1alpha1.DistillationJob) string {
	return fmt.Sprintf("the job ran longer than spec.activeDeadlineSeconds (%ds)", *dj.Spec.ActiveDeadlineSeconds)
}
