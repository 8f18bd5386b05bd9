package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// modelSubPath is where the trainer saves the final model inside the workspace volume.
const modelSubPath = "model"

// studentModel is the StudentModel a job creates once training succeeded. It is deliberately not owned
// by the job: deleting a finished job (or its TTL) keeps the model, its files and its server. With
// serving disabled it is created stopped, so the model is still listed and its files kept.
func studentModel(dj *v1alpha1.DistillationJob) *v1alpha1.StudentModel {
	serving := dj.Spec.Serving
	sm := &v1alpha1.StudentModel{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "StudentModel"},
		ObjectMeta: metav1.ObjectMeta{
			Name: studentModelName(dj), Namespace: dj.Namespace,
			Labels: jobLabels(dj, StageServing),
		},
		Spec: v1alpha1.StudentModelSpec{
			Artifact:  v1alpha1.VolumeFileRef{ClaimName: workspaceClaimName(dj), Path: modelSubPath},
			BaseModel: baseModelDescription(dj),
			Serving:   *serving.ServingTemplate.DeepCopy(),
			Stopped:   !ptr.Deref(serving.Enabled, true),
		},
	}
	sm.Labels[LabelJobUID] = string(dj.UID)
	withSpecHash(&sm.ObjectMeta, sm.Spec)
	return sm
}

// studentModelStatusFromJob is the part of a StudentModel's status that only the job knows: the eval
// score and what made the model. The job controller writes these fields; the StudentModel controller
// writes the rest.
func studentModelStatusFromJob(dj *v1alpha1.DistillationJob, promptHash string) (v1alpha1.ModelMetrics, v1alpha1.ModelSource) {
	var metrics v1alpha1.ModelMetrics
	if ev := dj.Status.Evaluation; ev != nil {
		metrics = v1alpha1.ModelMetrics{Accuracy: ev.Accuracy, EvalExamples: ev.Examples}
	}
	return metrics, v1alpha1.ModelSource{
		Job: dj.Name, TeacherModel: dj.Spec.Teacher.Model, PromptHash: promptHash, Mode: dj.Spec.Training.Mode,
	}
}

// baseModelDescription is the hub id, or "pvc/<claim>/<path>".
func baseModelDescription(dj *v1alpha1.DistillationJob) string {
	if from := dj.Spec.Student.BaseModelFrom; from != nil {
		return "pvc/" + from.ClaimName + "/" + from.Path
	}
	return dj.Spec.Student.BaseModel
}
