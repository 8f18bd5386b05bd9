package testing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// Eventually polls f every interval until it returns nil, failing the test with f's last error once timeout
// has passed. The envtest, KWOK simulation and end-to-end tiers all wait with it.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(interval)
	}
}

// Consistently checks f every interval for the whole of d and fails the test at its first error.
func Consistently(t testing.TB, d, interval time.Duration, what string, f func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(interval) {
		if err := f(); err != nil {
			t.Fatalf("%s stopped holding: %v", what, err)
		}
	}
}

// Waiter waits for DistillationJob states through a client (envtest's, or the simulation tier's).
type Waiter struct {
	Client            client.Reader
	Timeout, Interval time.Duration
}

// Job reads the job's current state.
func (w Waiter) Job(ns, name string) (*v1alpha1.DistillationJob, error) {
	var dj v1alpha1.DistillationJob
	err := w.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &dj)
	return &dj, err
}

// Condition waits until the job's condition has status and reason, and returns the job.
func (w Waiter) Condition(t testing.TB, ns, name string, ct v1alpha1.ConditionType, status metav1.ConditionStatus, reason v1alpha1.ConditionReason) *v1alpha1.DistillationJob {
	t.Helper()
	var dj *v1alpha1.DistillationJob
	Eventually(t, w.Timeout, w.Interval, fmt.Sprintf("condition %s=%s (%s) on job %s", ct, status, reason, name), func() (err error) {
		if dj, err = w.Job(ns, name); err != nil {
			return err
		}
		c := meta.FindStatusCondition(dj.Status.Conditions, string(ct))
		if c == nil || c.Status != status || c.Reason != string(reason) {
			return fmt.Errorf("condition is %+v; stage %s; all conditions %+v", c, dj.Status.Stage, dj.Status.Conditions)
		}
		return nil
	})
	return dj
}

// Stage waits until status.stage is want, and returns the job.
func (w Waiter) Stage(t testing.TB, ns, name string, want v1alpha1.Stage) *v1alpha1.DistillationJob {
	t.Helper()
	var dj *v1alpha1.DistillationJob
	Eventually(t, w.Timeout, w.Interval, fmt.Sprintf("job %s in stage %s", name, want), func() (err error) {
		if dj, err = w.Job(ns, name); err != nil {
			return err
		}
		if dj.Status.Stage != want {
			return fmt.Errorf("stage is %q; conditions %+v", dj.Status.Stage, dj.Status.Conditions)
		}
		return nil
	})
	return dj
}
