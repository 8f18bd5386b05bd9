package controllers

import (
	"path"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// modelSubPath is where the trainer saves the final model inside the job's folder of the workspace.
const modelSubPath = "model"

// studentModel is the StudentModel a job creates once training succeeded: its single run's model, or its
// sweep's served point's. It is deliberately not owned by the job: deleting a finished job (or its TTL)
// keeps the model, its files and its server. With serving disabled it is created stopped, so the model is
// still listed and its files kept. What only the job knows (the eval scores beside the teacher's, what
// made the model) goes into its spec here, once: the StudentModel controller is the only writer of its
// status.
func studentModel(dj *v1alpha1.DistillationJob, snap contract.AnnotateConfig) *v1alpha1.StudentModel {
	serving := dj.Spec.Serving
	p := servedTrainingPoint(dj)
	sm := &v1alpha1.StudentModel{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "StudentModel"},
		ObjectMeta: metav1.ObjectMeta{
			Name: studentModelName(dj), Namespace: dj.Namespace,
			Labels: jobLabels(dj, StageServing),
		},
		Spec: v1alpha1.StudentModelSpec{
			Artifact:   v1alpha1.VolumeFileRef{ClaimName: workspaceClaimName(dj), Path: path.Join(pointDir(dj, p), modelSubPath)},
			BaseModel:  studentDescription(p.student),
			Serving:    *serving.ServingTemplate.DeepCopy(),
			Stopped:    !ptr.Deref(serving.Enabled, true),
			Provenance: modelProvenance(dj, snap, p),
		},
	}
	if ev := dj.Status.Evaluation; ev != nil {
		sm.Spec.Metrics = &v1alpha1.ModelMetrics{Metric: ev.Metric, Accuracy: ev.Accuracy, TeacherAccuracy: ev.TeacherAccuracy,
			Agreement: ev.Agreement, ExactMatch: ev.ExactMatch, TokenF1: ev.TokenF1, EvalExamples: ev.Examples,
			BestStep: ev.BestStep}
	}
	sm.Labels[LabelJobUID] = string(dj.UID)
	withSpecHash(&sm.ObjectMeta, sm.Spec)
	return sm
}

// modelProvenance says what made the model: the teacher, its sampling and the prompt as the job's
// snapshot holds them (never the examplesFrom ConfigMap as it is now), the dataset as the annotator read
// it, and what the teacher was paid; the mode is the served run's.
func modelProvenance(dj *v1alpha1.DistillationJob, snap contract.AnnotateConfig, run trainingPoint) *v1alpha1.ModelProvenance {
	p := &v1alpha1.ModelProvenance{
		Job: dj.Name, JobUID: string(dj.UID),
		TeacherModel:       snap.Teacher.Model,
		TeacherTemperature: strconv.FormatFloat(snap.Teacher.Temperature, 'f', -1, 64),
		TeacherMaxTokens:   int32(snap.Teacher.MaxTokens),
		PromptHash:         contract.PromptHash(snap.Task),
		Dataset:            datasetDescription(dj),
		Mode:               run.mode,
	}
	if a := dj.Status.Annotation; a != nil {
		p.DatasetHash = a.DatasetHash
		p.TeacherSpend = &v1alpha1.TeacherSpend{
			Requests: a.Requests, PromptTokens: a.PromptTokens, CompletionTokens: a.CompletionTokens, Cost: a.Cost,
			CacheHits: a.CacheHits, BudgetExceeded: a.BudgetExceeded,
		}
	}
	return p
}
