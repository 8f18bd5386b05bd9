package controllers

import (
	"fmt"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Rendezvous settings of multi-worker training.
const (
	torchrunPort      = 29500
	resourceNvidiaGPU = corev1.ResourceName("nvidia.com/gpu")
)

// gpusPerWorker is spec.training.gpusPerWorker (default 1).
func gpusPerWorker(dj *v1alpha1.DistillationJob) int32 {
	return ptr.Deref(dj.Spec.Training.GPUsPerWorker, 1)
}

// distributed reports whether training needs torchrun (more than one process in all).
func distributed(dj *v1alpha1.DistillationJob) bool {
	return dj.Spec.Training.Workers > 1 || gpusPerWorker(dj) > 1
}

// trainerImage is spec.training.image, or the operator's --trainer-image.
func trainerImage(dj *v1alpha1.DistillationJob, cfg Config) string {
	if dj.Spec.Training.Image != "" {
		return dj.Spec.Training.Image
	}
	return cfg.TrainerImage
}

// trainingJob runs the student trainer for one training run (the single run, or a sweep's point): one
// pod, or an Indexed Job of workers pods that find each other through trainingService and torchrun's
// PET_* variables. The run's config key and base model are its own; everything else is spec.training.
func trainingJob(dj *v1alpha1.DistillationJob, cfg Config, p trainingPoint) *batchv1.Job {
	t := dj.Spec.Training
	args := []string{"-m", "distillery_student", "train", "--config", configDir + "/" + contract.TrainConfigKey(p.index)}
	command := append([]string{"python3"}, args...)
	if distributed(dj) {
		command = append([]string{"torchrun"}, args...)
	}
	vols, mounts := stageVolumes(dj, true)
	if from := p.student.BaseModelFrom; from != nil {
		vols = append(vols, corev1.Volume{Name: volBaseModel, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: from.ClaimName, ReadOnly: true},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: volBaseModel, MountPath: baseModelMountDir, ReadOnly: true})
	}
	c := corev1.Container{
		Name:         "trainer",
		Image:        trainerImage(dj, cfg),
		Command:      command,
		VolumeMounts: mounts,
		Resources:    trainingResources(dj),
		Env:          torchrunEnv(dj, p),
	}
	workers := t.Workers
	spec := stagePodSpec(dj, c, vols)
	spec.NodeSelector = t.NodeSelector
	spec.Tolerations = t.Tolerations
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: trainingJobName(dj, p), Namespace: dj.Namespace,
			Labels: kueueLabels(dj, trainingLabels(dj, p)), OwnerReferences: jobOwnerRef(dj),
		},
		Spec: batchv1.JobSpec{
			Completions:      ptr.To(workers),
			Parallelism:      ptr.To(workers),
			BackoffLimit:     ptr.To(ptr.Deref(t.BackoffLimit, 3)),
			PodFailurePolicy: stagePodFailurePolicy(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: trainingLabels(dj, p)},
				Spec:       spec,
			},
		},
	}
	if t.Workers > 1 {
		job.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		job.Spec.Template.Spec.Subdomain = trainingServiceName(dj, p)
	}
	withSpecHash(&job.ObjectMeta, job.Spec)
	job.Spec.Suspend = stageSuspendField(dj)
	return job
}

// trainingResources are the user's resources with nvidia.com/gpu set from gpusPerWorker.
func trainingResources(dj *v1alpha1.DistillationJob) corev1.ResourceRequirements {
	r := resourcesOr(dj.Spec.Training.Resources, "1", "2Gi")
	if gpus := gpusPerWorker(dj); gpus > 0 {
		q := *resource.NewQuantity(int64(gpus), resource.DecimalSI)
		if r.Limits == nil {
			r.Limits = corev1.ResourceList{}
		}
		r.Limits[resourceNvidiaGPU] = q
		if r.Requests != nil {
			r.Requests[resourceNvidiaGPU] = q
		}
	}
	return r
}

// torchrunEnv is torchrun's configuration as PET_* variables; the node rank is the completion index.
func torchrunEnv(dj *v1alpha1.DistillationJob, p trainingPoint) []corev1.EnvVar {
	if !distributed(dj) {
		return nil
	}
	procs := max(gpusPerWorker(dj), 1)
	env := []corev1.EnvVar{
		{Name: "PET_NNODES", Value: strconv.Itoa(int(dj.Spec.Training.Workers))},
		{Name: "PET_NPROC_PER_NODE", Value: strconv.Itoa(int(procs))},
	}
	if dj.Spec.Training.Workers < 2 {
		return env // one node: torchrun's local rendezvous needs no address
	}
	return append(env, []corev1.EnvVar{
		{Name: "PET_NODE_RANK", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']",
		}}},
		{Name: "PET_MASTER_ADDR", Value: fmt.Sprintf("%s-0.%s", trainingJobName(dj, p), trainingServiceName(dj, p))},
		{Name: "PET_MASTER_PORT", Value: strconv.Itoa(torchrunPort)},
	}...)
}

// trainingService is the headless Service behind a training run's pods' DNS names, for multi-worker runs.
func trainingService(dj *v1alpha1.DistillationJob, p trainingPoint) *corev1.Service {
	if dj.Spec.Training.Workers < 2 {
		return nil
	}
	selector := map[string]string{LabelJob: dj.Name, LabelStage: StageTraining}
	if p.inSweep() {
		selector[LabelPoint] = strconv.Itoa(p.index)
	}
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: trainingServiceName(dj, p), Namespace: dj.Namespace,
			Labels: trainingLabels(dj, p), OwnerReferences: jobOwnerRef(dj),
		},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 selector,
			Ports:                    []corev1.ServicePort{{Name: "rendezvous", Port: torchrunPort}},
		},
	}
	withSpecHash(&svc.ObjectMeta, svc.Spec)
	return svc
}
