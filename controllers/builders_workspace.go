package controllers

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

var defaultWorkspaceSize = resource.MustParse("10Gi")

// workspaceClaim is the PVC the operator creates for the job's workspace, or nil when the user named an
// existing claim. It is owned by the job until the job's StudentModel exists; then by the StudentModel, so
// deleting the finished job keeps the model files (see modelOwner).
func workspaceClaim(dj *v1alpha1.DistillationJob, modelOwner *v1alpha1.StudentModel) *corev1.PersistentVolumeClaim {
	st := dj.Spec.Storage
	if st.ExistingClaim != "" {
		return nil
	}
	size := defaultWorkspaceSize
	if st.Size != nil {
		size = *st.Size
	}
	modes := st.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	owner := jobOwnerRef(dj)
	if modelOwner != nil {
		owner = []metav1.OwnerReference{ownedBy(modelOwner, "StudentModel")}
	}
	pvc := &corev1.PersistentVolumeClaim{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{
			Name: workspaceClaimName(dj), Namespace: dj.Namespace,
			Labels: jobLabels(dj, StageWorkspace), OwnerReferences: owner,
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			StorageClassName: st.StorageClassName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	withSpecHash(&pvc.ObjectMeta, pvc.Spec)
	if modelOwner != nil {
		pvc.Annotations[AnnotationSpecHash] += "-model"
	}
	return pvc
}

// workspaceMeta is the metadata of a workspace child the job owns.
func workspaceMeta(dj *v1alpha1.DistillationJob, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: dj.Namespace, Labels: jobLabels(dj, StageWorkspace), OwnerReferences: jobOwnerRef(dj),
	}
}

// stageConfigMap holds annotate.json and the training configs (train.json, or a sweep's
// train-<index>.json per point), rendered from the spec and the examples: the job's snapshot, created
// once and never re-rendered (reconcileWorkspace). A sweep's report config is added to it once its
// points ended (reportStageConfig).
func stageConfigMap(dj *v1alpha1.DistillationJob, examples []contract.Example) *corev1.ConfigMap {
	annotate, _ := json.MarshalIndent(renderAnnotateConfig(dj, examples), "", "  ")
	data := map[string]string{annotateConfigKey: string(annotate)}
	for _, p := range trainingPoints(dj) {
		train, _ := json.MarshalIndent(renderTrainConfig(dj, examples, p), "", "  ")
		data[contract.TrainConfigKey(p.index)] = string(train)
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: workspaceMeta(dj, configMapName(dj)),
		Data:       data,
	}
	withSpecHash(&cm.ObjectMeta, cm.Data)
	return cm
}

// reportConfigMap is ConfigMap <job>-report, where the report is written (report.json, report.svg): the
// operator creates it empty and never writes its data (a single run's trainer, or a sweep's report Job,
// merge-patches it).
func reportConfigMap(dj *v1alpha1.DistillationJob) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: workspaceMeta(dj, contract.ReportConfigMapName(dj.Name)),
	}
	withSpecHash(&cm.ObjectMeta, "report")
	return cm
}

// progressConfigMap is where stage pods report progress; the operator creates it empty and never writes
// its data again (each pod merge-patches its own key).
func progressConfigMap(dj *v1alpha1.DistillationJob) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: workspaceMeta(dj, contract.ProgressConfigMapName(dj.Name)),
	}
	withSpecHash(&cm.ObjectMeta, "progress")
	return cm
}

// budgetConfigMap is the budget's ledger, nil without a budget. The operator owns its caps key and
// re-applies it whenever spec.teacher.budget changes, and its estimate key once the estimate's sample
// spent something (estimate, a share with only its used part); each shard merge-patches its own share
// key, which this apply leaves alone (server-side apply removes only fields its manager set).
func budgetConfigMap(dj *v1alpha1.DistillationJob, estimate contract.Spend) *corev1.ConfigMap {
	if dj.Spec.Teacher.Budget == nil {
		return nil
	}
	caps, _ := json.Marshal(budgetCaps(dj.Spec.Teacher.Budget))
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: workspaceMeta(dj, contract.BudgetConfigMapName(dj.Name)),
		Data:       map[string]string{contract.BudgetCapsKey: string(caps)},
	}
	if estimate != (contract.Spend{}) {
		share, _ := json.Marshal(contract.BudgetShare{Used: estimate})
		cm.Data[contract.BudgetEstimateKey] = string(share)
	}
	withSpecHash(&cm.ObjectMeta, cm.Data)
	return cm
}

// stageServiceAccount is the identity of the job's stage pods.
func stageServiceAccount(dj *v1alpha1.DistillationJob) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: workspaceMeta(dj, serviceAccountName(dj)),
	}
	withSpecHash(&sa.ObjectMeta, "sa")
	return sa
}

// stageRole lets stage pods get and patch the job's progress and report ConfigMaps (and its budget
// ledger), and nothing else.
func stageRole(dj *v1alpha1.DistillationJob) *rbacv1.Role {
	names := []string{contract.ProgressConfigMapName(dj.Name), contract.ReportConfigMapName(dj.Name)}
	if dj.Spec.Teacher.Budget != nil {
		names = append(names, contract.BudgetConfigMapName(dj.Name))
	}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: workspaceMeta(dj, serviceAccountName(dj)),
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"configmaps"},
			ResourceNames: names,
			Verbs:         []string{"get", "patch"},
		}},
	}
	withSpecHash(&role.ObjectMeta, role.Rules)
	return role
}

// stageRoleBinding binds stageRole to stageServiceAccount.
func stageRoleBinding(dj *v1alpha1.DistillationJob) *rbacv1.RoleBinding {
	rb := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: workspaceMeta(dj, serviceAccountName(dj)),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: serviceAccountName(dj)},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccountName(dj), Namespace: dj.Namespace}},
	}
	withSpecHash(&rb.ObjectMeta, rb.Subjects)
	return rb
}
