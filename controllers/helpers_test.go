package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

// Polling bounds of the envtest tests: long enough for a loaded CI machine, short enough to fail fast.
const (
	waitTimeout  = 20 * time.Second
	pollInterval = 50 * time.Millisecond
	// shortWhile is how long a state is checked to hold (no flapping).
	shortWhile = 500 * time.Millisecond
)

// waiter waits through the test client with the envtest bounds.
func waiter() utiltesting.Waiter {
	return utiltesting.Waiter{Client: k8sClient, Timeout: waitTimeout, Interval: pollInterval}
}

// eventually polls f until it returns nil, failing the test with f's last error after waitTimeout.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	utiltesting.Eventually(t, waitTimeout, pollInterval, what, f)
}

// consistently checks f for the whole of d and fails the test at its first error.
func consistently(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	utiltesting.Consistently(t, d, pollInterval, what, f)
}

// createJob creates dj and returns it as stored.
func createJob(t *testing.T, dj *v1alpha1.DistillationJob) *v1alpha1.DistillationJob {
	t.Helper()
	if err := k8sClient.Create(context.Background(), dj); err != nil {
		t.Fatalf("creating DistillationJob %s: %v", dj.Name, err)
	}
	return dj
}

// getJob reads the job's current state.
func getJob(t *testing.T, ns, name string) *v1alpha1.DistillationJob {
	t.Helper()
	dj, err := waiter().Job(ns, name)
	if err != nil {
		t.Fatalf("getting DistillationJob %s: %v", name, err)
	}
	return dj
}

// waitForCondition waits until the job's condition has status and reason, and returns the job.
func waitForCondition(t *testing.T, ns, name string, ct v1alpha1.ConditionType, status metav1.ConditionStatus, reason v1alpha1.ConditionReason) *v1alpha1.DistillationJob {
	t.Helper()
	return waiter().Condition(t, ns, name, ct, status, reason)
}

// jobWatch sees every version of one job from the moment it starts, so that a condition the next pass
// replaces (polling may miss it) is still seen.
type jobWatch struct{ w watch.Interface }

// watchJob starts watching the job; the watch ends with the test.
func watchJob(t *testing.T, ns, name string) jobWatch {
	t.Helper()
	c, err := client.NewWithWatch(restConfig, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(context.Background(), &v1alpha1.DistillationJobList{}, client.InNamespace(ns),
		client.MatchingFields{"metadata.name": name})
	if err != nil {
		t.Fatalf("watching DistillationJob %s: %v", name, err)
	}
	t.Cleanup(w.Stop)
	return jobWatch{w}
}

// condition waits for a version of the job whose condition has status and reason, and returns it.
func (jw jobWatch) condition(t *testing.T, ct v1alpha1.ConditionType, status metav1.ConditionStatus, reason v1alpha1.ConditionReason) metav1.Condition {
	t.Helper()
	timeout := time.After(waitTimeout)
	var seen []string
	for {
		select {
		case ev, ok := <-jw.w.ResultChan():
			if !ok {
				t.Fatalf("the watch ended before condition %s was %s/%s; seen %v", ct, status, reason, seen)
			}
			dj, isJob := ev.Object.(*v1alpha1.DistillationJob)
			if !isJob {
				continue
			}
			if c := findCondition(dj, ct); c != nil {
				if c.Status == status && c.Reason == string(reason) {
					return *c
				}
				seen = append(seen, string(c.Status)+"/"+c.Reason)
			}
		case <-timeout:
			t.Fatalf("condition %s never was %s/%s within %s; seen %v", ct, status, reason, waitTimeout, seen)
		}
	}
}

// waitForStage waits until status.stage is want.
func waitForStage(t *testing.T, ns, name string, want v1alpha1.Stage) *v1alpha1.DistillationJob {
	t.Helper()
	return waiter().Stage(t, ns, name, want)
}

// waitForStageJob waits for the job's stage Job (found by its labels, as the operator finds it).
func waitForStageJob(t *testing.T, ns, djName, stage string) *batchv1.Job {
	t.Helper()
	var found *batchv1.Job
	eventually(t, fmt.Sprintf("%s Job of %s", stage, djName), func() error {
		var jobs batchv1.JobList
		if err := k8sClient.List(context.Background(), &jobs, client.InNamespace(ns),
			client.MatchingLabels{LabelJob: djName, LabelStage: stage}); err != nil {
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

// updateJobStatus writes a stage Job's status the way the Job controller would.
func updateJobStatus(t *testing.T, j *batchv1.Job, mutate func(*batchv1.Job)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur batchv1.Job
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(j), &cur); err != nil {
			return err
		}
		mutate(&cur)
		return k8sClient.Status().Update(context.Background(), &cur)
	})
	if err != nil {
		t.Fatalf("updating status of Job %s: %v", j.Name, err)
	}
}

// createPod creates a stage pod and then writes its status, as the kubelet would.
func createPod(t *testing.T, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	status := p.Status
	if err := k8sClient.Create(context.Background(), p); err != nil {
		t.Fatalf("creating pod %s: %v", p.Name, err)
	}
	p.Status = status
	if err := k8sClient.Status().Update(context.Background(), p); err != nil {
		t.Fatalf("writing status of pod %s: %v", p.Name, err)
	}
	return p
}

// finishShards creates one succeeded pod per annotation shard with the given termination messages and
// completes the annotation Job.
func finishShards(t *testing.T, ns, djName string, messages ...string) *batchv1.Job {
	t.Helper()
	return finishShardsOf(t, ns, djName, "", messages...)
}

// finishShardsOf is finishShards for a later annotation Job of the same name (run again under a raised
// budget): its pods' names end in suffix, since envtest has no garbage collector to delete the first
// Job's pods.
func finishShardsOf(t *testing.T, ns, djName, suffix string, messages ...string) *batchv1.Job {
	t.Helper()
	aj := waitForStageJob(t, ns, djName, StageAnnotation)
	for i, msg := range messages {
		createPod(t, utiltesting.MakePod(fmt.Sprintf("%s-%d%s", aj.Name, i, suffix), ns).
			StageOf(aj, djName, StageAnnotation).Index(i).Succeeded(msg).Obj())
	}
	updateJobStatus(t, aj, utiltesting.CompleteJob)
	return aj
}

// finishTraining creates the succeeded trainer pod with the message and completes the training Job.
func finishTraining(t *testing.T, ns, djName, msg string) *batchv1.Job {
	t.Helper()
	tj := waitForStageJob(t, ns, djName, StageTraining)
	createPod(t, utiltesting.MakePod(tj.Name+"-0", ns).StageOf(tj, djName, StageTraining).Index(0).Succeeded(msg).Obj())
	updateJobStatus(t, tj, utiltesting.CompleteJob)
	return tj
}

// getModel reads a StudentModel.
func getModel(ctx context.Context, ns, name string) (*v1alpha1.StudentModel, error) {
	var sm v1alpha1.StudentModel
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &sm)
	return &sm, err
}

// waitForDeployment waits for a StudentModel's Deployment.
func waitForDeployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	eventually(t, "deployment "+name, func() error {
		return k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d)
	})
	return &d
}

// contextFor is a context bounded by the polling timeout.
func contextFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
