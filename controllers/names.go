package controllers

import (
	"fmt"
	"path"
	"strconv"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Labels the builders put on every child, so children are found by label, never by name guessing.
const (
	LabelJob   = "distillery.dev/job"
	LabelStage = "distillery.dev/stage"
	LabelModel = "distillery.dev/studentmodel"
	// LabelPoint is the index of a sweep's point on its training Job, pods and Service.
	LabelPoint = "distillery.dev/point"
	// LabelJobUID ties a StudentModel to the job run that made it (it is not owned by the job).
	LabelJobUID    = "distillery.dev/job-uid"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "distillery-operator"

	// LabelKueueQueue is copied from the DistillationJob to its stage Jobs so Kueue can queue each stage.
	LabelKueueQueue = "kueue.x-k8s.io/queue-name"
	// LabelKueuePriorityClass (a Kueue WorkloadPriorityClass) is copied the same way.
	LabelKueuePriorityClass = "kueue.x-k8s.io/priority-class"
	// LabelKueueJobUID is the label Kueue puts on the Workload it makes for a Job: the Job's UID.
	LabelKueueJobUID = "kueue.x-k8s.io/job-uid"
	// AnnotationDeactivatedBy marks a Kueue Workload the operator deactivated for spec.suspend, so that
	// resuming reactivates only those and never one an administrator stopped.
	AnnotationDeactivatedBy = "distillery.dev/deactivated-by"

	// AnnotationStoppedBecause is on a sweep point's training Job that the operator stopped because its pod
	// could not start (stuck_points.go): why, in the kubelet's words. The Job's own failure (its deadline)
	// would not say it.
	AnnotationStoppedBecause = "distillery.dev/stopped-because"

	// AnnotationSpecHash records the hash of the desired child, so an unchanged child is never re-applied.
	AnnotationSpecHash = "distillery.dev/spec-hash"

	// FieldOwner is the server-side apply field manager of everything the operator writes.
	FieldOwner = "distillery-operator"
)

// Stage labels.
const (
	StageWorkspace  = "workspace"
	StageEstimate   = "estimate"
	StageAnnotation = "annotate"
	StageTraining   = "train"
	StageReport     = "report"
	StageServing    = "serve"
)

// Names of a job's children. They are derived from the job name, which is unique in its namespace. The
// admission rules on metadata.name (api/v1alpha1: at most 50 characters for a job, 55 for a StudentModel,
// no dots, a leading letter) are counted from the longest of them, the annotation pods' hostnames
// <job>-annotate-255, a sweep's training pod hostnames <job>-train-99-127 and the Service <model>-student;
// a new or longer suffix must keep TestTheLongestAdmittedNamesMakeValidChildren passing.
func workspaceClaimName(dj *v1alpha1.DistillationJob) string {
	if dj.Spec.Storage.ExistingClaim != "" {
		return dj.Spec.Storage.ExistingClaim
	}
	return dj.Name + "-workspace"
}
func configMapName(dj *v1alpha1.DistillationJob) string      { return dj.Name + "-config" }
func serviceAccountName(dj *v1alpha1.DistillationJob) string { return dj.Name + "-stage" }
func annotationJobName(dj *v1alpha1.DistillationJob) string  { return dj.Name + "-annotate" }
func estimateJobName(dj *v1alpha1.DistillationJob) string    { return dj.Name + "-estimate" }
func reportJobName(dj *v1alpha1.DistillationJob) string      { return dj.Name + "-report" }
func studentModelName(dj *v1alpha1.DistillationJob) string   { return dj.Name }

// trainingJobName is <job>-train for a single run, <job>-train-<index> for a sweep's point.
func trainingJobName(dj *v1alpha1.DistillationJob, p trainingPoint) string {
	if !p.inSweep() {
		return dj.Name + "-train"
	}
	return dj.Name + "-train-" + strconv.Itoa(p.index)
}

// jobDir is the job run's own folder inside the workspace volume (contract.JobDir): keyed by the UID, so
// jobs sharing a claim, or a new job under a deleted one's name, never meet in one folder.
func jobDir(dj *v1alpha1.DistillationJob) string { return contract.JobDir(dj.Name, string(dj.UID)) }

// pointDir is a training run's folder relative to the workspace root: the job folder for a single run,
// jobs/<job>-<uid>/points/<index> for a sweep's point.
func pointDir(dj *v1alpha1.DistillationJob, p trainingPoint) string {
	if !p.inSweep() {
		return jobDir(dj)
	}
	return path.Join(jobDir(dj), contract.PointDir(p.index))
}

// trainingServiceName is the headless Service that gives a run's multi-worker training pods stable DNS
// names; it shares the name of the run's Job.
func trainingServiceName(dj *v1alpha1.DistillationJob, p trainingPoint) string {
	return trainingJobName(dj, p)
}

// servingName is the Deployment and Service of a StudentModel.
func servingName(sm *v1alpha1.StudentModel) string { return sm.Name + "-student" }

// serviceURL is the in-cluster URL of a StudentModel's Service.
func serviceURL(sm *v1alpha1.StudentModel) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", servingName(sm), sm.Namespace, studentPort)
}

// jobLabels are the labels of every child of a job in one stage.
func jobLabels(dj *v1alpha1.DistillationJob, stage string) map[string]string {
	return map[string]string{LabelJob: dj.Name, LabelStage: stage, LabelManagedBy: ManagedBy}
}

// trainingLabels are the labels of a training run's children: a sweep's point also carries its index.
func trainingLabels(dj *v1alpha1.DistillationJob, p trainingPoint) map[string]string {
	l := jobLabels(dj, StageTraining)
	if p.inSweep() {
		l[LabelPoint] = strconv.Itoa(p.index)
	}
	return l
}

// pointOf is the point index a training child's labels name, or singleRun.
func pointOf(labels map[string]string) int {
	i, err := strconv.Atoi(labels[LabelPoint])
	if err != nil || i < 0 {
		return singleRun
	}
	return i
}
