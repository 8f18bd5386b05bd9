package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// observed is what exists of a job's children, found by the labels the builders set and checked to be
// controlled by this job (a re-created job of the same name never adopts its predecessor's leftovers).
type observed struct {
	claim          *corev1.PersistentVolumeClaim
	configMap      *corev1.ConfigMap
	progress       *corev1.ConfigMap
	report         *corev1.ConfigMap
	budget         *corev1.ConfigMap
	serviceAccount *corev1.ServiceAccount
	role           *rbacv1.Role
	roleBinding    *rbacv1.RoleBinding

	estimate   jobPods
	annotation jobPods
	// training holds each training run's Job and pods by point index (singleRun without a sweep), and
	// trainingServices the headless Services of multi-worker runs.
	training         map[int]*jobPods
	trainingServices map[int]*corev1.Service
	reportJob        jobPods

	model *v1alpha1.StudentModel
}

// jobPods is a stage Job and the pods it controls; job is nil when it does not exist.
type jobPods struct {
	job  *batchv1.Job
	pods []corev1.Pod
}

// podsOf is a run's pods, none when the run is nil.
func podsOf(run *jobPods) []corev1.Pod {
	if run == nil {
		return nil
	}
	return run.pods
}

// runOf is what was observed of a stage Job: its Job and pods, nil when not observed.
func (o *observed) runOf(j *batchv1.Job) *jobPods {
	runs := []*jobPods{&o.estimate, &o.annotation, &o.reportJob}
	for _, run := range append(runs, slices.Collect(maps.Values(o.training))...) {
		if run.job != nil && run.job.UID == j.UID {
			return run
		}
	}
	return nil
}

// stageJobsFound are every stage Job that exists, in stage order.
func (o *observed) stageJobsFound() []*batchv1.Job {
	var out []*batchv1.Job
	runs := []*jobPods{&o.estimate, &o.annotation}
	for _, p := range slices.Sorted(maps.Keys(o.training)) {
		runs = append(runs, o.training[p])
	}
	for _, run := range append(runs, &o.reportJob) {
		if run.job != nil {
			out = append(out, run.job)
		}
	}
	return out
}

// observe lists the job's children from the informer cache, through the job-label index (index.go).
func observe(ctx context.Context, c client.Reader, dj *v1alpha1.DistillationJob) (*observed, error) {
	o := &observed{training: map[int]*jobPods{}, trainingServices: map[int]*corev1.Service{}}
	sel := []client.ListOption{client.InNamespace(dj.Namespace), client.MatchingFields{indexJob: dj.Name}}

	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, sel...); err != nil {
		return nil, fmt.Errorf("listing stage jobs: %w", err)
	}
	byUID := map[types.UID]*jobPods{}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if !metav1.IsControlledBy(j, dj) {
			continue
		}
		var run *jobPods
		switch j.Labels[LabelStage] {
		case StageEstimate:
			run = &o.estimate
		case StageAnnotation:
			run = &o.annotation
		case StageTraining:
			run = &jobPods{}
			o.training[pointOf(j.Labels)] = run
		case StageReport:
			run = &o.reportJob
		default:
			continue
		}
		run.job = j
		byUID[j.UID] = run
	}

	var pods corev1.PodList
	if err := c.List(ctx, &pods, sel...); err != nil {
		return nil, fmt.Errorf("listing stage pods: %w", err)
	}
	for _, p := range pods.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && byUID[ref.UID] != nil {
			byUID[ref.UID].pods = append(byUID[ref.UID].pods, p)
		}
	}

	var cms corev1.ConfigMapList
	if err := c.List(ctx, &cms, sel...); err != nil {
		return nil, fmt.Errorf("listing config maps: %w", err)
	}
	for i := range cms.Items {
		cm := &cms.Items[i]
		if !metav1.IsControlledBy(cm, dj) {
			continue
		}
		switch cm.Name {
		case configMapName(dj):
			o.configMap = cm
		case contract.ProgressConfigMapName(dj.Name):
			o.progress = cm
		case contract.ReportConfigMapName(dj.Name):
			o.report = cm
		case contract.BudgetConfigMapName(dj.Name):
			o.budget = cm
		}
	}

	var sas corev1.ServiceAccountList
	if err := c.List(ctx, &sas, sel...); err != nil {
		return nil, fmt.Errorf("listing service accounts: %w", err)
	}
	o.serviceAccount = firstControlled(dj, sas.Items)
	var roles rbacv1.RoleList
	if err := c.List(ctx, &roles, sel...); err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	o.role = firstControlled(dj, roles.Items)
	var rbs rbacv1.RoleBindingList
	if err := c.List(ctx, &rbs, sel...); err != nil {
		return nil, fmt.Errorf("listing role bindings: %w", err)
	}
	o.roleBinding = firstControlled(dj, rbs.Items)
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs, sel...); err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if metav1.IsControlledBy(svc, dj) && svc.Labels[LabelStage] == StageTraining {
			o.trainingServices[pointOf(svc.Labels)] = svc
		}
	}

	var models v1alpha1.StudentModelList
	if err := c.List(ctx, &models, sel...); err != nil {
		return nil, fmt.Errorf("listing student models: %w", err)
	}
	for i := range models.Items {
		if models.Items[i].Labels[LabelJobUID] == string(dj.UID) {
			o.model = &models.Items[i]
		}
	}

	// The workspace PVC is controlled by the job, or by its own StudentModel once that exists; a PVC of
	// the same label that an earlier job's StudentModel controls is not this job's.
	var claims corev1.PersistentVolumeClaimList
	if err := c.List(ctx, &claims, sel...); err != nil {
		return nil, fmt.Errorf("listing workspace claims: %w", err)
	}
	for i := range claims.Items {
		pvc := &claims.Items[i]
		if metav1.IsControlledBy(pvc, dj) || (o.model != nil && controlledByUID(pvc, o.model.UID)) {
			o.claim = pvc
		}
	}
	return o, nil
}

// firstControlled returns the first item controlled by dj, or nil.
func firstControlled[T any, PT interface {
	*T
	client.Object
}](dj *v1alpha1.DistillationJob, items []T) PT {
	for i := range items {
		p := PT(&items[i])
		if metav1.IsControlledBy(p, dj) {
			return p
		}
	}
	return nil
}

func controlledByUID(obj metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == uid
}
