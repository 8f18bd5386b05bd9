package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// Volume names shared by the stage pods.
const (
	volConfig    = "config"
	volDataset   = "dataset"
	volEval      = "eval"
	volWorkspace = "workspace"
	volBaseModel = "base-model"
)

// sourceVolume mounts one data source read-only at mountDir: a ConfigMap key as fileName, or a PVC's root
// (the contract's path points into it).
func sourceVolume(name string, src v1alpha1.DataSource, mountDir, fileName string) (corev1.Volume, corev1.VolumeMount) {
	mount := corev1.VolumeMount{Name: name, MountPath: mountDir, ReadOnly: true}
	if pvc := src.PersistentVolumeClaim; pvc != nil {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.ClaimName, ReadOnly: true},
		}}, mount
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: src.ConfigMap.Name},
		Items:                []corev1.KeyToPath{{Key: src.ConfigMap.Key, Path: fileName}},
	}}}, mount
}

// stageVolumes are the config, dataset (and eval) and workspace volumes of every stage pod, plus /tmp.
func stageVolumes(dj *v1alpha1.DistillationJob, withEval bool) ([]corev1.Volume, []corev1.VolumeMount) {
	vols := []corev1.Volume{
		{Name: volConfig, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(dj)},
		}}},
		{Name: volWorkspace, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
			ClaimName: workspaceClaimName(dj),
		}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: volConfig, MountPath: configDir, ReadOnly: true},
		{Name: volWorkspace, MountPath: workspaceDir},
	}
	v, m := sourceVolume(volDataset, dj.Spec.Dataset.DataSource, datasetMountDir, datasetFileName)
	vols, mounts = append(vols, v), append(mounts, m)
	if withEval && dj.Spec.Dataset.Eval != nil {
		v, m := sourceVolume(volEval, *dj.Spec.Dataset.Eval, evalMountDir, evalFileName)
		vols, mounts = append(vols, v), append(mounts, m)
	}
	tv, tm := tmpVolume()
	return append(vols, tv), append(mounts, tm)
}

// stagePodSpec is what every stage pod has in common.
func stagePodSpec(dj *v1alpha1.DistillationJob, c corev1.Container, vols []corev1.Volume) corev1.PodSpec {
	c.SecurityContext = restrictedContainerSecurity()
	c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	c.ImagePullPolicy = corev1.PullIfNotPresent
	c.Env = append(scratchEnv(), c.Env...)
	return corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		ServiceAccountName:           serviceAccountName(dj),
		AutomountServiceAccountToken: ptr.To(true),
		SecurityContext:              restrictedPodSecurity(),
		Containers:                   []corev1.Container{c},
		Volumes:                      vols,
	}
}

// kueueLabels copies the job's Kueue labels (queue name, workload priority class) to a stage Job.
func kueueLabels(dj *v1alpha1.DistillationJob, labels map[string]string) map[string]string {
	for _, k := range []string{LabelKueueQueue, LabelKueuePriorityClass} {
		if v, ok := dj.Labels[k]; ok {
			labels[k] = v
		}
	}
	return labels
}
