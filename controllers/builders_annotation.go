package controllers

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// annotationBackoffPerShard is how often one shard's pod is retried; a restarted shard resumes from its
// records file and the answer cache, so a retry never pays for an answer twice.
const annotationBackoffPerShard = 3

// annotationJob is the Indexed Job that runs one annotator pod per shard.
func annotationJob(dj *v1alpha1.DistillationJob, cfg Config) *batchv1.Job {
	shards := dj.Spec.Annotation.Shards
	image := dj.Spec.Annotation.Image
	if image == "" {
		image = cfg.AnnotatorImage
	}
	vols, mounts := stageVolumes(dj, true) // the annotator also annotates spec.dataset.eval
	c := corev1.Container{
		Name:         "annotator",
		Image:        image,
		Command:      []string{"/annotator", "--config", configDir + "/" + annotateConfigKey},
		VolumeMounts: mounts,
		Resources:    resourcesOr(dj.Spec.Annotation.Resources, "100m", "128Mi"),
	}
	if ref := dj.Spec.Teacher.APIKeySecretRef; ref != nil {
		c.Env = append(c.Env, corev1.EnvVar{Name: teacherAPIKeyEnv, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key,
			},
		}})
	}
	labels := jobLabels(dj, StageAnnotation)
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: annotationJobName(dj), Namespace: dj.Namespace,
			Labels: kueueLabels(dj, jobLabels(dj, StageAnnotation)), OwnerReferences: jobOwnerRef(dj),
		},
		Spec: batchv1.JobSpec{
			CompletionMode:       ptr.To(batchv1.IndexedCompletion),
			Completions:          ptr.To(shards),
			Parallelism:          ptr.To(shards),
			BackoffLimitPerIndex: ptr.To[int32](annotationBackoffPerShard),
			MaxFailedIndexes:     ptr.To[int32](0),
			PodFailurePolicy:     stagePodFailurePolicy(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       stagePodSpec(dj, c, vols),
			},
		},
	}
	withSpecHash(&job.ObjectMeta, job.Spec)
	job.Spec.Suspend = stageSuspendField(dj)
	return job
}

// stagePodFailurePolicy fails a stage at once when its program says a retry cannot help, and does not
// count pods lost to preemption, eviction or node loss against the retry budget.
func stagePodFailurePolicy() *batchv1.PodFailurePolicy {
	return &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{
			Action: batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				Operator: batchv1.PodFailurePolicyOnExitCodesOpIn,
				Values:   []int32{contract.ExitCodePermanent},
			},
		},
		{
			Action: batchv1.PodFailurePolicyActionIgnore,
			OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{
				{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue},
			},
		},
	}}
}
