package controllers

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
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

// podLifecycleChanged passes pod events that can change a job's status: phase, scheduling, the
// kubelet's waiting reasons (ErrImagePull, CreateContainerConfigError) and termination; not every heartbeat of a running pod, and not the creation of a pod that has no status yet.
func podLifecycleChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Pod)
			n, ok2 := e.ObjectNew.(*corev1.Pod)
			if !ok1 || !ok2 {
				return true
			}
			return o.Status.Phase != n.Status.Phase ||
				!equality.Semantic.DeepEqual(o.Status.Conditions, n.Status.Conditions) ||
				terminationMessage(o) != terminationMessage(n) || waitingReasons(o) != waitingReasons(n)
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

// skipCreate drops the creation events of children the pass that created them has already accounted for
// (a new job's five workspace objects would otherwise bring five more passes). Updates and deletions pass;
// after a restart the jobs' own creation events bring every job through a pass anyway.
func skipCreate() predicate.Predicate {
	return predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }}
}

// stageJobChanged passes stage Job events the pass reads: the Job's conditions (Complete, Failed,
// Suspended), its spec (suspend) and its deletion; not the Job controller's counters (active, ready,
// uncounted pods), which change several times per pod and which the pass does not read.
func stageJobChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*batchv1.Job)
			n, ok2 := e.ObjectNew.(*batchv1.Job)
			if !ok1 || !ok2 {
				return true
			}
			if o.Generation != n.Generation || !o.DeletionTimestamp.Equal(n.DeletionTimestamp) || len(o.Status.Conditions) != len(n.Status.Conditions) {
				return true
			}
			for i := range n.Status.Conditions {
				if o.Status.Conditions[i].Type != n.Status.Conditions[i].Type || o.Status.Conditions[i].Status != n.Status.Conditions[i].Status {
					return true
				}
			}
			return false
		},
	}
}

// waitingReasons joins the waiting reasons of a pod's containers ("" when none waits).
func waitingReasons(p *corev1.Pod) string {
	var out string
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			out += cs.Name + "=" + w.Reason + ";"
		}
	}
	return out
}
