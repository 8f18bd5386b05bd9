//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// TestRerunUnderAFinishedJobsName is point 3 of issue 9: a finished job is deleted (its StudentModel and
// workspace volume stay) and a job of the same name with another teacher is applied. The new job fails at
// once naming the taken names, before any annotation pod, while the old model keeps serving from its
// volume, which stays the model's.
func TestRerunUnderAFinishedJobsName(t *testing.T) {
	t.Parallel()
	const job = "e2e-rerun"
	spec := jobSpec{name: job, teacher: "demo-teacher", inputs: 40, shards: 1, concurrency: 8, maxSteps: 10, serve: true}
	startJob(t, spec)
	waitStage(t, job, "Succeeded", 15)
	mustKubectl(t, "wait", "--for=condition=Ready", "sm/"+job, "--timeout=300s")
	modelUID := jsonpath(t, "sm", job, ".metadata.uid")
	oldJobUID := jsonpath(t, "dj", job, ".metadata.uid")
	if _, err := predict(t, ns, job, []string{"First: 3\nSecond: 9"}, false); err != nil {
		t.Fatalf("the finished job's model does not answer: %v", err)
	}

	mustKubectl(t, "delete", "dj", job)
	renewed := strings.Replace(spec.yaml(), "model: demo-teacher", "model: another-teacher", 1)
	if renewed == spec.yaml() {
		t.Fatal("the teacher model replacement did not apply")
	}
	apply(t, renewed)
	waitStage(t, job, "Failed", 2)
	_, reason, msg := conditionReason(t, job, "Failed")
	if reason != "NameConflict" {
		t.Errorf("Failed reason %q, want NameConflict (message %q)", reason, msg)
	}
	for _, want := range []string{"PersistentVolumeClaim " + job + "-workspace", "StudentModel " + job, modelUID} {
		if !strings.Contains(msg, want) {
			t.Errorf("Failed message does not name %q: %q", want, msg)
		}
	}
	newJobUID := jsonpath(t, "dj", job, ".metadata.uid")
	if newJobUID == "" || newJobUID == oldJobUID {
		t.Fatalf("the re-applied job has uid %q (the old one had %q)", newJobUID, oldJobUID)
	}
	if owners, _ := kubectl("get", "jobs,pods", "-l", "distillery.dev/job="+job, "-o", "jsonpath={.items[*].metadata.ownerReferences[*].uid}"); strings.Contains(owners, newJobUID) {
		t.Errorf("the conflicting job started a stage (owners %s): the teacher was asked", owners)
	}

	// The old model keeps serving, from its volume, which is still its own.
	if got := jsonpath(t, "pvc", job+"-workspace", ".metadata.ownerReferences[*].uid"); got != modelUID {
		t.Errorf("workspace PVC owners %q, want only the StudentModel %s", got, modelUID)
	}
	if got := jsonpath(t, "sm", job, ".spec.provenance.jobUID"); got != oldJobUID {
		t.Errorf("StudentModel provenance.jobUID %q, want the finished job's %s", got, oldJobUID)
	}
	mustKubectl(t, "wait", "--for=condition=Ready", "sm/"+job, "--timeout=60s")
	if _, err := predict(t, ns, job, []string{"First: 12\nSecond: 48"}, true); err != nil {
		t.Errorf("the old model stopped answering: %v", err)
	}

	// Deleting the failed job takes nothing of the model's with it.
	mustKubectl(t, "delete", "dj", job)
	if got := jsonpath(t, "pvc", job+"-workspace", ".metadata.ownerReferences[*].uid"); got != modelUID {
		t.Errorf("after deleting the failed job, workspace PVC owners %q, want %s", got, modelUID)
	}
	if _, err := predict(t, ns, job, []string{"First: 5\nSecond: 1"}, false); err != nil {
		t.Errorf("the old model stopped answering after the failed job was deleted: %v", err)
	}
}
