package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The failure policy: every decision that fails a job, and the actions that go with it, in one place.
//   - a stage Job that failed fails the job with its pods' own words (failedStage);
//   - a stage pod that cannot start because of its configuration (an image that cannot be pulled, a
//     missing Secret or key, a missing ConfigMap or claim) fails the job with the kubelet's words, once it
//     has waited out the grace period (stuckStage); while it waits, the stage condition says why;
//   - a child the apiserver refuses as Invalid, or Forbidden by admission (limit ranges, quota, Pod
//     Security), fails the job at once with reason InvalidSpec, naming the child (refusedChild);
//   - a problem with what the spec refers to fails the job when waiting cannot fix it (specProblem);
//   - the deadline fails the job (reconcile).
// A failed job's stage Jobs that still run are deleted in the next pass, once the failure is persisted
// (reconcileFinished, deleteStageJobs).
// A failed job runs nothing more; its Failed and Stalled conditions say why, and an event goes out.

// markFailed fails the job: the summary conditions say why; no further stage starts.
func markFailed(dj *v1alpha1.DistillationJob, reason v1alpha1.ConditionReason, msg string, now time.Time) {
	setCondition(dj, v1alpha1.ConditionFailed, true, reason, msg)
	setCondition(dj, v1alpha1.ConditionComplete, false, reason, "the job failed")
	markFinished(dj, now)
}

// markFinished records when the job finished (succeeded or failed).
func markFinished(dj *v1alpha1.DistillationJob, now time.Time) {
	if dj.Status.CompletionTime == nil {
		t := metav1.NewTime(now)
		dj.Status.CompletionTime = &t
	}
}

// stageFailure is why a failed stage failed: its reason and a message naming the pod's own words.
type stageFailure struct {
	reason  v1alpha1.ConditionReason
	message string
}

// failStage records a stage's failure on its own condition and fails the job.
func failStage(dj *v1alpha1.DistillationJob, s *stageJob, f stageFailure, now time.Time) {
	setCondition(dj, s.condition, false, f.reason, f.message)
	markFailed(dj, f.reason, f.message, now)
}

// FailureReason is the condition reason of a stage program's failure from the reason in its summary
// (contract.ReasonTeacherUnreachable, ReasonInvalidInput), else def.
func FailureReason(summaryReason string, def v1alpha1.ConditionReason) v1alpha1.ConditionReason {
	switch summaryReason {
	case contract.ReasonTeacherUnreachable:
		return v1alpha1.ReasonTeacherUnreachable
	case contract.ReasonInvalidInput:
		return v1alpha1.ReasonInvalidInput
	}
	return def
}

// failedStage explains a failed stage Job from its failed pods' termination messages (the program's
// summary with error and reason when it wrote one, else the tail of its log), falling back to the Job's
// own condition message.
func failedStage(job *batchv1.Job, pods []corev1.Pod, defaultReason v1alpha1.ConditionReason, what string) stageFailure {
	if why := job.GetAnnotations()[AnnotationStoppedBecause]; why != "" {
		return stageFailure{reason: v1alpha1.ReasonStagePodConfigError, message: fmt.Sprintf("%s cannot start: %s", what, why)}
	}
	failed := make([]*corev1.Pod, 0, len(pods))
	for i := range pods {
		if pods[i].Status.Phase == corev1.PodFailed {
			failed = append(failed, &pods[i])
		}
	}
	sort.Slice(failed, func(a, b int) bool { return failed[a].CreationTimestamp.After(failed[b].CreationTimestamp.Time) })
	for _, p := range failed {
		msg := terminationMessage(p)
		if msg == "" {
			continue
		}
		var r struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		reason := defaultReason
		if json.Unmarshal([]byte(msg), &r) == nil && r.Error != "" {
			msg = r.Error
			reason = FailureReason(r.Reason, defaultReason)
		}
		where := what
		if idx := completionIndex(p); idx >= 0 && what == "annotation" {
			where = fmt.Sprintf("annotation shard %d", idx)
		}
		return stageFailure{reason: reason, message: fmt.Sprintf("%s failed (pod %s): %s", where, p.Name, msg)}
	}
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return stageFailure{reason: defaultReason, message: fmt.Sprintf("%s job %s failed: %s: %s", what, job.Name, c.Reason, c.Message)}
		}
	}
	return stageFailure{reason: defaultReason, message: fmt.Sprintf("%s job %s failed", what, job.Name)}
}

// unschedulable is the scheduler's message for a stage pod it cannot place, or "".
func unschedulable(pods []corev1.Pod) string {
	for _, p := range pods {
		if p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return fmt.Sprintf("pod %s cannot be scheduled: %s", p.Name, c.Message)
			}
		}
	}
	return ""
}

// Waiting reasons of the kubelet that mean a pod's configuration is wrong. InvalidImageName can never
// recover; the others can (a Secret applied late, a registry that comes back), so they fail the stage
// only once the pod has waited longer than the grace period.
var (
	configErrorsAtOnce     = map[string]bool{"InvalidImageName": true}
	configErrorsAfterGrace = map[string]bool{
		"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true,
		"CreateContainerConfigError": true, "CreateContainerError": true,
	}
)

// podWait is a stage pod that waits to start: the kubelet's reason and message, and since when.
type podWait struct {
	pod             string
	reason, message string
	since           time.Time
}

func (w podWait) String() string {
	if w.message == "" {
		return fmt.Sprintf("pod %s is waiting: %s", w.pod, w.reason)
	}
	return fmt.Sprintf("pod %s is waiting: %s: %s", w.pod, w.reason, w.message)
}

// waitingPods lists the stage's pending pods whose containers wait, with the kubelet's reason.
func waitingPods(pods []corev1.Pod) []podWait {
	var out []podWait
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase != corev1.PodPending || p.DeletionTimestamp != nil {
			continue
		}
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil && w.Reason != "" {
				out = append(out, podWait{pod: p.Name, reason: w.Reason, message: strings.TrimSpace(w.Message), since: p.CreationTimestamp.Time})
				break
			}
		}
	}
	return out
}

// stuckStage decides about a stage's waiting pods: a configuration error fails the stage (at once, or
// once the pod waited longer than grace); otherwise the first wait is reported. retryIn is when a wait
// that may still turn into a failure must be looked at again.
func stuckStage(pods []corev1.Pod, now time.Time, grace time.Duration) (fail *stageFailure, wait *podWait, retryIn time.Duration) {
	for _, w := range waitingPods(pods) {
		waited := now.Sub(w.since)
		switch {
		case configErrorsAtOnce[w.reason] || (configErrorsAfterGrace[w.reason] && waited >= grace):
			return &stageFailure{reason: v1alpha1.ReasonStagePodConfigError,
				message: fmt.Sprintf("%s (for %s)", w, waited.Round(time.Second))}, nil, 0
		case configErrorsAfterGrace[w.reason] || w.reason == "ContainerCreating":
			retryIn = minPositive(retryIn, grace-waited)
		}
		if wait == nil {
			w := w
			wait = &w
		}
	}
	return nil, wait, retryIn
}

// mountProblem is the kubelet's latest FailedMount warning about a pod that waits in ContainerCreating
// past the grace period (the one wait the pod's status does not explain), or "". It reads events from
// the API server, only for such pods.
func mountProblem(ctx context.Context, c client.Reader, ns string, w *podWait, now time.Time, grace time.Duration) string {
	if w == nil || w.reason != "ContainerCreating" || now.Sub(w.since) < grace {
		return ""
	}
	var evs corev1.EventList
	if err := c.List(ctx, &evs, client.InNamespace(ns), client.MatchingFields{"involvedObject.name": w.pod}); err != nil {
		return ""
	}
	var latest *corev1.Event
	for i := range evs.Items {
		e := &evs.Items[i]
		if e.Reason == "FailedMount" && (latest == nil || e.LastTimestamp.After(latest.LastTimestamp.Time)) {
			latest = e
		}
	}
	if latest == nil {
		return ""
	}
	return fmt.Sprintf("pod %s cannot mount its volumes: %s", w.pod, latest.Message)
}

// refusedChild is the InvalidSpec message for an error of a pass that the apiserver refused because of
// what the spec asked for (the child is Invalid, or Forbidden by admission: limit ranges, quota, Pod
// Security), or "" for any other error. A Forbidden from authorization (the operator's own RBAC) is not
// the spec's fault and is retried.
func refusedChild(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return ""
	}
	switch {
	case apierrors.IsInvalid(err):
	case apierrors.IsForbidden(err) && !strings.Contains(err.Error(), " cannot "):
	default:
		return ""
	}
	return "the apiserver refused a child of this job: " + err.Error()
}

// deleteStageJobs stops the stage Jobs still running of a job that failed (its deadline passed, a stage
// pod cannot start). Finished stage Jobs stay, with their pods and logs, for the user to inspect.
func (r *DistillationJobReconciler) deleteStageJobs(ctx context.Context, o *observed) error {
	for _, j := range o.stageJobsFound() {
		if jobFinished(j) {
			continue
		}
		if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground),
			client.Preconditions{UID: &j.UID, ResourceVersion: &j.ResourceVersion}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting stage job %s: %w", j.Name, err)
		}
	}
	return nil
}

// specProblem turns a problem with the user's references or a refused child into status: permanent ones
// fail the job, a missing object is waited for (it may be applied after the job, as GitOps tools do).
// Any other error is returned as it is.
func (r *DistillationJobReconciler) specProblem(dj *v1alpha1.DistillationJob, err error) (ctrl.Result, error) {
	if msg := refusedChild(err); msg != "" {
		markFailed(dj, v1alpha1.ReasonInvalidSpec, msg, r.Clock.Now())
		return ctrl.Result{}, nil
	}
	var se *specError
	if !errors.As(err, &se) {
		return ctrl.Result{}, err
	}
	if se.permanent {
		markFailed(dj, se.conditionReason(), se.msg, r.Clock.Now())
		return ctrl.Result{}, nil
	}
	setCondition(dj, v1alpha1.ConditionComplete, false, se.conditionReason(), se.msg+" (retrying)")
	return ctrl.Result{RequeueAfter: 15 * time.Second}, nil
}
