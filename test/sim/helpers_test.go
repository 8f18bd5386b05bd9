//go:build sim

package sim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/test/sim/simenv"
)

// The time a step may take on a loaded 2-core CI machine running the whole control plane.
const waitTimeout = 90 * time.Second

// namespace makes a fresh namespace with a workspace claim for the test and deletes it afterwards.
func namespace(t *testing.T) string {
	t.Helper()
	name := "sim-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-")
	ctx := context.Background()
	if err := env.Namespace(ctx, name); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	t.Cleanup(func() { env.DeleteNamespace(context.Background(), name) })
	return name
}

// job is a small valid job in ns using the namespace's pre-bound workspace claim.
func job(name, ns string) *utiltesting.JobWrapper {
	return utiltesting.MakeJob(name, ns).ExistingClaim(simenv.WorkspaceClaim)
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// waiter waits through the simulation's client with its bounds.
func waiter() utiltesting.Waiter {
	return utiltesting.Waiter{Client: env.Client, Timeout: waitTimeout, Interval: 250 * time.Millisecond}
}

// eventually polls f until it returns nil, failing the test after timeout with f's last error.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	utiltesting.Eventually(t, timeout, 250*time.Millisecond, what, f)
}

func getJob(ns, name string) (*v1alpha1.DistillationJob, error) { return waiter().Job(ns, name) }

// waitForCondition waits until the job's condition has status and reason and returns the job.
func waitForCondition(t *testing.T, ns, name string, ct v1alpha1.ConditionType, status metav1.ConditionStatus, reason v1alpha1.ConditionReason) *v1alpha1.DistillationJob {
	t.Helper()
	return waiter().Condition(t, ns, name, ct, status, reason)
}

// waitForStage waits until status.stage is want.
func waitForStage(t *testing.T, ns, name string, want v1alpha1.Stage) *v1alpha1.DistillationJob {
	t.Helper()
	return waiter().Stage(t, ns, name, want)
}

// stagePods are the job's pods of one stage, by the labels the operator's builders set.
func stagePods(ns, djName, stage string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	err := env.Client.List(context.Background(), &pods, client.InNamespace(ns),
		client.MatchingLabels{controllers.LabelJob: djName, controllers.LabelStage: stage})
	return pods.Items, err
}

// waitForRunningPods waits for n Running pods of the stage and returns them.
func waitForRunningPods(t *testing.T, ns, djName, stage string, n int) []corev1.Pod {
	t.Helper()
	var running []corev1.Pod
	eventually(t, waitTimeout, fmt.Sprintf("%d running %s pods of %s", n, stage, djName), func() error {
		pods, err := stagePods(ns, djName, stage)
		if err != nil {
			return err
		}
		running = running[:0]
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running = append(running, p)
			}
		}
		if len(running) != n {
			return fmt.Errorf("%d running of %d pods", len(running), len(pods))
		}
		return nil
	})
	return running
}

// setOutcome annotates a held stage pod with how it ends (simulated by KWOK).
func setOutcome(t *testing.T, p *corev1.Pod, outcome, exitCode, message string) {
	t.Helper()
	ann := map[string]string{simenv.AnnotationOutcome: outcome}
	if exitCode != "" {
		ann[simenv.AnnotationExitCode] = exitCode
	}
	if message != "" {
		ann[simenv.AnnotationMessage] = message
	}
	patch := client.MergeFrom(p.DeepCopy())
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	for k, v := range ann {
		p.Annotations[k] = v
	}
	if err := env.Client.Patch(context.Background(), p, patch); err != nil {
		t.Fatalf("annotating pod %s: %v", p.Name, err)
	}
}

// stageJob is the job's stage Job, or nil.
func stageJob(ns, djName, stage string) (*batchv1.Job, error) {
	var jobs batchv1.JobList
	if err := env.Client.List(context.Background(), &jobs, client.InNamespace(ns),
		client.MatchingLabels{controllers.LabelJob: djName, controllers.LabelStage: stage}); err != nil {
		return nil, err
	}
	if len(jobs.Items) == 0 {
		return nil, nil
	}
	return &jobs.Items[0], nil
}

func envValue(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}
