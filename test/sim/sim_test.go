//go:build sim

package sim

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
)

// Two workers of eight GPUs each land on two GPU nodes with torchrun's rendezvous variables, find each
// other through the headless Service, and the job goes on to a served StudentModel.
func TestMultiWorkerTrainingOnGPUNodes(t *testing.T) {
	ns := namespace(t)
	name := "hold-multiworker"
	create(t, job(name, ns).Workers(2).GPUs(8).Obj())

	for _, p := range waitForRunningPods(t, ns, name, controllers.StageAnnotation, 1) {
		setOutcome(t, &p, "succeed", "", "")
	}
	pods := waitForRunningPods(t, ns, name, controllers.StageTraining, 2)
	waitForStage(t, ns, name, v1alpha1.StageTraining)

	nodes := map[string]bool{}
	ranks := map[string]bool{}
	for _, p := range pods {
		var node corev1.Node
		if err := env.Client.Get(context.Background(), types.NamespacedName{Name: p.Spec.NodeName}, &node); err != nil {
			t.Fatalf("node of %s: %v", p.Name, err)
		}
		if gpus := node.Status.Allocatable["nvidia.com/gpu"]; gpus.Value() < 8 {
			t.Errorf("pod %s landed on %s with %s GPUs; want a GPU node", p.Name, node.Name, gpus.String())
		}
		nodes[p.Spec.NodeName] = true
		c := p.Spec.Containers[0]
		if q := c.Resources.Limits["nvidia.com/gpu"]; q.Value() != 8 {
			t.Errorf("pod %s limits nvidia.com/gpu=%s; want 8", p.Name, q.String())
		}
		want := map[string]string{"PET_NNODES": "2", "PET_NPROC_PER_NODE": "8", "PET_MASTER_PORT": "29500",
			"PET_MASTER_ADDR": name + "-train-0." + name + "-train"}
		for k, v := range want {
			if e, ok := envValue(c, k); !ok || e.Value != v {
				t.Errorf("pod %s: %s=%q; want %q", p.Name, k, e.Value, v)
			}
		}
		if e, ok := envValue(c, "PET_NODE_RANK"); !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil ||
			!strings.Contains(e.ValueFrom.FieldRef.FieldPath, batchv1.JobCompletionIndexAnnotation) {
			t.Errorf("pod %s: PET_NODE_RANK %+v; want the completion index", p.Name, e)
		}
		if c.Command[0] != "torchrun" {
			t.Errorf("pod %s runs %v; want torchrun", p.Name, c.Command)
		}
		if p.Spec.Subdomain != name+"-train" {
			t.Errorf("pod %s subdomain %q; want %s-train", p.Name, p.Spec.Subdomain, name)
		}
		ranks[p.Annotations[batchv1.JobCompletionIndexAnnotation]] = true
	}
	if len(nodes) != 2 {
		t.Errorf("workers on nodes %v; want two distinct GPU nodes (8 GPUs each)", nodes)
	}
	if !ranks["0"] || !ranks["1"] {
		t.Errorf("completion indexes %v; want 0 and 1", ranks)
	}
	var svc corev1.Service
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name + "-train"}, &svc); err != nil {
		t.Fatalf("headless rendezvous Service: %v", err)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("rendezvous Service clusterIP %q; want None", svc.Spec.ClusterIP)
	}

	for _, p := range pods {
		setOutcome(t, &p, "succeed", "", "")
	}
	dj := waitForStage(t, ns, name, v1alpha1.StageSucceeded)
	// The job has no gold labels (no labelField): the trainer's score is agreement with the teacher, never
	// called accuracy.
	if ev := dj.Status.Evaluation; ev == nil || ev.Metric != v1alpha1.MetricAgreement || ev.Agreement != "0.8750" || ev.Accuracy != "" {
		t.Errorf("evaluation %+v; want agreement 0.8750 from the trainer's summary, and no accuracy", dj.Status.Evaluation)
	}
	if dj.Status.Annotation == nil || dj.Status.Annotation.OK != 90 {
		t.Errorf("annotation %+v; want ok=90 from the annotator's summary", dj.Status.Annotation)
	}
	eventually(t, waitTimeout, "StudentModel Ready (its Deployment's pod Ready on a simulated node)", func() error {
		var sm v1alpha1.StudentModel
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &sm); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(sm.Status.Conditions, string(v1alpha1.ConditionReady)) {
			return fmt.Errorf("conditions %+v", sm.Status.Conditions)
		}
		return nil
	})
}

// GPU requests beyond any node's capacity leave the job waiting with the scheduler's reason in its
// condition; likewise for annotation pods that ask for more CPU than a node has.
func TestUnschedulableSurfacesSchedulerReason(t *testing.T) {
	ns := namespace(t)
	t.Run("training", func(t *testing.T) {
		create(t, job("gpus", ns).GPUs(16).Obj())
		dj := waitForCondition(t, ns, "gpus", v1alpha1.ConditionTrained, metav1.ConditionFalse, v1alpha1.ReasonUnschedulable)
		c := meta.FindStatusCondition(dj.Status.Conditions, string(v1alpha1.ConditionTrained))
		if !strings.Contains(c.Message, "Insufficient nvidia.com/gpu") {
			t.Errorf("Trained message %q; want the scheduler's Insufficient nvidia.com/gpu", c.Message)
		}
		if dj.Status.Stage != v1alpha1.StageTraining || finished(dj) {
			t.Errorf("stage %s, finished %v; want Training and waiting", dj.Status.Stage, finished(dj))
		}
	})
	t.Run("annotation", func(t *testing.T) {
		dj := job("cpus", ns).Obj()
		dj.Spec.Annotation.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000")}}
		create(t, dj)
		got := waitForCondition(t, ns, "cpus", v1alpha1.ConditionAnnotated, metav1.ConditionFalse, v1alpha1.ReasonUnschedulable)
		c := meta.FindStatusCondition(got.Status.Conditions, string(v1alpha1.ConditionAnnotated))
		if !strings.Contains(c.Message, "Insufficient cpu") {
			t.Errorf("Annotated message %q; want the scheduler's Insufficient cpu", c.Message)
		}
		if got.Status.Stage != v1alpha1.StageAnnotating {
			t.Errorf("stage %s; want Annotating", got.Status.Stage)
		}
	})
}

func finished(dj *v1alpha1.DistillationJob) bool {
	return meta.IsStatusConditionTrue(dj.Status.Conditions, string(v1alpha1.ConditionComplete)) ||
		meta.IsStatusConditionTrue(dj.Status.Conditions, string(v1alpha1.ConditionFailed))
}

// A shard that fails with the permanent exit code fails the job at once with the shard's own words and
// reason (InvalidInput); no training starts.
func TestFailingShardFailsJob(t *testing.T) {
	ns := namespace(t)
	name := "hold-failshard"
	create(t, job(name, ns).Shards(3).Obj())
	pods := waitForRunningPods(t, ns, name, controllers.StageAnnotation, 3)
	for _, p := range pods {
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "2" {
			setOutcome(t, &p, "fail", "3", `{"stage":"annotate","shard":2,"total":10,"error":"dataset line 7: no field \"input\"","reason":"InvalidInput"}`)
		} else {
			setOutcome(t, &p, "succeed", "", "")
		}
	}
	dj := waitForCondition(t, ns, name, v1alpha1.ConditionFailed, metav1.ConditionTrue, v1alpha1.ReasonInvalidInput)
	c := meta.FindStatusCondition(dj.Status.Conditions, string(v1alpha1.ConditionFailed))
	for _, want := range []string{"annotation shard 2 failed", `dataset line 7: no field "input"`} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("Failed message %q; want it to contain %q", c.Message, want)
		}
	}
	if dj.Status.Stage != v1alpha1.StageFailed {
		t.Errorf("stage %s; want Failed", dj.Status.Stage)
	}
	time.Sleep(2 * time.Second)
	if tj, err := stageJob(ns, name, controllers.StageTraining); err != nil || tj != nil {
		t.Errorf("training Job %v (err %v); want none after a failed annotation", tj, err)
	}
}

// A GPU node deleted under a running training pod: the pod garbage collector fails the orphaned pod with
// a DisruptionTarget condition, the Job's pod failure policy ignores it (no retry counted) and a new
// pod runs on another node; the job goes on to succeed.
func TestNodeDeletedUnderTrainingPod(t *testing.T) {
	ns := namespace(t)
	name := "hold-nodeloss"
	create(t, job(name, ns).GPUs(8).Obj())
	for _, p := range waitForRunningPods(t, ns, name, controllers.StageAnnotation, 1) {
		setOutcome(t, &p, "succeed", "", "")
	}
	first := waitForRunningPods(t, ns, name, controllers.StageTraining, 1)[0]
	var node corev1.Node
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: first.Spec.NodeName}, &node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // give the node back to the other tests
		n := node.DeepCopy()
		n.ResourceVersion, n.UID, n.Status.Conditions = "", "", nil
		_ = env.Client.Create(context.Background(), n)
		_ = env.Client.Status().Update(context.Background(), n)
	})
	t0 := time.Now()
	if err := env.Client.Delete(context.Background(), &node); err != nil {
		t.Fatalf("deleting node %s: %v", node.Name, err)
	}
	// PodGC waits 40 s for a deleted node to come back before it deletes the node's pods.
	var second corev1.Pod
	eventually(t, 180*time.Second, "a replacement training pod on another node", func() error {
		pods, err := stagePods(ns, name, controllers.StageTraining)
		if err != nil {
			return err
		}
		for _, p := range pods {
			if p.UID != first.UID && p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != node.Name {
				second = p
				return nil
			}
		}
		return fmt.Errorf("%d training pods, none replaced yet", len(pods))
	})
	t.Logf("replacement pod %s on %s %s after the node was deleted", second.Name, second.Spec.NodeName, time.Since(t0).Round(time.Second))
	dj, err := getJob(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if finished(dj) || dj.Status.Stage != v1alpha1.StageTraining {
		t.Errorf("job %s after the node loss: stage %s; want still Training", name, dj.Status.Stage)
	}
	tj, err := stageJob(ns, name, controllers.StageTraining)
	if err != nil || tj == nil {
		t.Fatalf("training Job: %v", err)
	}
	if tj.Status.Failed != 0 {
		t.Errorf("training Job counts %d failed pods; want 0 (a node loss is not the trainer's failure)", tj.Status.Failed)
	}
	setOutcome(t, &second, "succeed", "", "")
	waitForStage(t, ns, name, v1alpha1.StageSucceeded)
}

// 100 jobs suspended at once stop their stage pods and say so; resumed at once, they run again.
func TestSuspendResume100Jobs(t *testing.T) {
	ns := namespace(t)
	const n = 100
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("hold-suspend-%03d", i)
	}
	parallel(t, names, func(name string) error { return env.Client.Create(context.Background(), job(name, ns).Obj()) })
	countRunning := func() (int, error) {
		var pods corev1.PodList
		if err := env.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{controllers.LabelStage: controllers.StageAnnotation}); err != nil {
			return 0, err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		return running, nil
	}
	eventually(t, 3*waitTimeout, fmt.Sprintf("%d running annotation pods", n), func() error {
		if r, err := countRunning(); err != nil || r != n {
			return fmt.Errorf("%d running (err %v)", r, err)
		}
		return nil
	})

	setSuspend := func(s bool) {
		parallel(t, names, func(name string) error {
			dj := &v1alpha1.DistillationJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			return env.Client.Patch(context.Background(), dj, client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"suspend":%t}}`, s))))
		})
	}
	t0 := time.Now()
	setSuspend(true)
	eventually(t, 3*waitTimeout, "every job Suspended, its annotation Job suspended and its pods gone", func() error {
		var djs v1alpha1.DistillationJobList
		if err := env.Client.List(context.Background(), &djs, client.InNamespace(ns)); err != nil {
			return err
		}
		suspended := 0
		for _, dj := range djs.Items {
			if meta.IsStatusConditionTrue(dj.Status.Conditions, string(v1alpha1.ConditionSuspended)) && dj.Status.Stage == v1alpha1.StageSuspended {
				suspended++
			}
		}
		var jobs batchv1.JobList
		if err := env.Client.List(context.Background(), &jobs, client.InNamespace(ns)); err != nil {
			return err
		}
		jobsSuspended := 0
		for _, j := range jobs.Items {
			if ptr.Deref(j.Spec.Suspend, false) {
				jobsSuspended++
			}
		}
		r, err := countRunning()
		if err != nil || suspended != n || jobsSuspended != n || r != 0 {
			return fmt.Errorf("%d jobs Suspended, %d stage Jobs suspended, %d pods running", suspended, jobsSuspended, r)
		}
		return nil
	})
	t.Logf("suspended %d jobs in %s", n, time.Since(t0).Round(100*time.Millisecond))

	t0 = time.Now()
	setSuspend(false)
	eventually(t, 3*waitTimeout, "every job resumed with its pod running again", func() error {
		var djs v1alpha1.DistillationJobList
		if err := env.Client.List(context.Background(), &djs, client.InNamespace(ns)); err != nil {
			return err
		}
		resumed := 0
		for _, dj := range djs.Items {
			c := meta.FindStatusCondition(dj.Status.Conditions, string(v1alpha1.ConditionSuspended))
			if c != nil && c.Status == metav1.ConditionFalse && c.Reason == string(v1alpha1.ReasonResumed) && dj.Status.Stage == v1alpha1.StageAnnotating {
				resumed++
			}
		}
		r, err := countRunning()
		if err != nil || resumed != n || r != n {
			return fmt.Errorf("%d jobs resumed, %d pods running", resumed, r)
		}
		return nil
	})
	t.Logf("resumed %d jobs in %s", n, time.Since(t0).Round(100*time.Millisecond))
}

// parallel runs f for every name, 16 at a time, failing the test at the first error.
func parallel(t *testing.T, names []string, f func(string) error) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(names))
	for _, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(name); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// A finished job past its TTL is deleted with its stage children; its StudentModel and the model's
// serving Deployment stay.
func TestTTLDeletesFinishedJobKeepsModel(t *testing.T) {
	ns := namespace(t)
	name := "ttl"
	create(t, job(name, ns).TTL(3).Obj())
	waitForStage(t, ns, name, v1alpha1.StageSucceeded)
	eventually(t, waitTimeout, "the job deleted by its TTL", func() error {
		if _, err := getJob(ns, name); err == nil {
			return fmt.Errorf("job %s still exists", name)
		} else if client.IgnoreNotFound(err) != nil {
			return err
		}
		return nil
	})
	waitForNoChildren(t, ns, name)
	assertModelServed(t, ns, name)
}

// Deleting a job mid-stage removes every child it owns (garbage collected through owner references),
// and leaves the StudentModel of an earlier job alone.
func TestDeleteMidStageCleansUpChildren(t *testing.T) {
	ns := namespace(t)
	create(t, job("earlier", ns).Obj())
	waitForStage(t, ns, "earlier", v1alpha1.StageSucceeded)

	name := "hold-midstage"
	create(t, job(name, ns).Workers(2).GPUs(1).Obj())
	for _, p := range waitForRunningPods(t, ns, name, controllers.StageAnnotation, 1) {
		setOutcome(t, &p, "succeed", "", "")
	}
	waitForRunningPods(t, ns, name, controllers.StageTraining, 2)
	dj, err := getJob(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(context.Background(), dj); err != nil {
		t.Fatalf("deleting %s: %v", name, err)
	}
	waitForNoChildren(t, ns, name)
	var models v1alpha1.StudentModelList
	if err := env.Client.List(context.Background(), &models, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(models.Items) != 1 || models.Items[0].Name != "earlier" {
		t.Errorf("StudentModels %d; want only the earlier job's", len(models.Items))
	}
	assertModelServed(t, ns, "earlier")
}

// waitForNoChildren waits until nothing labelled as the job's child is left (the pods included).
func waitForNoChildren(t *testing.T, ns, djName string) {
	t.Helper()
	lists := []client.ObjectList{&batchv1.JobList{}, &corev1.PodList{}, &corev1.ConfigMapList{}, &corev1.ServiceAccountList{},
		&corev1.ServiceList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{}, &appsv1.DeploymentList{}}
	eventually(t, waitTimeout, "every child of "+djName+" garbage collected", func() error {
		var left []string
		for _, l := range lists {
			if err := env.Client.List(context.Background(), l, client.InNamespace(ns), client.MatchingLabels{controllers.LabelJob: djName}); err != nil {
				return err
			}
			items, _ := meta.ExtractList(l)
			for _, it := range items {
				o := it.(client.Object)
				left = append(left, fmt.Sprintf("%T %s", o, o.GetName()))
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
}

// assertModelServed checks that the StudentModel exists and is Ready with its Deployment.
func assertModelServed(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, waitTimeout, "StudentModel "+name+" Ready", func() error {
		var sm v1alpha1.StudentModel
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &sm); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(sm.Status.Conditions, string(v1alpha1.ConditionReady)) {
			return fmt.Errorf("conditions %+v", sm.Status.Conditions)
		}
		var deploys appsv1.DeploymentList
		if err := env.Client.List(context.Background(), &deploys, client.InNamespace(ns), client.MatchingLabels{controllers.LabelModel: name}); err != nil {
			return err
		}
		if len(deploys.Items) != 1 || deploys.Items[0].Status.ReadyReplicas < 1 {
			return fmt.Errorf("%d deployments for %s", len(deploys.Items), name)
		}
		return nil
	})
}
