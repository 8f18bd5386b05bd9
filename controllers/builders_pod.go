package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// nonRootUID is the user every stage and serving container runs as.
const nonRootUID = 65532

// restrictedPodSecurity satisfies the "restricted" Pod Security Standard; fsGroup makes the workspace
// volume writable for the non-root user.
func restrictedPodSecurity() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](nonRootUID),
		RunAsGroup:     ptr.To[int64](nonRootUID),
		FSGroup:        ptr.To[int64](nonRootUID),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// restrictedContainerSecurity drops every capability and keeps the root filesystem read-only; programs
// write only to /tmp (an emptyDir) and to the workspace.
func restrictedContainerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// tmpVolume is the writable scratch space of a read-only container.
func tmpVolume() (corev1.Volume, corev1.VolumeMount) {
	return corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"}
}

// scratchEnv points caches that default to $HOME at the writable /tmp, and names the user: the
// non-root UID has no passwd entry in most images, and Python's getpass (used by torch) reads these
// variables before failing on the missing entry.
func scratchEnv() []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "HOME", Value: "/tmp"}, {Name: "HF_HOME", Value: "/tmp/hf"},
		{Name: "USER", Value: "distillery"}, {Name: "LOGNAME", Value: "distillery"},
		{Name: "TORCHINDUCTOR_CACHE_DIR", Value: "/tmp/torchinductor"},
	}
}

// resourcesOr returns the user's resources, or requests that let the scheduler place the pod sensibly.
func resourcesOr(r *corev1.ResourceRequirements, cpu, memory string) corev1.ResourceRequirements {
	if r != nil {
		return *r.DeepCopy()
	}
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(memory),
	}}
}

// ownedBy makes obj a controlled child of owner (garbage collected with it).
func ownedBy(owner metav1.Object, gvkKind string) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         v1alpha1.GroupVersion.String(),
		Kind:               gvkKind,
		Name:               owner.GetName(),
		UID:                owner.GetUID(),
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

func jobOwnerRef(dj *v1alpha1.DistillationJob) []metav1.OwnerReference {
	return []metav1.OwnerReference{ownedBy(dj, "DistillationJob")}
}

// withSpecHash stamps the hash of a built object's desired content into its annotations, so the
// reconciler re-applies a child only when what it wants changed.
func withSpecHash(meta *metav1.ObjectMeta, desired any) {
	b, _ := json.Marshal(desired)
	sum := sha256.Sum256(b)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[AnnotationSpecHash] = hex.EncodeToString(sum[:8])
}
