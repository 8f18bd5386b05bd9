package controllers

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// The settling policy: a finished stage Job is judged only once the cache shows its pods' final status.
//
// The Job controller writes a pod's final status before it counts the pod in the Job's status, but pods and
// Jobs reach the operator's cache through separate watches, in no common order. A pass woken by the finished
// Job can still see the pod running, or not see it at all; and a stage is judged once and for good from its
// pods' termination messages (the shards' sums, the trainer's evaluation, a failure's reason). So a finished
// Job whose cached pods do not yet account for its succeeded and failed counts waits for them. A pod that is
// gone (deleted with a deadline, garbage-collected) never shows up: podCacheGrace after the Job finished, the
// stage is judged with what the cache holds.

// podCacheGrace bounds how long a finished stage Job waits for its pods' final status to reach the cache.
const podCacheGrace = 5 * time.Second

// settling is how long to wait before reading the stage's finished Jobs, or 0 when every one's pods are in.
func settling(runs []stageRun, now time.Time) time.Duration {
	var wait time.Duration
	for _, run := range runs {
		finishedAt, ok := jobFinishedAt(run.job)
		if !ok || podsCounted(run.job, run.pods) {
			continue
		}
		wait = max(wait, finishedAt.Add(podCacheGrace).Sub(now))
	}
	return wait
}

// jobFinishedAt is when a stage Job completed or failed.
func jobFinishedAt(j *batchv1.Job) (time.Time, bool) {
	if j == nil {
		return time.Time{}, false
	}
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// podsCounted reports whether the pods hold as many succeeded and failed ones as the Job counts.
func podsCounted(j *batchv1.Job, pods []corev1.Pod) bool {
	var succeeded, failed int32
	for _, p := range pods {
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			succeeded++
		case corev1.PodFailed:
			failed++
		}
	}
	return succeeded >= j.Status.Succeeded && failed >= j.Status.Failed
}
