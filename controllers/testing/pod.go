package testing

import (
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Labels the operator's builders put on stage objects (kept literal here so the tests check the names).
const (
	LabelJob       = "distillery.dev/job"
	LabelStage     = "distillery.dev/stage"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "distillery-operator"
)

// PodWrapper builds a stage Pod as the Job controller and a kubelet would leave it.
type PodWrapper struct{ corev1.Pod }

// MakePod is a pending pod of one container named "main".
func MakePod(name, ns string) *PodWrapper {
	return &PodWrapper{corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: "stage:test"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}}
}

// Obj returns the built pod.
func (w *PodWrapper) Obj() *corev1.Pod { return w.Pod.DeepCopy() }

// StageOf makes the pod a pod of stage Job j of job djName: labels, controller owner reference.
func (w *PodWrapper) StageOf(j *batchv1.Job, djName, stage string) *PodWrapper {
	w.Labels[LabelJob] = djName
	w.Labels[LabelStage] = stage
	w.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}}
	return w
}

// Index sets the completion-index annotation of an Indexed Job's pod.
func (w *PodWrapper) Index(i int) *PodWrapper {
	if w.Annotations == nil {
		w.Annotations = map[string]string{}
	}
	w.Annotations[batchv1.JobCompletionIndexAnnotation] = strconv.Itoa(i)
	return w
}

// Created sets the creation timestamp (the API server overrides it; for unit tests).
func (w *PodWrapper) Created(t time.Time) *PodWrapper {
	w.CreationTimestamp = metav1.NewTime(t)
	return w
}

// Succeeded terminates the container with exit code 0 and the given termination message.
func (w *PodWrapper) Succeeded(msg string) *PodWrapper {
	return w.terminated(corev1.PodSucceeded, 0, msg)
}

// Failed terminates the container with the given exit code and termination message.
func (w *PodWrapper) Failed(exitCode int32, msg string) *PodWrapper {
	return w.terminated(corev1.PodFailed, exitCode, msg)
}

// Unschedulable marks the pod pending with the scheduler's message.
func (w *PodWrapper) Unschedulable(msg string) *PodWrapper {
	w.Status.Phase = corev1.PodPending
	w.Status.Conditions = []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: msg,
		LastTransitionTime: metav1.Now(),
	}}
	return w
}

// Running marks the pod running, its container started.
func (w *PodWrapper) Running() *PodWrapper {
	w.Status.Phase = corev1.PodRunning
	w.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: w.Spec.Containers[0].Name, Image: w.Spec.Containers[0].Image, ImageID: "sha256:0", Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}
	return w
}

// Waiting leaves the pod pending with its container waiting, as the kubelet reports an image that cannot
// be pulled (ErrImagePull), a missing Secret (CreateContainerConfigError) or volumes being mounted
// (ContainerCreating).
func (w *PodWrapper) Waiting(reason, msg string) *PodWrapper {
	w.Status.Phase = corev1.PodPending
	w.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: w.Spec.Containers[0].Name, Image: w.Spec.Containers[0].Image,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
	}}
	return w
}

func (w *PodWrapper) terminated(phase corev1.PodPhase, code int32, msg string) *PodWrapper {
	now := metav1.Now()
	w.Status.Phase = phase
	w.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: w.Spec.Containers[0].Name, Image: w.Spec.Containers[0].Image, ImageID: "sha256:0",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Message: msg, StartedAt: now, FinishedAt: now, Reason: "Completed",
		}},
	}}
	return w
}

// CompleteJob gives j the status the Job controller writes when every completion succeeded (1.37's
// validation wants SuccessCriteriaMet before Complete, and startTime/completionTime).
func CompleteJob(j *batchv1.Job) {
	now := metav1.Now()
	start := now
	if j.Status.StartTime != nil {
		start = *j.Status.StartTime
	}
	completions := ptr.Deref(j.Spec.Completions, 1)
	j.Status.StartTime = &start
	j.Status.CompletionTime = &now
	j.Status.Active = 0
	j.Status.Ready = ptr.To[int32](0)
	j.Status.Terminating = ptr.To[int32](0)
	j.Status.Succeeded = completions
	j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	if ptr.Deref(j.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion {
		j.Status.CompletedIndexes = indexRange(completions)
	}
	j.Status.Conditions = append(j.Status.Conditions,
		batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached",
			Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now},
		batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached",
			Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now},
	)
}

// FailJob gives j the status the Job controller writes when it fails (FailureTarget, then Failed).
func FailJob(j *batchv1.Job, reason, msg string) {
	now := metav1.Now()
	if j.Status.StartTime == nil {
		j.Status.StartTime = &now
	}
	j.Status.Active = 0
	j.Status.Ready = ptr.To[int32](0)
	j.Status.Terminating = ptr.To[int32](0)
	j.Status.Failed = 1
	j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	if ptr.Deref(j.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion && j.Spec.BackoffLimitPerIndex != nil {
		j.Status.FailedIndexes = ptr.To("0")
	}
	j.Status.Conditions = append(j.Status.Conditions,
		batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
			LastProbeTime: now, LastTransitionTime: now},
		batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
			LastProbeTime: now, LastTransitionTime: now},
	)
}

// DeploymentAvailable gives d the status of a rolled-out Deployment with ready replicas ready.
func DeploymentAvailable(d *appsv1.Deployment, ready int32) {
	want := ptr.Deref(d.Spec.Replicas, 1)
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas = want
	d.Status.UpdatedReplicas = want
	d.Status.ReadyReplicas = ready
	d.Status.AvailableReplicas = ready
	d.Status.UnavailableReplicas = want - ready
}

func indexRange(n int32) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "0"
	}
	return "0-" + strconv.Itoa(int(n-1))
}

// DeploymentStuck gives d the status of a Deployment whose rollout exceeded its progress deadline.
func DeploymentStuck(d *appsv1.Deployment, msg string) {
	DeploymentAvailable(d, 0)
	now := metav1.Now()
	d.Status.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		Message: msg, LastUpdateTime: now, LastTransitionTime: now,
	}}
}
