package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The stuck-point policy. In a sweep, a point whose pod cannot start for a configuration error (the rule
// of stuckStage: an image that cannot be pulled, a missing Secret key, past the grace period) fails alone,
// instead of failing the whole job as a one-Job stage does: the other points go on, and the sweep fails
// only if every point does. The operator gives the point's Job an active deadline of one second, so the
// Job controller fails it and removes its pods, and the annotation AnnotationStoppedBecause, which
// failedStage reads for the point's row and message. A stopped Job waits there for the Job controller;
// its pods count no more for the stage's own waiting and scheduling messages.

// pointsToJudge are the live runs whose pods the stage's waiting and scheduling checks look at: for a stage
// of one Job, that Job; for a sweep, its points less those stopped. stuck are the sweep's points whose pod
// cannot start, with why.
func pointsToJudge(runs, live []stageRun, now time.Time, grace time.Duration) (judged []stageRun, stuck map[*batchv1.Job]string) {
	if len(runs) < 2 {
		return live, nil
	}
	for _, run := range live {
		switch {
		case run.job == nil:
		case run.job.Annotations[AnnotationStoppedBecause] != "":
			continue
		default:
			if fail, _, _ := stuckStage(run.pods, now, grace); fail != nil {
				if stuck == nil {
					stuck = map[*batchv1.Job]string{}
				}
				stuck[run.job] = fail.message
				continue
			}
		}
		judged = append(judged, run)
	}
	return judged, stuck
}

// stopPoints stops the stuck points' Jobs (a deadline of one second, and why).
func stopPoints(ctx context.Context, c client.Client, stuck map[*batchv1.Job]string) error {
	for job, why := range stuck {
		stopped := job.DeepCopy()
		if stopped.Annotations == nil {
			stopped.Annotations = map[string]string{}
		}
		stopped.Annotations[AnnotationStoppedBecause] = truncate(why, maxStoppedBecause)
		stopped.Spec.ActiveDeadlineSeconds = ptr.To[int64](1)
		if err := c.Patch(ctx, stopped, client.MergeFrom(job), client.FieldOwner(FieldOwner)); err != nil {
			return fmt.Errorf("stopping the stuck Job %s: %w", job.Name, err)
		}
	}
	return nil
}

// runningPod says whether any of the runs has a running pod: a sweep with one is not Unschedulable as a
// whole because one point's pod waits for room.
func runningPod(runs []stageRun) bool {
	for _, run := range runs {
		for _, p := range run.pods {
			if p.Status.Phase == corev1.PodRunning {
				return true
			}
		}
	}
	return false
}

// maxStoppedBecause bounds the annotation (the kubelet's message can be long).
const maxStoppedBecause = 1024
