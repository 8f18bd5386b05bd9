package controllers

import (
	"encoding/json"
	"maps"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// reportDeadlineSeconds bounds a sweep's report Job (it reads a few metrics files and draws one figure):
// a report that cannot finish fails by itself, and the job goes on without it.
const reportDeadlineSeconds = 600

// reportJob draws a sweep's report once its points ended: the trainer image's report command reads each
// point's metrics.json and patches report.json and report.svg into ConfigMap <job>-report.
func reportJob(dj *v1alpha1.DistillationJob, cfg Config) *batchv1.Job {
	vols, mounts := stageVolumes(dj, false)
	c := corev1.Container{
		Name:  "report",
		Image: trainerImage(dj, cfg),
		Command: []string{"python3", "-m", "distillery_student", "report",
			"--config", configDir + "/" + contract.ReportConfigKey},
		VolumeMounts: mounts,
		Resources:    resourcesOr(nil, "100m", "512Mi"),
	}
	spec := stagePodSpec(dj, c, vols)
	spec.NodeSelector = dj.Spec.Training.NodeSelector
	spec.Tolerations = dj.Spec.Training.Tolerations
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: reportJobName(dj), Namespace: dj.Namespace,
			Labels: kueueLabels(dj, jobLabels(dj, StageReport)), OwnerReferences: jobOwnerRef(dj),
		},
		Spec: batchv1.JobSpec{
			Completions:           ptr.To[int32](1),
			Parallelism:           ptr.To[int32](1),
			BackoffLimit:          ptr.To[int32](1),
			ActiveDeadlineSeconds: ptr.To[int64](reportDeadlineSeconds),
			PodFailurePolicy:      stagePodFailurePolicy(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: jobLabels(dj, StageReport)},
				Spec:       spec,
			},
		},
	}
	withSpecHash(&job.ObjectMeta, job.Spec)
	job.Spec.Suspend = stageSuspendField(dj)
	return job
}

// reportStageConfig is the job's config ConfigMap (the snapshot, current) with the sweep's report config
// added: the one key written after the job started, since the served point is known only once every
// point ended. Everything in it comes from the snapshot's spec and the points' status rows.
func reportStageConfig(dj *v1alpha1.DistillationJob, current *corev1.ConfigMap) *corev1.ConfigMap {
	report, _ := json.MarshalIndent(renderReportConfig(dj), "", "  ")
	data := map[string]string{}
	if current != nil {
		maps.Copy(data, current.Data)
	}
	data[contract.ReportConfigKey] = string(report)
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: workspaceMeta(dj, configMapName(dj)),
		Data:       data,
	}
	withSpecHash(&cm.ObjectMeta, cm.Data)
	return cm
}
