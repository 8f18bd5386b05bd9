package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// requestForJobLabel maps a labelled child that the job does not own (a stage pod, its StudentModel) to
// the job.
func requestForJobLabel(_ context.Context, obj client.Object) []reconcile.Request {
	name, ok := obj.GetLabels()[LabelJob]
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
}

// podLifecycleChanged passes pod events that can change a job's status: phase, scheduling and
// termination; not every heartbeat of a running pod.
func podLifecycleChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Pod)
			n, ok2 := e.ObjectNew.(*corev1.Pod)
			if !ok1 || !ok2 {
				return true
			}
			return o.Status.Phase != n.Status.Phase ||
				!equality.Semantic.DeepEqual(o.Status.Conditions, n.Status.Conditions) ||
				terminationMessage(o) != terminationMessage(n)
		},
	}
}

// jobSpecOrStatusChanged ignores the job's own status writes that changed nothing the pass reads,
// i.e. it passes spec changes, label changes (Kueue) and deletions, and status changes made by others.
func jobSpecOrStatusChanged() predicate.Predicate {
	return predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{},
		predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				o, ok1 := e.ObjectOld.(*v1alpha1.DistillationJob)
				n, ok2 := e.ObjectNew.(*v1alpha1.DistillationJob)
				return ok1 && ok2 && !o.DeletionTimestamp.Equal(n.DeletionTimestamp)
			},
			CreateFunc:  func(event.CreateEvent) bool { return true },
			DeleteFunc:  func(event.DeleteEvent) bool { return true },
			GenericFunc: func(event.GenericEvent) bool { return true },
		})
}
