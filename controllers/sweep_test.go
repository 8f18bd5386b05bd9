package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Integration tests of sweeps (spec.experiments) against envtest: one training Job per point, at most
// maxParallel at once, the status table, the failure rule, the served point and the report stage.

// trainingJobNames are the job's training Jobs that exist, by name.
func trainingJobNames(t *testing.T, ns, djName string) []string {
	t.Helper()
	var jobs batchv1.JobList
	if err := k8sClient.List(context.Background(), &jobs, client.InNamespace(ns), client.MatchingLabels{LabelJob: djName, LabelStage: StageTraining}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range jobs.Items {
		names = append(names, j.Name)
	}
	slices.Sort(names)
	return names
}

// waitForTrainingJobs waits until exactly these training Jobs exist.
func waitForTrainingJobs(t *testing.T, ns, djName string, want ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("training Jobs %v", want), func() error {
		if got := trainingJobNames(t, ns, djName); !slices.Equal(got, want) {
			return fmt.Errorf("training Jobs %v", got)
		}
		return nil
	})
}

// pointJob is a sweep point's training Job, found by its labels.
func pointJob(t *testing.T, ns, djName string, index int) *batchv1.Job {
	t.Helper()
	var found *batchv1.Job
	eventually(t, fmt.Sprintf("training Job of point %d", index), func() error {
		var jobs batchv1.JobList
		if err := k8sClient.List(context.Background(), &jobs, client.InNamespace(ns),
			client.MatchingLabels{LabelJob: djName, LabelStage: StageTraining, LabelPoint: fmt.Sprint(index)}); err != nil {
			return err
		}
		if len(jobs.Items) != 1 {
			return fmt.Errorf("found %d jobs", len(jobs.Items))
		}
		found = &jobs.Items[0]
		return nil
	})
	return found
}

// finishPoint completes a point's training Job with a trainer summary scoring accuracy.
func finishPoint(t *testing.T, ns, djName string, index int, accuracy float64) {
	t.Helper()
	j := pointJob(t, ns, djName, index)
	msg := trainMsg(t, contract.TrainResult{Steps: 50, TrainLoss: 0.3, EvalAccuracy: accuracy, EvalExamples: 40, BestStep: 40, WallSeconds: 12.4,
		Evaluation: goldEvaluation(40, accuracy, 0.95, accuracy)})
	createPod(t, utiltesting.MakePod(j.Name+"-0", ns).StageOf(j, djName, StageTraining).Succeeded(msg).Obj())
	updateJobStatus(t, j, utiltesting.CompleteJob)
}

// failPoint fails a point's training Job; its pod says why.
func failPoint(t *testing.T, ns, djName string, index int, msg string) {
	t.Helper()
	j := pointJob(t, ns, djName, index)
	createPod(t, utiltesting.MakePod(j.Name+"-0", ns).StageOf(j, djName, StageTraining).Failed(1, msg).Obj())
	updateJobStatus(t, j, func(j *batchv1.Job) {
		utiltesting.FailJob(j, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	})
}

// startTwoPointSweep creates a sweep of two seeds, both training at once, annotates it and waits for its two
// training Jobs.
func startTwoPointSweep(t *testing.T, ns, name string) {
	t.Helper()
	createJob(t, utiltesting.MakeJob(name, ns).Experiments(v1alpha1.ExperimentsSpec{Seeds: []int32{0, 1}, MaxParallel: 2}).Obj())
	finishShards(t, ns, name, annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10}))
	waitForTrainingJobs(t, ns, name, name+"-train-0", name+"-train-1")
}

// rowStates are the rows' states in index order.
func rowStates(dj *v1alpha1.DistillationJob) string {
	var s []string
	for _, row := range dj.Status.Experiments {
		s = append(s, fmt.Sprintf("%d:%s", row.Index, row.State))
	}
	return strings.Join(s, " ")
}

func TestSweepTrainsOneJobPerPointAtMostMaxParallelAtOnce(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	dj := createJob(t, utiltesting.MakeJob("sweep", ns).LabelField("label").Experiments(v1alpha1.ExperimentsSpec{
		DataFractions: []string{"0.5", "1"},
		Modes:         []v1alpha1.TrainingMode{v1alpha1.TrainingModeStepByStep, v1alpha1.TrainingModeStandard},
		MaxParallel:   2,
	}).Obj())

	// The report ConfigMap exists from the start, empty and owned by the job, and the stage pods may
	// patch it.
	eventually(t, "the report ConfigMap and the stage Role", func() error {
		var cm corev1.ConfigMap
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sweep-report"}, &cm); err != nil {
			return err
		}
		if !metav1.IsControlledBy(&cm, dj) || len(cm.Data) != 0 {
			return fmt.Errorf("report ConfigMap owners %v data %v", cm.OwnerReferences, cm.Data)
		}
		var role rbacv1.Role
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sweep-stage"}, &role); err != nil {
			return err
		}
		if len(role.Rules) != 1 || !slices.Contains(role.Rules[0].ResourceNames, "sweep-report") || !slices.Equal(role.Rules[0].Verbs, []string{"get", "patch"}) {
			return fmt.Errorf("role rules %+v", role.Rules)
		}
		return nil
	})

	// One annotation for every point; then points 0 and 1 train, 2 and 3 wait for a slot.
	finishShards(t, ns, "sweep", annotateMsg(t, contract.AnnotateResult{Total: 100, OK: 90, DatasetHash: datasetHash}))
	waitForTrainingJobs(t, ns, "sweep", "sweep-train-0", "sweep-train-1")
	consistently(t, "no more than maxParallel training Jobs", shortWhile, func() error {
		if got := trainingJobNames(t, ns, "sweep"); len(got) != 2 {
			return fmt.Errorf("training Jobs %v", got)
		}
		return nil
	})
	eventually(t, "the status table", func() error {
		got := getJob(t, ns, "sweep")
		if rowStates(got) != "0:Running 1:Running 2:Pending 3:Pending" || got.Status.Progress != "points 0/4" || got.Status.Stage != v1alpha1.StageTraining {
			return fmt.Errorf("rows %s, progress %q, stage %s", rowStates(got), got.Status.Progress, got.Status.Stage)
		}
		return nil
	})
	got := getJob(t, ns, "sweep")
	wantSettings := []string{"0.5/StepByStep", "1/StepByStep", "0.5/Standard", "1/Standard"}
	for i, row := range got.Status.Experiments {
		if s := row.Fraction + "/" + string(row.Mode); s != wantSettings[i] || row.RationaleWeight != "1.0" || row.BaseModel != "google/t5-v1_1-small" {
			t.Errorf("row %d settings %s (weight %s, base %s), want %s", i, s, row.RationaleWeight, row.BaseModel, wantSettings[i])
		}
	}
	if c := findCondition(got, v1alpha1.ConditionTrained); c == nil || !strings.Contains(c.Message, "2 waiting for a slot") {
		t.Errorf("Trained condition = %+v, want the points waiting for a slot", c)
	}
	var cm corev1.ConfigMap
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sweep-config"}, &cm); err != nil {
		t.Fatal(err)
	}
	var point2 contract.TrainConfig
	decodeStrict(t, []byte(cm.Data["train-2.json"]), &point2)
	if point2.Data.Fraction != 0.5 || point2.Training.Mode != contract.ModeStandard || point2.Point == nil || point2.Point.Total != 4 {
		t.Errorf("train-2.json data %+v training mode %s point %+v", point2.Data, point2.Training.Mode, point2.Point)
	}

	// A failed point does not fail the sweep; the freed slots start the next points.
	finishPoint(t, ns, "sweep", 0, 0.8)
	failPoint(t, ns, "sweep", 1, "CUDA out of memory")
	waitForTrainingJobs(t, ns, "sweep", "sweep-train-0", "sweep-train-1", "sweep-train-2", "sweep-train-3")
	eventually(t, "the finished points' rows", func() error {
		got := getJob(t, ns, "sweep")
		if rowStates(got) != "0:Succeeded 1:Failed 2:Running 3:Running" || got.Status.Progress != "points 2/4" {
			return fmt.Errorf("rows %s, progress %q", rowStates(got), got.Status.Progress)
		}
		r0, r1 := got.Status.Experiments[0], got.Status.Experiments[1]
		if r0.Accuracy != "0.8000" || r0.Agreement != "0.8000" || r0.Steps != 50 || r0.BestStep != 40 || r0.WallSeconds != 12 || r0.Served {
			return fmt.Errorf("row 0 = %+v", r0)
		}
		if !strings.Contains(r1.Message, "training point 1") || !strings.Contains(r1.Message, "CUDA out of memory") {
			return fmt.Errorf("row 1 = %+v", r1)
		}
		if isTrue(got.Status.Conditions, v1alpha1.ConditionFailed) {
			return fmt.Errorf("one failed point failed the sweep")
		}
		return nil
	})

	// Every point ended: the best is served, and the report Job runs with the points that succeeded.
	finishPoint(t, ns, "sweep", 2, 0.9)
	finishPoint(t, ns, "sweep", 3, 0.85)
	got = waitForCondition(t, ns, "sweep", v1alpha1.ConditionTrained, metav1.ConditionTrue, v1alpha1.ReasonTrainingSucceeded)
	if ptr.Deref(got.Status.ServedExperiment, -1) != 2 || !got.Status.Experiments[2].Served || got.Status.Experiments[3].Served ||
		got.Status.Evaluation == nil || got.Status.Evaluation.Accuracy != "0.9000" || got.Status.Evaluation.TeacherAccuracy != "0.9500" {
		t.Errorf("served %v, rows %+v, evaluation %+v", got.Status.ServedExperiment, got.Status.Experiments, got.Status.Evaluation)
	}
	if msg := findCondition(got, v1alpha1.ConditionTrained).Message; !strings.Contains(msg, "3 of 4 points trained (1 failed); serving point 2") {
		t.Errorf("Trained message %q", msg)
	}
	rj := waitForStageJob(t, ns, "sweep", StageReport)
	waitForStage(t, ns, "sweep", v1alpha1.StageReporting)
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sweep-config"}, &cm); err != nil {
		t.Fatal(err)
	}
	var rc contract.ReportConfig
	decodeStrict(t, []byte(cm.Data[contract.ReportConfigKey]), &rc)
	var indexes []int
	for _, p := range rc.Points {
		indexes = append(indexes, p.Index)
	}
	if fmt.Sprint(indexes) != "[0 2 3]" || rc.ServedIndex != 2 || rc.ReportConfigMap != "sweep-report" {
		t.Errorf("report.json = %+v", rc)
	}
	if _, err := getModel(ctx, ns, "sweep"); err == nil {
		t.Errorf("the StudentModel exists before the report ran")
	}

	// The report done, the served point's model is the StudentModel.
	createPod(t, utiltesting.MakePod(rj.Name+"-0", ns).StageOf(rj, "sweep", StageReport).Succeeded("").Obj())
	updateJobStatus(t, rj, utiltesting.CompleteJob)
	got = waitForStage(t, ns, "sweep", v1alpha1.StageSucceeded)
	if c := findCondition(got, v1alpha1.ConditionReported); c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(v1alpha1.ReasonReportSucceeded) {
		t.Errorf("Reported condition = %+v", c)
	}
	sm, err := getModel(ctx, ns, "sweep")
	if err != nil {
		t.Fatal(err)
	}
	if want := "jobs/sweep-" + string(dj.UID) + "/points/2/model"; sm.Spec.Artifact.Path != want || sm.Spec.Provenance.Mode != v1alpha1.TrainingModeStandard {
		t.Errorf("StudentModel artifact %s mode %s, want %s of point 2 (Standard)", sm.Spec.Artifact.Path, sm.Spec.Provenance.Mode, want)
	}
	if cells := tableRow(t, "studentmodels", ns, "sweep"); cells["Accuracy"] != "0.9000" || cells["Teacher"] != "0.9500" {
		t.Errorf("kubectl get sm columns %v, want the served point's accuracy beside the teacher's", cells)
	}
	if cells := tableRow(t, "distillationjobs", ns, "sweep"); cells["Accuracy"] != "0.9000" || cells["Teacher"] != "0.9500" || cells["Progress"] != "points 4/4" {
		t.Errorf("kubectl get dj columns %v", cells)
	}
}

func TestSweepFailsOnlyWhenEveryPointFails(t *testing.T) {
	ns := newNamespace(t)
	startTwoPointSweep(t, ns, "doomed")
	failPoint(t, ns, "doomed", 0, `{"stage":"train","error":"the base model has no tokenizer","reason":"InvalidInput"}`)
	eventually(t, "point 0 failed, the sweep still running", func() error {
		got := getJob(t, ns, "doomed")
		if rowStates(got) != "0:Failed 1:Running" || got.Status.Stage != v1alpha1.StageTraining {
			return fmt.Errorf("rows %s stage %s", rowStates(got), got.Status.Stage)
		}
		return nil
	})
	failPoint(t, ns, "doomed", 1, "Killed")
	got := waitForCondition(t, ns, "doomed", v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonTrainingFailed)
	msg := findCondition(got, v1alpha1.ConditionFailed).Message
	for _, want := range []string{"every one of the 2 points failed", "training point 0", "the base model has no tokenizer", "training point 1", "Killed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Failed message %q does not say %q", msg, want)
		}
	}
	if rowStates(got) != "0:Failed 1:Failed" || got.Status.ServedExperiment != nil {
		t.Errorf("rows %s, served %v", rowStates(got), got.Status.ServedExperiment)
	}
	if n := countStageJobs(t, ns, "doomed", StageReport); n != 0 {
		t.Errorf("a failed sweep ran %d report Jobs", n)
	}
}

func TestSweepServesTheNamedPointAndSucceedsWithoutItsReport(t *testing.T) {
	ns := newNamespace(t)
	ctx := contextFor(t)
	dj := createJob(t, utiltesting.MakeJob("named", ns).LabelField("label").Experiments(v1alpha1.ExperimentsSpec{
		RationaleWeights: []string{"0.5", "2"}, ServePoint: ptr.To[int32](0),
	}).Obj())
	finishShards(t, ns, "named", annotateMsg(t, contract.AnnotateResult{Total: 10, OK: 10}))
	// maxParallel 1: one point at a time.
	waitForTrainingJobs(t, ns, "named", "named-train-0")
	consistently(t, "one training Job at a time", shortWhile, func() error {
		if got := trainingJobNames(t, ns, "named"); len(got) != 1 {
			return fmt.Errorf("training Jobs %v", got)
		}
		return nil
	})
	finishPoint(t, ns, "named", 0, 0.5)
	waitForTrainingJobs(t, ns, "named", "named-train-0", "named-train-1")
	finishPoint(t, ns, "named", 1, 0.9)

	got := waitForCondition(t, ns, "named", v1alpha1.ConditionTrained, metav1.ConditionTrue, v1alpha1.ReasonTrainingSucceeded)
	if ptr.Deref(got.Status.ServedExperiment, -1) != 0 || got.Status.Evaluation.Accuracy != "0.5000" {
		t.Errorf("served %v with evaluation %+v, want the named point 0", got.Status.ServedExperiment, got.Status.Evaluation)
	}
	rj := waitForStageJob(t, ns, "named", StageReport)
	if res := waitForKstatus(t, "DistillationJob", ns, "named", kstatus.InProgressStatus); !strings.Contains(res.Message, "report") {
		t.Errorf("kstatus message %q while reporting should say the report runs", res.Message)
	}
	updateJobStatus(t, rj, func(j *batchv1.Job) {
		utiltesting.FailJob(j, "DeadlineExceeded", "Job was active longer than specified deadline")
	})
	got = waitForStage(t, ns, "named", v1alpha1.StageSucceeded)
	waitForKstatus(t, "DistillationJob", ns, "named", kstatus.CurrentStatus)
	c := findCondition(got, v1alpha1.ConditionReported)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != string(v1alpha1.ReasonReportFailed) || !strings.Contains(c.Message, "DeadlineExceeded") {
		t.Errorf("Reported condition = %+v, want False/ReportFailed quoting the Job", c)
	}
	if !isTrue(got.Status.Conditions, v1alpha1.ConditionReady) {
		t.Errorf("a failed report made the job not Ready: %+v", got.Status.Conditions)
	}
	sm, err := getModel(ctx, ns, "named")
	if err != nil {
		t.Fatal(err)
	}
	if want := "jobs/named-" + string(dj.UID) + "/points/0/model"; sm.Spec.Artifact.Path != want || sm.Spec.Metrics.Accuracy != "0.5000" {
		t.Errorf("StudentModel artifact %s accuracy %s, want point 0's", sm.Spec.Artifact.Path, sm.Spec.Metrics.Accuracy)
	}
	var events corev1.EventList
	if err := k8sClient.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, e := range events.Items {
		warned = warned || (e.Reason == string(v1alpha1.ReasonReportFailed) && e.Type == corev1.EventTypeWarning)
	}
	if !warned {
		b, _ := json.Marshal(events.Items)
		t.Errorf("no Warning event ReportFailed: %s", b)
	}
}

func TestASweepPointWhosePodCannotStartFailsAlone(t *testing.T) {
	ns := newNamespace(t)
	startTwoPointSweep(t, ns, "stuck")
	j0, j1 := pointJob(t, ns, "stuck", 0), pointJob(t, ns, "stuck", 1)
	createPod(t, utiltesting.MakePod(j0.Name+"-run", ns).StageOf(j0, "stuck", StageTraining).Running().Obj())
	const kubelet = `Back-off pulling image "registry.example/student:typo": not found`
	createPod(t, utiltesting.MakePod(j1.Name+"-x", ns).StageOf(j1, "stuck", StageTraining).Waiting("ImagePullBackOff", kubelet).Obj())

	// Past the grace period (2s in this suite) the operator stops that point's Job, and only it.
	eventually(t, "point 1's Job stopped, the sweep going on", func() error {
		j := pointJob(t, ns, "stuck", 1)
		if d := j.Spec.ActiveDeadlineSeconds; d == nil || *d != 1 || !strings.Contains(j.Annotations[AnnotationStoppedBecause], kubelet) {
			return fmt.Errorf("deadline %v, annotations %v", j.Spec.ActiveDeadlineSeconds, j.Annotations)
		}
		if d := pointJob(t, ns, "stuck", 0).Spec.ActiveDeadlineSeconds; d != nil {
			return fmt.Errorf("point 0's Job got a deadline %d too", *d)
		}
		return nil
	})
	if got := getJob(t, ns, "stuck"); isTrue(got.Status.Conditions, v1alpha1.ConditionFailed) || got.Status.Stage != v1alpha1.StageTraining {
		t.Fatalf("the sweep failed or left training (stage %s): %+v", got.Status.Stage, got.Status.Conditions)
	}
	// The Job controller fails it at its deadline (envtest has none: the test does).
	updateJobStatus(t, pointJob(t, ns, "stuck", 1), func(j *batchv1.Job) {
		utiltesting.FailJob(j, "DeadlineExceeded", "Job was active longer than specified deadline")
	})
	eventually(t, "point 1's row failed with the kubelet's words", func() error {
		got := getJob(t, ns, "stuck")
		if rowStates(got) != "0:Running 1:Failed" || !strings.Contains(got.Status.Experiments[1].Message, "training point 1 cannot start") ||
			!strings.Contains(got.Status.Experiments[1].Message, kubelet) {
			return fmt.Errorf("rows %s: %+v", rowStates(got), got.Status.Experiments)
		}
		return nil
	})
	finishPoint(t, ns, "stuck", 0, 0.9)
	got := waitForCondition(t, ns, "stuck", v1alpha1.ConditionTrained, metav1.ConditionTrue, v1alpha1.ReasonTrainingSucceeded)
	if got.Status.ServedExperiment == nil || *got.Status.ServedExperiment != 0 {
		t.Errorf("served %v, want point 0", got.Status.ServedExperiment)
	}
}

func TestASweepWithARunningPointIsNotUnschedulableAsAWhole(t *testing.T) {
	ns := newNamespace(t)
	startTwoPointSweep(t, ns, "roomy")
	j0, j1 := pointJob(t, ns, "roomy", 0), pointJob(t, ns, "roomy", 1)
	createPod(t, utiltesting.MakePod(j1.Name+"-x", ns).StageOf(j1, "roomy", StageTraining).Unschedulable("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.").Obj())
	waitForCondition(t, ns, "roomy", v1alpha1.ConditionTrained, metav1.ConditionFalse, v1alpha1.ReasonUnschedulable)
	// once a point runs, the sweep trains: the waiting point is capacity it may still get
	createPod(t, utiltesting.MakePod(j0.Name+"-run", ns).StageOf(j0, "roomy", StageTraining).Running().Obj())
	waitForCondition(t, ns, "roomy", v1alpha1.ConditionTrained, metav1.ConditionFalse, v1alpha1.ReasonTraining)
}

func TestASweepShowsEachRunningPointsStep(t *testing.T) {
	ns := newNamespace(t)
	startTwoPointSweep(t, ns, "live")
	patchProgress(t, ns, "live", contract.PointProgressKey(0, 0), contract.TrainProgress{Step: 30, TotalSteps: 100, Loss: 0.5})
	patchProgress(t, ns, "live", contract.PointProgressKey(1, 0), contract.TrainProgress{Step: 7, TotalSteps: 50, Loss: 0.9})
	eventually(t, "each row with its own point's step", func() error {
		rows := getJob(t, ns, "live").Status.Experiments
		if len(rows) != 2 || rows[0].Steps != 30 || rows[0].TotalSteps != 100 || rows[1].Steps != 7 || rows[1].TotalSteps != 50 {
			return fmt.Errorf("rows %+v", rows)
		}
		return nil
	})
	finishPoint(t, ns, "live", 0, 0.8) // a finished point shows its trainer's summary, not its last report
	eventually(t, "point 0's row from its summary", func() error {
		if row := getJob(t, ns, "live").Status.Experiments[0]; row.State != v1alpha1.ExperimentSucceeded || row.Steps != 50 {
			return fmt.Errorf("row %+v", row)
		}
		return nil
	})
}
