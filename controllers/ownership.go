package controllers

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// The ownership policy: a job adopts only what it controls (by UID). Before it creates a child under a
// name derived from its own, it reads that name from the API server (not the cache, which holds only the
// operator's objects): an object there that the job does not control is a permanent, named conflict,
// found before the first annotation Job starts, so the teacher is never paid for a job that cannot finish.
// An object whose controller is gone (a deleted job of the same name) is waited for: the garbage
// collector is about to delete it.

// derivedName is a child the job may still create under a derived name.
type derivedName struct {
	kind    string
	name    string
	empty   func() client.Object // a typed object to read the name into
	current client.Object        // what observe found controlled by the job, nil when nothing
	// ours reports whether an object read from the API server under this name is the job's although
	// observe did not see it (the cache lags behind a create); adopt then records it in observed.
	ours  func(client.Object) bool
	adopt func(client.Object)
}

// conflictError is a derived name taken by something that is not the job's.
type conflictError struct {
	reason  v1alpha1.ConditionReason
	message string
}

// checkDerivedNames reads from the API server the names of the children the job creates in this pass
// (before the first annotation Job: of every child it will ever create) that observe did not find. It
// returns a *specError: permanent with ReasonNameConflict (or ReasonModelNameTaken when only the
// StudentModel's name is taken), or waiting for the garbage collector.
func (r *DistillationJobReconciler) checkDerivedNames(ctx context.Context, dj *v1alpha1.DistillationJob, o *observed) error {
	var conflicts []conflictError
	var waiting []string
	fresh := false
	for _, d := range derivedNames(dj, o) {
		if d.current != nil && !reflect.ValueOf(d.current).IsNil() {
			continue
		}
		if !fresh {
			if err := r.ensureFresh(ctx, dj); err != nil {
				return err
			}
			fresh = true
		}
		obj := d.empty()
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: dj.Namespace, Name: d.name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("checking whether %s %s exists: %w", d.kind, d.name, err)
		}
		if d.ours(obj) {
			d.adopt(obj)
			continue
		}
		c, wait, err := r.classify(ctx, dj, d, obj)
		if err != nil {
			return err
		}
		if wait != "" {
			waiting = append(waiting, wait)
		} else {
			conflicts = append(conflicts, c)
		}
	}
	switch {
	case len(conflicts) > 0:
		return nameConflict(conflicts)
	case len(waiting) > 0:
		return &specError{msg: strings.Join(waiting, "; "), reason: v1alpha1.ReasonWaitingForGarbageCollection}
	}
	return nil
}

// ensureFresh makes sure the pass acts on the job as it is now before it creates anything: a pass that
// read a stale job from the cache (the watch event of the last status write not yet in) would otherwise
// re-create a stage Job that a failing pass just deleted. A newer job is a conflict: the pass is dropped
// and the next one reads the new job.
func (r *DistillationJobReconciler) ensureFresh(ctx context.Context, dj *v1alpha1.DistillationJob) error {
	now := &metav1.PartialObjectMetadata{}
	now.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("DistillationJob"))
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(dj), now); err != nil {
		return fmt.Errorf("reading the job before creating its children: %w", err)
	}
	if now.UID != dj.UID || now.ResourceVersion != dj.ResourceVersion {
		return apierrors.NewConflict(v1alpha1.GroupVersion.WithResource("distillationjobs").GroupResource(), dj.Name,
			fmt.Errorf("the cached job (resourceVersion %s) is older than the stored one (%s)", dj.ResourceVersion, now.ResourceVersion))
	}
	return nil
}

// classify says why an existing object is not the job's: a conflict, or (wait non-empty) an object of a
// deleted owner that the garbage collector is about to remove.
func (r *DistillationJobReconciler) classify(ctx context.Context, dj *v1alpha1.DistillationJob, d derivedName, obj client.Object) (c conflictError, wait string, err error) {
	what := d.kind + " " + d.name
	if obj.GetDeletionTimestamp() != nil {
		return c, what + " is being deleted; waiting for it to go", nil
	}
	ref := metav1.GetControllerOf(obj)
	if ref == nil {
		c = conflictError{reason: v1alpha1.ReasonNameConflict, message: what + " exists and was not made by this job (no controller)"}
		if d.kind == "StudentModel" {
			c = conflictError{reason: v1alpha1.ReasonModelNameTaken, message: modelTakenMessage(obj)}
		}
		return c, "", nil
	}
	gone, err := r.ownerGone(ctx, dj.Namespace, ref)
	if err != nil {
		return c, "", err
	}
	if gone {
		return c, fmt.Sprintf("%s still belongs to %s %s (uid %s), which was deleted; waiting for the garbage collector", what, ref.Kind, ref.Name, ref.UID), nil
	}
	return conflictError{reason: v1alpha1.ReasonNameConflict,
		message: fmt.Sprintf("%s exists and is controlled by %s %s (uid %s)", what, ref.Kind, ref.Name, ref.UID)}, "", nil
}

// ownerGone reports whether the controller an owner reference names no longer exists (with that UID).
// An owner the operator may not read counts as existing: the conflict is then reported, not waited out.
func (r *DistillationJobReconciler) ownerGone(ctx context.Context, ns string, ref *metav1.OwnerReference) (bool, error) {
	owner := &metav1.PartialObjectMetadata{}
	owner.SetGroupVersionKind(schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind))
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, owner)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, nil
	}
	return owner.GetUID() != ref.UID, nil
}

func modelTakenMessage(obj client.Object) string {
	if uid := obj.GetLabels()[LabelJobUID]; uid != "" {
		return fmt.Sprintf("StudentModel %s exists and was made by another DistillationJob %s (uid %s); delete or rename it, or give this job another name",
			obj.GetName(), obj.GetLabels()[LabelJob], uid)
	}
	return fmt.Sprintf("StudentModel %s exists and was not made by this job; delete or rename it, or give this job another name", obj.GetName())
}

// nameConflict is the permanent error of one or more taken names, every one named in the message.
func nameConflict(cs []conflictError) *specError {
	reason := v1alpha1.ReasonModelNameTaken
	msgs := make([]string, 0, len(cs))
	for _, c := range cs {
		if c.reason != v1alpha1.ReasonModelNameTaken {
			reason = v1alpha1.ReasonNameConflict
		}
		msgs = append(msgs, c.message)
	}
	return &specError{msg: "names this job needs are taken: " + strings.Join(msgs, "; ") +
		". The job adopts only objects it controls; delete those objects or give the job another name",
		permanent: true, reason: reason}
}

// derivedNames are the children the job creates in this pass; before its first annotation Job, every
// child it will ever create.
func derivedNames(dj *v1alpha1.DistillationJob, o *observed) []derivedName {
	controlled := func(obj client.Object) bool { return controlledByUID(obj, dj.UID) }
	preflight := o.estimate.job == nil && o.annotation.job == nil && !isTrue(dj.Status.Conditions, v1alpha1.ConditionAnnotated)
	annotated := isTrue(dj.Status.Conditions, v1alpha1.ConditionAnnotated)
	trained := isTrue(dj.Status.Conditions, v1alpha1.ConditionTrained)
	reported := stageDone(dj, reportStage)

	out := []derivedName{
		{"ConfigMap", configMapName(dj), func() client.Object { return &corev1.ConfigMap{} }, o.configMap, controlled,
			func(obj client.Object) { o.configMap = obj.(*corev1.ConfigMap) }},
		{"ConfigMap", contract.ProgressConfigMapName(dj.Name), func() client.Object { return &corev1.ConfigMap{} }, o.progress, controlled,
			func(obj client.Object) { o.progress = obj.(*corev1.ConfigMap) }},
		{"ConfigMap", contract.ReportConfigMapName(dj.Name), func() client.Object { return &corev1.ConfigMap{} }, o.report, controlled,
			func(obj client.Object) { o.report = obj.(*corev1.ConfigMap) }},
		{"ServiceAccount", serviceAccountName(dj), func() client.Object { return &corev1.ServiceAccount{} }, o.serviceAccount, controlled,
			func(obj client.Object) { o.serviceAccount = obj.(*corev1.ServiceAccount) }},
		{"Role", serviceAccountName(dj), func() client.Object { return &rbacv1.Role{} }, o.role, controlled,
			func(obj client.Object) { o.role = obj.(*rbacv1.Role) }},
		{"RoleBinding", serviceAccountName(dj), func() client.Object { return &rbacv1.RoleBinding{} }, o.roleBinding, controlled,
			func(obj client.Object) { o.roleBinding = obj.(*rbacv1.RoleBinding) }},
	}
	if dj.Spec.Teacher.Budget != nil {
		out = append(out, derivedName{"ConfigMap", contract.BudgetConfigMapName(dj.Name), func() client.Object { return &corev1.ConfigMap{} }, o.budget, controlled,
			func(obj client.Object) { o.budget = obj.(*corev1.ConfigMap) }})
	}
	if dj.Spec.Storage.ExistingClaim == "" {
		out = append(out, derivedName{"PersistentVolumeClaim", workspaceClaimName(dj), func() client.Object { return &corev1.PersistentVolumeClaim{} }, o.claim,
			func(obj client.Object) bool {
				return controlled(obj) || (o.model != nil && controlledByUID(obj, o.model.UID))
			},
			func(obj client.Object) { o.claim = obj.(*corev1.PersistentVolumeClaim) }})
	}
	if dj.Spec.Annotation.Estimate != nil && !stageDone(dj, estimateStage) {
		out = append(out, derivedName{"Job", estimateJobName(dj), func() client.Object { return &batchv1.Job{} }, o.estimate.job, controlled,
			func(obj client.Object) { o.estimate.job = obj.(*batchv1.Job) }})
	}
	if !annotated {
		out = append(out, derivedName{"Job", annotationJobName(dj), func() client.Object { return &batchv1.Job{} }, o.annotation.job, controlled,
			func(obj client.Object) { o.annotation.job = obj.(*batchv1.Job) }})
	}
	if (preflight || annotated) && !trained {
		out = append(out, trainingNames(dj, o, controlled)...)
	}
	if dj.Spec.Experiments != nil && (preflight || trained) && !reported {
		out = append(out, derivedName{"Job", reportJobName(dj), func() client.Object { return &batchv1.Job{} }, o.reportJob.job, controlled,
			func(obj client.Object) { o.reportJob.job = obj.(*batchv1.Job) }})
	}
	if preflight || trained {
		out = append(out, derivedName{"StudentModel", studentModelName(dj), func() client.Object { return &v1alpha1.StudentModel{} }, o.model,
			func(obj client.Object) bool { return obj.GetLabels()[LabelJobUID] == string(dj.UID) },
			func(obj client.Object) { o.model = obj.(*v1alpha1.StudentModel) }})
	}
	return out
}

// trainingNames are the names of every training run's Job (and headless Service), one run per point of
// a sweep.
func trainingNames(dj *v1alpha1.DistillationJob, o *observed, controlled func(client.Object) bool) []derivedName {
	var out []derivedName
	for _, p := range trainingPoints(dj) {
		var current client.Object
		if run := o.training[p.index]; run != nil && run.job != nil {
			current = run.job
		}
		out = append(out, derivedName{"Job", trainingJobName(dj, p), func() client.Object { return &batchv1.Job{} }, current, controlled,
			func(obj client.Object) { o.training[p.index] = &jobPods{job: obj.(*batchv1.Job)} }})
		if trainingService(dj, p) != nil {
			var svc client.Object
			if cur := o.trainingServices[p.index]; cur != nil {
				svc = cur
			}
			out = append(out, derivedName{"Service", trainingServiceName(dj, p), func() client.Object { return &corev1.Service{} }, svc, controlled,
				func(obj client.Object) { o.trainingServices[p.index] = obj.(*corev1.Service) }})
		}
	}
	return out
}
