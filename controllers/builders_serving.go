package controllers

import (
	"path"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// studentPort is the student server's HTTP port (contract: serve --port 8080).
const studentPort = 8080

const modelMountDir = "/model"

func servingLabels(sm *v1alpha1.StudentModel) map[string]string {
	return map[string]string{LabelModel: sm.Name, LabelStage: StageServing, LabelManagedBy: ManagedBy}
}

func modelOwnerRef(sm *v1alpha1.StudentModel) []metav1.OwnerReference {
	return []metav1.OwnerReference{ownedBy(sm, "StudentModel")}
}

// servingDeployment runs the student server with the model mounted read-only; a stopped model has zero
// replicas.
func servingDeployment(sm *v1alpha1.StudentModel, cfg Config) *appsv1.Deployment {
	s := sm.Spec.Serving
	image := s.Image
	if image == "" {
		image = cfg.TrainerImage
	}
	replicas := ptr.Deref(s.Replicas, 1)
	if sm.Spec.Stopped {
		replicas = 0
	}
	tv, tm := tmpVolume()
	command := []string{"python3", "-m", "distillery_student", "serve",
		"--model", path.Join(modelMountDir, sm.Spec.Artifact.Path), "--port", "8080", "--served-model-name", sm.Name}
	if s.CompileDecoder == v1alpha1.DecoderCompileOff { // Auto is the server's own default
		command = append(command, "--compile-decoder", "off")
	}
	c := corev1.Container{
		Name:            "server",
		Image:           image,
		Command:         command,
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: studentPort}},
		Env:             append(scratchEnv(), servingAuthEnv(sm)...),
		Resources:       resourcesOr(s.Resources, "500m", "1Gi"),
		ImagePullPolicy: corev1.PullIfNotPresent,
		SecurityContext: restrictedContainerSecurity(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: "model", MountPath: modelMountDir, ReadOnly: true}, tm,
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 5, FailureThreshold: 3,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 20, FailureThreshold: 6,
		},
		StartupProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 5, FailureThreshold: 120,
		},
	}
	labels := servingLabels(sm)
	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name: servingName(sm), Namespace: sm.Namespace, Labels: labels, OwnerReferences: modelOwnerRef(sm),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: servingPodLabels(sm)},
			// A rollout adds a warmed-up pod before it removes one; the server drains on SIGTERM.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// the server's drain: 5 s with readiness false, then up to 20 s for in-flight requests
					TerminationGracePeriodSeconds: ptr.To[int64](35),
					SecurityContext:               restrictedPodSecurity(),
					AutomountServiceAccountToken:  ptr.To(false),
					NodeSelector:                  s.NodeSelector,
					Tolerations:                   s.Tolerations,
					Containers:                    []corev1.Container{c},
					Volumes: []corev1.Volume{
						{Name: "model", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
							ClaimName: sm.Spec.Artifact.ClaimName, ReadOnly: true,
						}}},
						tv,
					},
				},
			},
		},
	}
	withSpecHash(&d.ObjectMeta, d.Spec)
	return d
}

// servingService is the student's stable in-cluster address.
func servingService(sm *v1alpha1.StudentModel) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: servingName(sm), Namespace: sm.Namespace, Labels: servingLabels(sm), OwnerReferences: modelOwnerRef(sm),
		},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{LabelModel: sm.Name, LabelStage: StageServing},
			Ports:    []corev1.ServicePort{{Name: "http", Port: studentPort, TargetPort: intstr.FromString("http")}},
		},
	}
	withSpecHash(&svc.ObjectMeta, svc.Spec)
	return svc
}
