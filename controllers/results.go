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
		sum.Add(r)
	}
	return sum, shardsDone
}

// skippedNote says how many dataset lines the shards skipped and why the first one was, for the
// Annotated condition; "" when none was.
func skippedNote(sum contract.AnnotateResult) string {
	if sum.SkippedLines == 0 {
		return ""
	}
	lines := "lines"
	if sum.SkippedLines == 1 {
		lines = "line"
	}
	note := fmt.Sprintf("%d dataset %s skipped", sum.SkippedLines, lines)
	if sum.FirstSkippedLine > 0 {
		note += fmt.Sprintf("; first: line %d: %s", sum.FirstSkippedLine, truncate(sum.FirstSkippedError, contract.MaxSkippedErrorBytes))
	}
	return note
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
