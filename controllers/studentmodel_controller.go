package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// StudentModelReconciler serves a StudentModel with a Deployment and a Service.
type StudentModelReconciler struct {
	client.Client
	Recorder record.EventRecorder
	Config   Config
}

// +kubebuilder:rbac:groups=distillery.dev,resources=studentmodels,verbs=get;list;watch
// +kubebuilder:rbac:groups=distillery.dev,resources=studentmodels/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete

// Reconcile ensures the server Deployment and Service and writes the model's status once.
func (r *StudentModelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var sm v1alpha1.StudentModel
	if err := r.Get(ctx, req.NamespacedName, &sm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !sm.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := sm.DeepCopy()
	var deploy *appsv1.Deployment
	var err error
	refusal := modelSpecRefusal(&sm, r.Config) // nothing is created or changed for a refused spec
	if refusal == "" {
		deploy, err = r.reconcileServing(ctx, &sm)
	}
	if err == nil {
		setModelStatus(&sm, deploy)
		if refusal != "" { // failed until the spec changes: Stalled, which kstatus reads as Failed
			setModelCondition(&sm, v1alpha1.ConditionReady, false, v1alpha1.ReasonInvalidSpec, refusal)
			setModelCondition(&sm, v1alpha1.ConditionStalled, true, v1alpha1.ReasonInvalidSpec, refusal)
		}
		sm.Status.ObservedGeneration = sm.Generation
	}
	if !equality.Semantic.DeepEqual(orig.Status, sm.Status) {
		// The only writer of a StudentModel's status: a merge patch of only what changed, with the resourceVersion read (optimistic lock).
		if perr := r.Status().Patch(ctx, &sm, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); perr != nil {
			if apierrors.IsConflict(perr) {
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(perr)
		}
		emitTransitionEvents(r.Recorder, &sm, orig.Status.Conditions, sm.Status.Conditions)
	}
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, err
}

// reconcileServing ensures the Service and the Deployment and returns the Deployment as observed.
func (r *StudentModelReconciler) reconcileServing(ctx context.Context, sm *v1alpha1.StudentModel) (*appsv1.Deployment, error) {
	var svcs corev1.ServiceList
	var deploys appsv1.DeploymentList
	sel := []client.ListOption{client.InNamespace(sm.Namespace), client.MatchingFields{indexModel: sm.Name}, client.MatchingLabels{LabelStage: StageServing}}
	if err := r.List(ctx, &svcs, sel...); err != nil {
		return nil, fmt.Errorf("listing student services: %w", err)
	}
	if err := r.List(ctx, &deploys, sel...); err != nil {
		return nil, fmt.Errorf("listing student deployments: %w", err)
	}
	var curSvc *corev1.Service
	var curDeploy *appsv1.Deployment
	for i := range svcs.Items {
		if isControlledByModel(&svcs.Items[i], sm) {
			curSvc = &svcs.Items[i]
		}
	}
	for i := range deploys.Items {
		if isControlledByModel(&deploys.Items[i], sm) {
			curDeploy = &deploys.Items[i]
		}
	}
	if _, err := ensure(ctx, r.Client, curSvc, servingService(sm)); err != nil {
		return nil, fmt.Errorf("ensuring student service: %w", err)
	}
	if _, err := ensure(ctx, r.Client, curDeploy, servingDeployment(sm, r.Config)); err != nil {
		return nil, fmt.Errorf("ensuring student deployment: %w", err)
	}
	return curDeploy, r.reconcileServingPolicies(ctx, sm)
}

// isControlledByModel reports whether sm is obj's controller.
func isControlledByModel(obj client.Object, sm *v1alpha1.StudentModel) bool {
	return controlledByUID(obj, sm.UID)
}

// setModelStatus derives the model's status from its Deployment (nil when just created). Ready is True
// when every wanted replica is ready, and also when no replica is wanted on purpose (spec.stopped, or
// replicas 0): the model is then exactly as asked. Stalled is True when the Deployment cannot progress
// (its progress deadline passed, or the apiserver refuses its pods), with the Deployment's words.
func setModelStatus(sm *v1alpha1.StudentModel, d *appsv1.Deployment) {
	sm.Status.Endpoint = serviceURL(sm)
	want := ptr.Deref(sm.Spec.Serving.Replicas, 1)
	var replicas, ready int32
	if d != nil && d.Status.ObservedGeneration >= d.Generation {
		replicas, ready = d.Status.Replicas, d.Status.ReadyReplicas
	}
	sm.Status.Replicas, sm.Status.ReadyReplicas = replicas, ready
	var stalledReason v1alpha1.ConditionReason
	var stalledMsg string
	if want > 0 && !sm.Spec.Stopped { // a rollout that no replica is wanted of cannot be stuck
		stalledReason, stalledMsg = deploymentStalled(d)
	}
	if stalledReason != "" {
		setModelCondition(sm, v1alpha1.ConditionStalled, true, stalledReason, stalledMsg)
	} else {
		setModelCondition(sm, v1alpha1.ConditionStalled, false, v1alpha1.ReasonNotStalled, "the server's rollout is not blocked")
	}
	switch {
	case sm.Spec.Stopped:
		setModelCondition(sm, v1alpha1.ConditionStopped, true, v1alpha1.ReasonStopped, "spec.stopped is true: the server is scaled to zero; the model is kept")
		setModelCondition(sm, v1alpha1.ConditionReady, true, v1alpha1.ReasonStopped, "the model is stopped on purpose (spec.stopped): no server runs")
		return
	case want == 0:
		setModelCondition(sm, v1alpha1.ConditionStopped, false, v1alpha1.ReasonRunning, "spec.stopped is false")
		setModelCondition(sm, v1alpha1.ConditionReady, true, v1alpha1.ReasonScaledToZero, "spec.serving.replicas is 0: no server runs, as asked")
		return
	}
	setModelCondition(sm, v1alpha1.ConditionStopped, false, v1alpha1.ReasonRunning, "the server runs")
	switch {
	case ready >= want:
		setModelCondition(sm, v1alpha1.ConditionReady, true, v1alpha1.ReasonServing, fmt.Sprintf("%d/%d replicas ready at %s", ready, want, sm.Status.Endpoint))
	case stalledReason != "":
		setModelCondition(sm, v1alpha1.ConditionReady, false, stalledReason, fmt.Sprintf("%d/%d replicas ready; %s", ready, want, stalledMsg))
	default:
		setModelCondition(sm, v1alpha1.ConditionReady, false, v1alpha1.ReasonReplicasNotReady, fmt.Sprintf("%d/%d replicas ready", ready, want))
	}
}

// deploymentStalled is why the server Deployment cannot progress without a change, or "": its progress
// deadline passed, or its ReplicaSet cannot create pods.
func deploymentStalled(d *appsv1.Deployment) (v1alpha1.ConditionReason, string) {
	if d == nil {
		return "", ""
	}
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return v1alpha1.ReasonReplicaFailure, fmt.Sprintf("Deployment %s cannot create pods: %s", d.Name, c.Message)
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
			return v1alpha1.ReasonProgressDeadlineExceeded, fmt.Sprintf("Deployment %s: %s", d.Name, c.Message)
		}
	}
	return "", ""
}

// SetupWithManager watches StudentModels and the Deployments and Services they own.
func (r *StudentModelReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	if err := indexByLabel(context.Background(), mgr.GetFieldIndexer(), indexModel, LabelModel,
		append([]client.Object{&corev1.Service{}, &appsv1.Deployment{}}, servingPolicyKinds()...)...); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.StudentModel{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{})
	for _, kind := range servingPolicyKinds() {
		b = b.Owns(kind)
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).Complete(r)
}
