package controllers

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// annotationProgress sums the shards' live progress reports from ConfigMap <job>-progress: counts and
// spend add up, budgetExceeded is any shard's, updatedAt is the newest report's.
func annotationProgress(cm *corev1.ConfigMap) contract.AnnotateProgress {
	var sum contract.AnnotateProgress
	if cm == nil {
		return sum
	}
	for k, v := range cm.Data {
		if !strings.HasPrefix(k, "annotate-") {
			continue
		}
		var p contract.AnnotateProgress
		if json.Unmarshal([]byte(v), &p) != nil {
			continue
		}
		sum.Add(p)
	}
	return sum
}

// trainingProgress is rank 0's live progress report, if any.
func trainingProgress(cm *corev1.ConfigMap) (contract.TrainProgress, bool) {
	return trainReport(cm, contract.TrainProgressKey(0))
}

// pointProgress is a sweep point's rank 0's live progress report, if any.
func pointProgress(cm *corev1.ConfigMap, index int) (contract.TrainProgress, bool) {
	return trainReport(cm, contract.PointProgressKey(index, 0))
}

func trainReport(cm *corev1.ConfigMap, key string) (contract.TrainProgress, bool) {
	var p contract.TrainProgress
	if cm == nil {
		return p, false
	}
	v, ok := cm.Data[key]
	if !ok || json.Unmarshal([]byte(v), &p) != nil {
		return p, false
	}
	return p, true
}

// progressString is the PROGRESS column: "4500/5000" while annotating, "step 300/1000" while training,
// "points 3/8" (finished of all) for a sweep.
func progressString(st *v1alpha1.DistillationJobStatus) string {
	switch {
	case len(st.Experiments) > 0:
		done := 0
		for _, row := range st.Experiments {
			if finishedState(row.State) {
				done++
			}
		}
		return fmt.Sprintf("points %d/%d", done, len(st.Experiments))
	case st.Training != nil && st.Training.TotalSteps > 0:
		return fmt.Sprintf("step %d/%d", st.Training.Step, st.Training.TotalSteps)
	case st.Annotation != nil && st.Annotation.Total > 0:
		return fmt.Sprintf("%d/%d", st.Annotation.Done, st.Annotation.Total)
	case st.Annotation != nil:
		return fmt.Sprintf("shards %d/%d", st.Annotation.ShardsSucceeded, st.Annotation.ShardsTotal)
	}
	return ""
}
