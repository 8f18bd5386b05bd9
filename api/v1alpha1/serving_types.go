package v1alpha1

import (
	networkingv1 "k8s.io/api/networking/v1"
)

// ServingAutoscaling makes the operator create a HorizontalPodAutoscaler that scales the StudentModel
// through its scale subresource (it writes spec.serving.replicas).
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="spec.serving.autoscaling.minReplicas must not exceed maxReplicas"
type ServingAutoscaling struct {
	// minReplicas is the fewest server pods. Default: 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the most server pods.
	// +required
	// +kubebuilder:validation:Minimum=1
	MaxReplicas int32 `json:"maxReplicas"`

	// targetCPUUtilization is the average CPU use, in percent of each pod's CPU request, the autoscaler
	// holds the pods at. Default: 70.
	// +optional
	// +kubebuilder:default=70
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty"`
}

// ServingAuth requires a bearer token on the student's /v1 routes.
type ServingAuth struct {
	// apiKeySecretRef selects the Secret key holding the token clients send as "Authorization: Bearer".
	// The server reads it from an environment variable filled from the Secret; it is never logged.
	// +required
	APIKeySecretRef SecretKeyRef `json:"apiKeySecretRef"`
}

// NetworkPolicyPeers is who may reach the student server (spec.serving.allowFrom).
// +kubebuilder:validation:MaxItems=32
type NetworkPolicyPeers []networkingv1.NetworkPolicyPeer
