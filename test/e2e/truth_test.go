//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Tests that what the operator reports is true on a real cluster: children the apiserver refuses, pods
// that cannot start, and a second `make dev` that changes nothing that runs.

// waitFailed waits until the job failed and returns its Failed condition's reason and message.
func waitFailed(t *testing.T, namespace, job string, timeoutMin int) (reason, message string) {
	t.Helper()
	eventually(t, minutes(timeoutMin), "job "+job+" to fail", func() string {
		out, _ := kubectl("-n", namespace, "get", "dj", job, "-o", `jsonpath={.status.stage}`)
		if strings.TrimSpace(out) != "Failed" {
			return "stage " + out
		}
		return ""
	})
	reason, _ = kubectl("-n", namespace, "get", "dj", job, "-o", `jsonpath={.status.conditions[?(@.type=="Failed")].reason}`)
	message, _ = kubectl("-n", namespace, "get", "dj", job, "-o", `jsonpath={.status.conditions[?(@.type=="Failed")].message}`)
	return strings.TrimSpace(reason), strings.TrimSpace(message)
}

// TestRefusedTrainingPodFailsTheJobNamingIt: a limit range that refuses the trainer's pod fails the job
// before annotation starts (before the teacher is paid), naming the training Job and quoting the apiserver.
func TestRefusedTrainingPodFailsTheJobNamingIt(t *testing.T) {
	t.Parallel()
	const job, namespace = "e2e-refused", "e2e-refused"
	_, _ = kubectl("create", "namespace", namespace)
	t.Cleanup(func() { _, _ = kubectl("delete", "namespace", namespace, "--wait=false") })
	if _, err := kubectlIn(`apiVersion: v1
kind: LimitRange
metadata: {name: small}
spec:
  limits:
  - type: Container
    max: {memory: 1Gi}
`, "-n", namespace, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	spec := jobSpec{name: job, teacher: "demo-teacher", inputs: 10, shards: 1, concurrency: 1, maxSteps: 1}.yaml()
	spec = strings.Replace(spec, "resources: {requests: {cpu: 100m, memory: 512Mi}}", "resources: {limits: {cpu: 100m, memory: 4Gi}}", 1)
	if _, err := kubectlIn(datasetConfigMap(job, 10), "-n", namespace, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectlIn(spec, "-n", namespace, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	reason, msg := waitFailed(t, namespace, job, 3)
	if reason != "InvalidSpec" || !strings.Contains(msg, "training pod of Job "+job+"-train") || !strings.Contains(msg, "maximum memory usage per Container is 1Gi") {
		t.Errorf("Failed = %s %q; want InvalidSpec naming the training Job and quoting the apiserver", reason, msg)
	}
	if out, _ := kubectl("-n", namespace, "get", "jobs", "-l", "distillery.dev/job="+job, "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("stage Jobs were created for a job whose training pod is refused: %s", out)
	}
	events, _ := kubectl("-n", namespace, "get", "events", "--field-selector=reason=InvalidSpec,type=Warning", "-o", "name")
	if strings.TrimSpace(events) == "" {
		t.Errorf("no Warning event with reason InvalidSpec")
	}
}

// TestBadImageOverrideFailsWithThePodsWords: an annotation image that cannot be pulled fails the job once
// the operator's pod-start grace period passed (30s in make dev), with the kubelet's words.
func TestBadImageOverrideFailsWithThePodsWords(t *testing.T) {
	t.Parallel()
	const job = "e2e-badimage"
	spec := jobSpec{name: job, teacher: "demo-teacher", inputs: 10, shards: 1, concurrency: 1, maxSteps: 1}.yaml()
	spec = strings.Replace(spec, "    shards: 1\n", "    shards: 1\n    image: distillery.local/no-such-annotator:dev\n", 1)
	apply(t, datasetConfigMap(job, 10))
	apply(t, spec)
	t.Cleanup(func() {
		_, _ = kubectl("delete", "dj", job, "--ignore-not-found", "--wait=false")
		_, _ = kubectl("delete", "configmap", job+"-data", "--ignore-not-found", "--wait=false")
	})
	reason, msg := waitFailed(t, ns, job, 5)
	if reason != "StagePodConfigError" || !strings.Contains(msg, "no-such-annotator") ||
		!(strings.Contains(msg, "ErrImagePull") || strings.Contains(msg, "ImagePullBackOff")) {
		t.Errorf("Failed = %s %q; want StagePodConfigError with the kubelet's pull error", reason, msg)
	}
	eventually(t, minutes(2), "the stuck annotation pods gone", func() string {
		out, _ := kubectl("get", "pods", "-l", "distillery.dev/job="+job, "-o", "name")
		return strings.TrimSpace(out)
	})
}

// TestSecondMakeDevChangesNothingThatRuns runs `make dev`'s script again on the running cluster: no pod of
// the demo is restarted or replaced, and the student still answers.
func TestSecondMakeDevChangesNothingThatRuns(t *testing.T) {
	snapshot := func() string {
		out, err := kubectl("get", "pods", "-l", "distillery.dev/studentmodel="+demoJob+",distillery.dev/stage=serve",
			"-o", `jsonpath={range .items[*]}{.metadata.uid}:{.status.containerStatuses[*].restartCount}:{.status.containerStatuses[*].containerID} {end}`)
		if err != nil {
			t.Fatal(err)
		}
		teacher, _ := kubectl("-n", teacherNS, "get", "pods", "-l", "app=demo-teacher",
			"-o", `jsonpath={range .items[*]}{.metadata.uid}:{.status.containerStatuses[*].containerID} {end}`)
		return strings.TrimSpace(out) + " | " + strings.TrimSpace(teacher)
	}
	mustKubectl(t, "wait", "--for=condition=Ready", "sm/"+demoJob, "--timeout=300s")
	// Earlier tests scale and roll the demo's server: wait until only its one wanted pod is left.
	mustKubectl(t, "rollout", "status", "deploy/"+demoJob+"-student", "--timeout=300s")
	eventually(t, minutes(3), "the demo's server to settle on one pod", func() string {
		var pods struct {
			Items []struct {
				Metadata struct {
					DeletionTimestamp *string `json:"deletionTimestamp"`
				} `json:"metadata"`
			} `json:"items"`
		}
		getJSON(t, &pods, "pods", "-l", "distillery.dev/studentmodel="+demoJob+",distillery.dev/stage=serve")
		if len(pods.Items) != 1 || pods.Items[0].Metadata.DeletionTimestamp != nil {
			return fmt.Sprintf("%d pods", len(pods.Items))
		}
		return ""
	})
	before := snapshot()
	if !strings.Contains(before, ":") {
		t.Fatalf("no serving pod found: %q", before)
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	cmd := exec.Command(filepath.Join(root, "hack", "dev", "up.sh"))
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second make dev: %v\n%s", err, out)
	}
	if after := snapshot(); after != before {
		t.Errorf("a second make dev changed what runs:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := predict(t, ns, demoJob, []string{"First: 5\nSecond: 9"}, false); err != nil {
		t.Errorf("the student does not answer after a second make dev: %v", err)
	}
}
