package v1alpha1

// ConditionType names a condition of a DistillationJob or StudentModel.
type ConditionType string

// DistillationJob condition types. Complete and Failed are the summary conditions GitOps tools read.
const (
	// ConditionSuspended is True while spec.suspend holds the job.
	ConditionSuspended ConditionType = "Suspended"
	// ConditionEstimated is set with spec.annotation.estimate only: True once the estimate Job put its
	// projection in status.estimate.
	ConditionEstimated ConditionType = "Estimated"
	// ConditionAnnotated is True once every annotation shard succeeded with usable annotations.
	ConditionAnnotated ConditionType = "Annotated"
	// ConditionTrained is True once the trainer saved the model; for a sweep, once every point finished and
	// at least one saved its model (the served point is chosen then).
	ConditionTrained ConditionType = "Trained"
	// ConditionReported is set for a sweep only: True once its report Job wrote ConfigMap <job>-report,
	// False with reason ReportFailed when it did not (the job still succeeds).
	ConditionReported ConditionType = "Reported"
	// ConditionComplete is True once the job succeeded.
	ConditionComplete ConditionType = "Complete"
	// ConditionFailed is True once the job failed; no further stage starts.
	ConditionFailed ConditionType = "Failed"
)

// The standard summary conditions that generic tools read (kstatus, used by Flux and kubectl-based
// rollouts, reads Reconciling and Stalled, then Ready). Both kinds carry Ready; a DistillationJob also
// carries Reconciling while it runs and Stalled once it failed, and a StudentModel Stalled when its
// rollout cannot progress. They summarise the kinds' own conditions and never decide anything.
const (
	// ConditionReconciling is True while a DistillationJob's stages run (its reason is the stage).
	ConditionReconciling ConditionType = "Reconciling"
	// ConditionStalled is True when the object cannot make progress without a change: a failed job, or a
	// StudentModel whose Deployment exceeded its progress deadline.
	ConditionStalled ConditionType = "Stalled"
)

// StudentModel condition types. Ready is the summary condition.
const (
	// ConditionReady is True on a DistillationJob once it succeeded; on a StudentModel when every wanted
	// server replica is ready, or when it is stopped or scaled to zero on purpose (the reason says which).
	ConditionReady ConditionType = "Ready"
	// ConditionStopped is True while spec.stopped scales the server to zero.
	ConditionStopped ConditionType = "Stopped"
)

// ConditionReason is the machine-readable cause of a condition's status. Events use the same reasons.
type ConditionReason string

const (
	// ReasonPending: the stage has not started yet.
	ReasonPending ConditionReason = "Pending"
	// ReasonSuspended: spec.suspend is true.
	ReasonSuspended ConditionReason = "Suspended"
	// ReasonResumed: spec.suspend went back to false.
	ReasonResumed ConditionReason = "Resumed"
	// ReasonNotSuspended: the job runs.
	ReasonNotSuspended ConditionReason = "NotSuspended"
	// ReasonEstimating: the estimate Job runs.
	ReasonEstimating ConditionReason = "Estimating"
	// ReasonEstimateSucceeded: the estimate is in status.estimate.
	ReasonEstimateSucceeded ConditionReason = "EstimateSucceeded"
	// ReasonEstimateFailed: the estimate Job failed or wrote no usable summary; the job fails before
	// annotation.
	ReasonEstimateFailed ConditionReason = "EstimateFailed"
	// ReasonEstimateUnparseable: not one of the sample's answers parsed (a broken prompt or teacher); the
	// job fails before annotation.
	ReasonEstimateUnparseable ConditionReason = "EstimateUnparseable"
	// ReasonAnnotating: annotation shards are running.
	ReasonAnnotating ConditionReason = "Annotating"
	// ReasonAnnotationSucceeded: every shard succeeded with usable annotations.
	ReasonAnnotationSucceeded ConditionReason = "AnnotationSucceeded"
	// ReasonAnnotationFailed: an annotation shard failed.
	ReasonAnnotationFailed ConditionReason = "AnnotationFailed"
	// ReasonTeacherUnreachable: an annotation shard could not reach the teacher at all.
	ReasonTeacherUnreachable ConditionReason = "TeacherUnreachable"
	// ReasonInvalidInput: a stage program found its input unusable (the dataset, the few-shot examples, the
	// base model); its message names the line or field. A retry cannot help.
	ReasonInvalidInput ConditionReason = "InvalidInput"
	// ReasonNoUsableAnnotations: annotation finished but no answer was usable for training.
	ReasonNoUsableAnnotations ConditionReason = "NoUsableAnnotations"
	// ReasonBudgetExceeded: the teacher budget (spec.teacher.budget) ran out: the annotation shards stopped
	// asking the teacher and kept every record. With onExceeded Fail the job fails (the message gives
	// spend and caps) and a larger budget resumes it; with Train, Annotated is True with this reason and
	// the student trains on what the budget paid for.
	ReasonBudgetExceeded ConditionReason = "BudgetExceeded"
	// ReasonBudgetRaised: spec.teacher.budget was raised above the spend of a job its budget had stopped;
	// the annotation continues where it stopped (a new annotation Job; the shards resume from their files).
	ReasonBudgetRaised ConditionReason = "BudgetRaised"
	// ReasonTraining: the trainer is running.
	ReasonTraining ConditionReason = "Training"
	// ReasonTrainingSucceeded: the trainer saved the model.
	ReasonTrainingSucceeded ConditionReason = "TrainingSucceeded"
	// ReasonTrainingFailed: the training Job failed.
	ReasonTrainingFailed ConditionReason = "TrainingFailed"
	// ReasonReporting: a sweep's report Job is running.
	ReasonReporting ConditionReason = "Reporting"
	// ReasonReportSucceeded: the report Job wrote report.json and report.svg into ConfigMap <job>-report.
	ReasonReportSucceeded ConditionReason = "ReportSucceeded"
	// ReasonReportFailed: the report Job failed; the message quotes it. The sweep's students, status and
	// StudentModel do not depend on it, so the job goes on.
	ReasonReportFailed ConditionReason = "ReportFailed"
	// ReasonDeadlineExceeded: the job ran longer than spec.activeDeadlineSeconds.
	ReasonDeadlineExceeded ConditionReason = "DeadlineExceeded"
	// ReasonSucceeded: the job finished and its StudentModel exists.
	ReasonSucceeded ConditionReason = "Succeeded"
	// ReasonInProgress: the job has not finished.
	ReasonInProgress ConditionReason = "InProgress"
	// ReasonUnschedulable: a stage's pods cannot be scheduled (the scheduler's message says why).
	ReasonUnschedulable ConditionReason = "Unschedulable"

	// ReasonModelNameTaken: a StudentModel of the job's name exists and belongs to something else.
	ReasonModelNameTaken ConditionReason = "ModelNameTaken"
	// ReasonNameConflict: an object of a name the job derives for a child (workspace PVC, ConfigMaps,
	// ServiceAccount, Role, RoleBinding, stage Jobs, training Service) exists and is not the job's: another
	// object controls it, or nothing does. The job fails before it starts annotating; the message names the
	// object and its controller.
	ReasonNameConflict ConditionReason = "NameConflict"
	// ReasonWaitingForGarbageCollection: an object of a derived name still belongs to a deleted owner
	// (a deleted job of the same name); the job waits for the garbage collector to remove it.
	ReasonWaitingForGarbageCollection ConditionReason = "WaitingForGarbageCollection"
	// ReasonInvalidSpec: the spec refers to something unusable (e.g. an examplesFrom ConfigMap without
	// the key) or names what the operator refuses (an image outside --allowed-image-prefixes, a resource
	// quantity not above 0); on a StudentModel, Ready=False and Stalled=True with this reason, and nothing
	// is served.
	ReasonInvalidSpec ConditionReason = "InvalidSpec"

	// ReasonServing: every wanted replica of the student server is ready.
	ReasonServing ConditionReason = "Serving"
	// ReasonReplicasNotReady: some wanted replicas are not ready yet.
	ReasonReplicasNotReady ConditionReason = "ReplicasNotReady"
	// ReasonStopped: spec.stopped scaled the server to zero.
	ReasonStopped ConditionReason = "Stopped"
	// ReasonRunning: spec.stopped is false.
	ReasonRunning ConditionReason = "Running"
	// ReasonScaledToZero: spec.serving.replicas is 0: no server runs, on purpose.
	ReasonScaledToZero ConditionReason = "ScaledToZero"
	// ReasonProgressDeadlineExceeded: the server Deployment exceeded its progress deadline (its pods do
	// not become ready: a bad image, a crash loop, a missing volume).
	ReasonProgressDeadlineExceeded ConditionReason = "ProgressDeadlineExceeded"
	// ReasonReplicaFailure: the server Deployment cannot create its pods (the apiserver refused them: a
	// limit range, quota or Pod Security); the Deployment's message follows.
	ReasonReplicaFailure ConditionReason = "ReplicaFailure"
	// ReasonNotStalled: nothing blocks progress.
	ReasonNotStalled ConditionReason = "NotStalled"
	// ReasonReconcileError: the last pass failed with an error the operator retries (the message quotes
	// it); nothing the user wrote is known to be wrong.
	ReasonReconcileError ConditionReason = "ReconcileError"
	// ReasonStagePodConfigError: a stage pod cannot start because of its configuration (an image that
	// cannot be pulled, a missing Secret or key, an invalid image name); the kubelet's words follow.
	ReasonStagePodConfigError ConditionReason = "StagePodConfigError"
	// ReasonPodsWaiting: a stage's pods exist but wait to start (the kubelet's reason and message follow).
	ReasonPodsWaiting ConditionReason = "PodsWaiting"
	// ReasonQueued: the stage's Job waits, suspended, for Kueue to admit it (the job has Kueue's
	// queue-name label).
	ReasonQueued ConditionReason = "Queued"
)
