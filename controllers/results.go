package controllers

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// terminationMessage is the message of a pod's terminated container, or "".
func terminationMessage(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && strings.TrimSpace(t.Message) != "" {
			return strings.TrimSpace(t.Message)
		}
	}
	return ""
}

// completionIndex is an Indexed Job pod's index, or -1.
func completionIndex(p *corev1.Pod) int {
	i, err := strconv.Atoi(p.Annotations[batchv1.JobCompletionIndexAnnotation])
	if err != nil {
		return -1
	}
	return i
}

// annotationResults sums the termination summaries of the succeeded annotation pods, one per shard.
func annotationResults(pods []corev1.Pod) (sum contract.AnnotateResult, shardsDone int) {
	seen := map[int]bool{}
	for i := range pods {
		p := &pods[i]
		idx := completionIndex(p)
		if p.Status.Phase != corev1.PodSucceeded || seen[idx] {
			continue
		}
		var r contract.AnnotateResult
		if err := json.Unmarshal([]byte(terminationMessage(p)), &r); err != nil {
			continue
		}
		seen[idx] = true
		shardsDone++
		sum.Total += r.Total
		sum.OK += r.OK
		sum.Unparseable += r.Unparseable
		sum.LabelMismatch += r.LabelMismatch
		sum.TeacherErrors += r.TeacherErrors
		sum.CacheHits += r.CacheHits
		sum.PromptTokens += r.PromptTokens
		sum.CompletionTokens += r.CompletionTokens
	}
	return sum, shardsDone
}

// stageFailure is why a failed stage failed: its reason and a message naming the pod's own words.
type stageFailure struct {
	reason  v1alpha1.ConditionReason
	message string
}

// failedStage explains a failed stage Job from its failed pods' termination messages (the program's
// summary with error and reason when it wrote one, else the tail of its log), falling back to the Job's
// own condition message.
func failedStage(job *batchv1.Job, pods []corev1.Pod, defaultReason v1alpha1.ConditionReason, what string) stageFailure {
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
			if r.Reason == contract.ReasonTeacherUnreachable {
				reason = v1alpha1.ReasonTeacherUnreachable
			}
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

// trainResult is the trainer's termination summary from the succeeded training pod (rank 0 first).
func trainResult(pods []corev1.Pod) (contract.TrainResult, bool) {
	best := -1
	var out contract.TrainResult
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase != corev1.PodSucceeded {
			continue
		}
		var r contract.TrainResult
		if json.Unmarshal([]byte(terminationMessage(p)), &r) != nil || r.Stage != contract.StageTrain {
			continue
		}
		idx := max(completionIndex(p), 0)
		if best == -1 || idx < best {
			best, out = idx, r
		}
	}
	return out, best >= 0
}

// jobCondition reports whether a batch Job has condition t set to True.
func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	if j == nil {
		return false
	}
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
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

// formatDecimal renders a float for status the same way every time.
func formatDecimal(f float64, digits int) string {
	return strconv.FormatFloat(f, 'f', digits, 64)
}

// withRetryNote adds to a running stage's message why its last pod failed, if one did: a stage that
// retries quietly would otherwise look healthy while it burns its retries.
func withRetryNote(msg string, pods []corev1.Pod) string {
	var last *corev1.Pod
	failed := 0
	for i := range pods {
		if pods[i].Status.Phase == corev1.PodFailed {
			failed++
			if last == nil || pods[i].CreationTimestamp.After(last.CreationTimestamp.Time) {
				last = &pods[i]
			}
		}
	}
	if last == nil {
		return msg
	}
	why := terminationMessage(last)
	if why == "" {
		why = "no termination message"
	}
	return fmt.Sprintf("%s; %d pod(s) failed and were retried, the last (%s): %s", msg, failed, last.Name, truncate(why, 512))
}

// datasetHashes are the distinct dataset hashes the succeeded annotation shards reported, sorted and
// comma-separated: one hash when every shard read the same file.
func datasetHashes(pods []corev1.Pod) string {
	var out []string
	for i := range pods {
		var r contract.AnnotateResult
		if pods[i].Status.Phase != corev1.PodSucceeded || json.Unmarshal([]byte(terminationMessage(&pods[i])), &r) != nil {
			continue
		}
		if r.DatasetHash != "" && !slices.Contains(out, r.DatasetHash) {
			out = append(out, r.DatasetHash)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
