package controllers

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// studentAPIKeyEnv is the variable the student server reads its bearer token from (contract:
// docs/workloads.md, "The student server").
const studentAPIKeyEnv = "DISTILLERY_STUDENT_API_KEY"

// servingPodLabels select a model's server pods (the Deployment's selector).
func servingPodLabels(sm *v1alpha1.StudentModel) map[string]string {
	return map[string]string{LabelModel: sm.Name, LabelStage: StageServing}
}

// servingSelector is status.selector: the scale subresource's label selector for kubectl scale and HPAs.
func servingSelector(sm *v1alpha1.StudentModel) string {
	return labels.SelectorFromSet(servingPodLabels(sm)).String()
}

// servingMinReplicas is the fewest server pods the model runs with: the autoscaler's minimum, or replicas.
func servingMinReplicas(sm *v1alpha1.StudentModel) int32 {
	if sm.Spec.Stopped {
		return 0
	}
	if a := sm.Spec.Serving.Autoscaling; a != nil {
		return ptr.Deref(a.MinReplicas, 1)
	}
	return ptr.Deref(sm.Spec.Serving.Replicas, 1)
}

// servingAuthEnv fills the server's token variable from the Secret named in spec.serving.auth.
func servingAuthEnv(sm *v1alpha1.StudentModel) []corev1.EnvVar {
	auth := sm.Spec.Serving.Auth
	if auth == nil {
		return nil
	}
	ref := auth.APIKeySecretRef
	return []corev1.EnvVar{{Name: studentAPIKeyEnv, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key,
	}}}}
}

func servingMeta(sm *v1alpha1.StudentModel) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: servingName(sm), Namespace: sm.Namespace, Labels: servingLabels(sm),
		OwnerReferences: modelOwnerRef(sm)}
}

// servingHPA scales the StudentModel (not its Deployment) through the scale subresource, so
// spec.serving.replicas stays the one place the replica count lives. Nil without autoscaling or when stopped.
func servingHPA(sm *v1alpha1.StudentModel) *autoscalingv2.HorizontalPodAutoscaler {
	a := sm.Spec.Serving.Autoscaling
	if a == nil || sm.Spec.Stopped {
		return nil
	}
	h := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: servingMeta(sm),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "StudentModel", Name: sm.Name,
			},
			MinReplicas: ptr.To(ptr.Deref(a.MinReplicas, 1)),
			MaxReplicas: a.MaxReplicas,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{
					Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(ptr.Deref(a.TargetCPUUtilization, 70)),
				}},
			}},
		},
	}
	withSpecHash(&h.ObjectMeta, h.Spec)
	return h
}

// servingPDB keeps all but one server pod up through voluntary disruptions (node drains). Nil when the
// model may run a single pod: a budget of one pod would block every drain.
func servingPDB(sm *v1alpha1.StudentModel) *policyv1.PodDisruptionBudget {
	if servingMinReplicas(sm) <= 1 {
		return nil
	}
	p := &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: servingMeta(sm),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: servingPodLabels(sm)},
		},
	}
	withSpecHash(&p.ObjectMeta, p.Spec)
	return p
}

// servingNetworkPolicy admits ingress to the server port only from spec.serving.allowFrom. Nil when unset.
func servingNetworkPolicy(sm *v1alpha1.StudentModel) *networkingv1.NetworkPolicy {
	peers := sm.Spec.Serving.AllowFrom
	if len(peers) == 0 {
		return nil
	}
	n := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: servingMeta(sm),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: servingPodLabels(sm)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(studentPort))}},
				From:  append([]networkingv1.NetworkPolicyPeer(nil), peers...),
			}},
		},
	}
	withSpecHash(&n.ObjectMeta, n.Spec)
	return n
}
