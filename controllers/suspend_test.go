package controllers

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

// Unit tests of the suspend policy (suspend.go); suspend_envtest_test.go runs it against Kueue's Workload API.

func TestStageJobsCarryKueueLabels(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").UID("u").Label(LabelKueueQueue, "team-a").Label(LabelKueuePriorityClass, "high").Label("other", "x").Obj()
	for _, j := range []*batchv1.Job{annotationJob(dj, testImages), trainingJob(dj, testImages, trainingPoints(dj)[0]), reportJob(dj, testImages)} {
		if j.Labels[LabelKueueQueue] != "team-a" || j.Labels[LabelKueuePriorityClass] != "high" {
			t.Errorf("%s: labels %v, want Kueue's queue-name and priority-class copied", j.Name, j.Labels)
		}
		if _, ok := j.Labels["other"]; ok {
			t.Errorf("%s: a label Kueue does not read was copied: %v", j.Name, j.Labels)
		}
		if j.Spec.Suspend != nil {
			t.Errorf("%s: spec.suspend = %v, want it left to Kueue", j.Name, *j.Spec.Suspend)
		}
	}
	plain := utiltesting.MakeJob("dj", "ns").UID("u").Obj()
	if j := trainingJob(plain, testImages, trainingPoints(plain)[0]); j.Labels[LabelKueueQueue] != "" || j.Labels[LabelKueuePriorityClass] != "" || j.Spec.Suspend == nil {
		t.Errorf("unqueued job: labels %v, suspend %v", j.Labels, j.Spec.Suspend)
	}
}

func TestWorkloadActivationPatch(t *testing.T) {
	workload := func(active *bool, marked bool) *unstructured.Unstructured {
		wl := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{}}}
		if active != nil {
			wl.Object["spec"].(map[string]any)["active"] = *active
		}
		if marked {
			wl.SetAnnotations(map[string]string{AnnotationDeactivatedBy: deactivatedForSuspend})
		}
		return wl
	}
	deactivate := `{"metadata":{"annotations":{"distillery.dev/deactivated-by":"spec.suspend"}},"spec":{"active":false}}`
	reactivate := `{"metadata":{"annotations":{"distillery.dev/deactivated-by":null}},"spec":{"active":true}}`
	cases := []struct {
		name    string
		wl      *unstructured.Unstructured
		suspend bool
		want    string
	}{
		{"suspend an active workload", workload(ptr.To(true), false), true, deactivate},
		{"suspend a workload without spec.active (Kueue's default is true)", workload(nil, false), true, deactivate},
		{"suspended already", workload(ptr.To(false), true), true, ""},
		{"an administrator's deactivation is not marked again", workload(ptr.To(false), false), true, ""},
		{"resume what the operator deactivated", workload(ptr.To(false), true), false, reactivate},
		{"resume leaves an administrator's deactivation", workload(ptr.To(false), false), false, ""},
		{"running and not suspended", workload(ptr.To(true), false), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(workloadActivationPatch(tc.wl, tc.suspend)); got != tc.want {
				t.Errorf("patch = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestJobSuspendPatch(t *testing.T) {
	job := func(suspend *bool, marked bool) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "7"}, Spec: batchv1.JobSpec{Suspend: suspend}}
		if marked {
			j.Annotations = map[string]string{AnnotationDeactivatedBy: deactivatedForSuspend}
		}
		return j
	}
	// The Job comes from the cache: the patch holds its resourceVersion, so it fails on a newer Job.
	suspend := `{"metadata":{"annotations":{"distillery.dev/deactivated-by":"spec.suspend"},"resourceVersion":"7"},"spec":{"suspend":true}}`
	resume := `{"metadata":{"annotations":{"distillery.dev/deactivated-by":null},"resourceVersion":"7"},"spec":{"suspend":false}}`
	cases := []struct {
		name    string
		j       *batchv1.Job
		suspend bool
		want    string
	}{
		{"suspend a running job", job(ptr.To(false), false), true, suspend},
		{"suspend a job without spec.suspend", job(nil, false), true, suspend},
		{"suspended already", job(ptr.To(true), true), true, ""},
		{"a job someone else suspended is not marked", job(ptr.To(true), false), true, ""},
		{"resume what the operator suspended", job(ptr.To(true), true), false, resume},
		{"resume leaves a job someone else suspended", job(ptr.To(true), false), false, ""},
		{"running and not suspended", job(ptr.To(false), false), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(jobSuspendPatch(tc.j, tc.suspend)); got != tc.want {
				t.Errorf("patch = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestStageSuspendPolicy(t *testing.T) {
	cases := []struct {
		name        string
		dj          *v1alpha1.DistillationJob
		wantSuspend *bool
		wantHold    bool
	}{
		{"running", utiltesting.MakeJob("dj", "ns").Obj(), ptr.To(false), false},
		{"suspended", utiltesting.MakeJob("dj", "ns").Suspend(true).Obj(), ptr.To(true), false},
		{"queued", utiltesting.MakeJob("dj", "ns").Label(LabelKueueQueue, "q").Obj(), nil, false},
		{"queued and suspended", utiltesting.MakeJob("dj", "ns").Label(LabelKueueQueue, "q").Suspend(true).Obj(), nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := stageSuspendField(tc.dj); (got == nil) != (tc.wantSuspend == nil) || (got != nil && *got != *tc.wantSuspend) {
				t.Errorf("stageSuspendField = %v, want %v", got, tc.wantSuspend)
			}
			if got := holdsNewStageJobs(tc.dj); got != tc.wantHold {
				t.Errorf("holdsNewStageJobs = %v, want %v", got, tc.wantHold)
			}
		})
	}
}
