package controllers

import (
	"strconv"

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
	vols, mounts := stageVolumes(dj, true) // the annotator also annotates spec.dataset.eval
	c := annotatorContainer(dj, cfg, mounts)
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

// annotatorContainer runs the annotator on the job's annotate.json, with the teacher's key; extra
// arguments select a mode (--estimate).
func annotatorContainer(dj *v1alpha1.DistillationJob, cfg Config, mounts []corev1.VolumeMount, args ...string) corev1.Container {
	image := dj.Spec.Annotation.Image
	if image == "" {
		image = cfg.AnnotatorImage
	}
	c := corev1.Container{
		Name:         "annotator",
		Image:        image,
		Command:      append([]string{"/annotator", "--config", configDir + "/" + annotateConfigKey}, args...),
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
	return c
}

// estimateJob is the estimate stage's Job (spec.annotation.estimate): one annotator pod in --estimate
// mode, which asks the teacher about a seeded sample and writes the projection as its termination
// message. It runs whatever spec.suspend says (the estimate is what the user reads to approve the run):
// without Kueue its spec.suspend is false; with Kueue's queue label it is left to Kueue, which admits it
// like any stage Job (suspend.go). It is not retried beyond one lost pod: a failed estimate is an answer.
func estimateJob(dj *v1alpha1.DistillationJob, cfg Config) *batchv1.Job {
	vols, mounts := stageVolumes(dj, false)
	c := annotatorContainer(dj, cfg, mounts, "--estimate",
		"--estimate-sample", strconv.Itoa(int(dj.Spec.Annotation.Estimate.SampleSize)))
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: estimateJobName(dj), Namespace: dj.Namespace,
			Labels: kueueLabels(dj, jobLabels(dj, StageEstimate)), OwnerReferences: jobOwnerRef(dj),
		},
		Spec: batchv1.JobSpec{
			Completions:      ptr.To[int32](1),
			Parallelism:      ptr.To[int32](1),
			BackoffLimit:     ptr.To[int32](1),
			PodFailurePolicy: stagePodFailurePolicy(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: jobLabels(dj, StageEstimate)},
				Spec:       stagePodSpec(dj, c, vols),
			},
		},
	}
	withSpecHash(&job.ObjectMeta, job.Spec)
	if !queuedByKueue(dj) {
		job.Spec.Suspend = ptr.To(false)
	}
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
