//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func minutes(n int) time.Duration { return time.Duration(n) * time.Minute }

// TestDemoJob checks the job `make dev` ran: it succeeded, every input has one record, the StudentModel
// serves valid labels and rationales, and the accuracy in status is the trainer's.
func TestDemoJob(t *testing.T) {
	waitStage(t, demoJob, "Succeeded", 30)
	mustKubectl(t, "wait", "--for=condition=Complete", "dj/"+demoJob, "--timeout=60s")
	mustKubectl(t, "wait", "--for=condition=Ready", "sm/"+demoJob, "--timeout=300s")

	statuses := assertExactlyOnce(t, demoJob, 1000)
	if statuses["ok"] == 0 {
		t.Errorf("no ok records: %v", statuses)
	}

	resp, err := predict(t, ns, demoJob, []string{"First: 12\nSecond: 48", "First: 73\nSecond: 56"}, true)
	if err != nil {
		t.Fatal(err)
	}
	preds, _ := resp["predictions"].([]any)
	if len(preds) != 2 {
		t.Fatalf("want 2 predictions, got %v", resp)
	}
	for _, p := range preds {
		m := p.(map[string]any)
		if l := m["label"]; l != "first" && l != "second" {
			t.Errorf("prediction label %q is not one of the task's labels", l)
		}
		if r, _ := m["rationale"].(string); strings.TrimSpace(r) == "" {
			t.Errorf("explain=true returned no rationale: %v", m)
		}
	}
	if _, err := predict(t, ns, demoJob, []string{"First: 1\nSecond: 2"}, false); err != nil {
		t.Errorf("label-only prediction: %v", err)
	}

	var metrics struct {
		EvalAccuracy float64 `json:"evalAccuracy"`
	}
	b, err := os.ReadFile(filepath.Join(jobFolder(t, demoJob), "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &metrics); err != nil {
		t.Fatalf("metrics.json: %v", err)
	}
	acc := jsonpath(t, "dj", demoJob, ".status.evaluation.accuracy")
	if got, _ := strconv.ParseFloat(acc, 64); got-metrics.EvalAccuracy > 1e-4 || metrics.EvalAccuracy-got > 1e-4 {
		t.Errorf("status accuracy %s, trainer's metrics.json %v", acc, metrics.EvalAccuracy)
	}
	if smAcc := jsonpath(t, "sm", demoJob, ".spec.metrics.accuracy"); smAcc != acc {
		t.Errorf("StudentModel accuracy %q, job %q", smAcc, acc)
	}
	// The demo learns: chance is 0.5; 600 CPU steps reached about 0.9 in trials.
	if got, _ := strconv.ParseFloat(acc, 64); got < 0.7 {
		t.Errorf("demo eval accuracy %s: the student did not learn the task", acc)
	}
	t.Logf("demo eval accuracy %s", acc)
}

// TestStageTransitions watches a fresh job go Pending -> Annotating -> Training -> Succeeded.
func TestStageTransitions(t *testing.T) {
	t.Parallel()
	const job = "e2e-lifecycle"
	cmd := exec.Command(kubectlBin, "--kubeconfig", kubeconfig, "get", "dj", "-l", "e2e-job="+job, "-w",
		"--output-watch-events=false", "-o", "custom-columns=STAGE:.status.stage", "--no-headers")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			seen <- strings.TrimSpace(sc.Text())
		}
		close(seen)
	}()
	time.Sleep(time.Second) // the watch is established before the job exists
	startJob(t, jobSpec{name: job, teacher: "demo-teacher", inputs: 40, shards: 2})
	waitStage(t, job, "Succeeded", 15)
	time.Sleep(2 * time.Second)
	_ = cmd.Process.Kill()
	var order []string
	for s := range seen {
		if s != "<none>" && (len(order) == 0 || order[len(order)-1] != s) {
			order = append(order, s)
		}
	}
	want := []string{"Pending", "Annotating", "Training", "Succeeded"}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("stages seen %v, want %v", order, want)
	}
	assertExactlyOnce(t, job, 40)
	mustKubectl(t, "wait", "--for=condition=Complete", "dj/"+job, "--timeout=30s")
	if s := jsonpath(t, "sm", job, ".status.conditions[?(@.type==\"Stopped\")].status"); s != "True" {
		t.Errorf("serving.enabled=false: StudentModel Stopped condition %q, want True", s)
	}
}

// TestFlakyTeacher: garbage answers and a burst of 429s; the job still succeeds and counts rejects.
func TestFlakyTeacher(t *testing.T) {
	t.Parallel()
	const job = "e2e-flaky"
	startJob(t, jobSpec{name: job, teacher: "teacher-flaky", inputs: 60})
	waitStage(t, job, "Succeeded", 15)
	rejected, _ := strconv.Atoi(jsonpath(t, "dj", job, ".status.annotation.rejected"))
	ok, _ := strconv.Atoi(jsonpath(t, "dj", job, ".status.annotation.ok"))
	if rejected == 0 || ok == 0 {
		t.Errorf("want both ok and rejected annotations counted, got ok=%d rejected=%d", ok, rejected)
	}
	statuses := assertExactlyOnce(t, job, 60)
	if statuses["ok"] != ok {
		t.Errorf("status.annotation.ok=%d, records with status ok=%d", ok, statuses["ok"])
	}
}

// TestTeacherDown: nothing answers at the endpoint; the job fails fast naming it.
func TestTeacherDown(t *testing.T) {
	t.Parallel()
	const job = "e2e-teacher-down"
	startJob(t, jobSpec{name: job, teacher: "teacher-down", inputs: 20})
	waitStage(t, job, "Failed", 10)
	_, reason, msg := conditionReason(t, job, "Failed")
	if reason != "TeacherUnreachable" {
		t.Errorf("Failed reason %q, want TeacherUnreachable (message %q)", reason, msg)
	}
	if !strings.Contains(msg, "teacher-down."+teacherNS) {
		t.Errorf("Failed message does not name the endpoint: %q", msg)
	}
}

// TestAnnotationPodDeleted: a shard's pod is deleted mid-shard; the replacement resumes and no input
// is annotated twice.
func TestAnnotationPodDeleted(t *testing.T) {
	t.Parallel()
	const job = "e2e-pod-deleted"
	startJob(t, jobSpec{name: job, teacher: "teacher-slow", inputs: 80, concurrency: 2})
	eventually(t, minutes(5), "annotation progress", func() string {
		cm := jsonpath(t, "configmap", job+"-progress", ".data.annotate-0")
		var p struct{ Done int }
		if json.Unmarshal([]byte(cm), &p) != nil || p.Done < 5 {
			return "progress " + cm
		}
		return ""
	})
	mustKubectl(t, "delete", "pod", "-l", "distillery.dev/job="+job+",distillery.dev/stage=annotate", "--wait=false")
	waitStage(t, job, "Succeeded", 15)
	assertExactlyOnce(t, job, 80)
}

// TestSuspendResume: suspending stops the stage's pods; resuming finishes the job without re-asking.
func TestSuspendResume(t *testing.T) {
	t.Parallel()
	const job = "e2e-suspend"
	startJob(t, jobSpec{name: job, teacher: "teacher-slow", inputs: 80, concurrency: 2})
	waitStage(t, job, "Annotating", 5)
	mustKubectl(t, "patch", "dj", job, "--type=merge", "-p", `{"spec":{"suspend":true}}`)
	waitStage(t, job, "Suspended", 3)
	if s := jsonpath(t, "job", job+"-annotate", ".spec.suspend"); s != "true" {
		t.Errorf("annotation Job spec.suspend = %q, want true", s)
	}
	eventually(t, minutes(3), "annotation pods to stop", func() string {
		out, _ := kubectl("get", "pods", "-l", "distillery.dev/job="+job+",distillery.dev/stage=annotate", "--field-selector=status.phase=Running", "-o", "name")
		return strings.TrimSpace(out)
	})
	mustKubectl(t, "patch", "dj", job, "--type=merge", "-p", `{"spec":{"suspend":false}}`)
	waitStage(t, job, "Succeeded", 15)
	assertExactlyOnce(t, job, 80)
}

// TestOperatorRestart: the operator is restarted mid-job and picks up where it was.
func TestOperatorRestart(t *testing.T) {
	t.Parallel()
	const job = "e2e-restart"
	startJob(t, jobSpec{name: job, teacher: "teacher-slow", inputs: 60, concurrency: 2})
	waitStage(t, job, "Annotating", 5)
	mustKubectl(t, "-n", "distillery-system", "delete", "pod", "-l", "control-plane=controller-manager")
	mustKubectl(t, "-n", "distillery-system", "rollout", "status", "deploy/distillery-controller-manager", "--timeout=180s")
	waitStage(t, job, "Succeeded", 15)
	assertExactlyOnce(t, job, 60)
}

// TestBadSpecsRefused: kubectl apply refuses invalid jobs with a message naming the field.
func TestBadSpecsRefused(t *testing.T) {
	t.Parallel()
	good := jobSpec{name: "e2e-bad", teacher: "demo-teacher", inputs: 1, shards: 1, concurrency: 1, maxSteps: 1}.yaml()
	cases := []struct{ name, from, to, field string }{
		{"endpoint not http", "endpoint: http://", "endpoint: ftp://", "spec.teacher.endpoint"},
		{"no labels for Classification", "labels: [first, second]", "labels: []", "spec.task.labels"},
		{"shards out of range", "shards: 1", "shards: 300", "spec.annotation.shards"},
		{"zero rationale weight", "maxSteps: 1", "maxSteps: 1\n    rationaleWeight: \"0\"", "spec.training.rationaleWeight"},
		{"two dataset sources", "labelField: label", "labelField: label\n    persistentVolumeClaim: {claimName: x, path: a.jsonl}", "spec.dataset"},
		// 55 characters (the limit is 50): <name>-annotate-255, the longest annotation pod hostname, would
		// exceed 63 (issue 9).
		{"name too long for its children", "name: e2e-bad\n", "name: e2e-bad-" + strings.Repeat("x", 47) + "\n", "metadata.name"},
		{"dot in the name", "name: e2e-bad\n", "name: e2e.bad\n", "metadata.name"},
		{"zero storage", "storage: {size: 1Gi}", "storage: {size: \"0\"}", "spec.storage.size"},
		{"key in the endpoint", "endpoint: http://", "endpoint: http://apikey:sk-e2e-not-echoed@", "spec.teacher.endpoint"},
		{"endpoint with /chat/completions", "/v1\n", "/v1/chat/completions\n", "spec.teacher.endpoint"},
		{"example label outside the labels", "label: second}", "label: third}", "spec.task.examples"},
		{"secret key syntax", "model: demo-teacher", "model: demo-teacher\n    apiKeySecretRef: {name: teacher, key: \"api key\"}", "spec.teacher.apiKeySecretRef.key"},
	}
	for _, c := range cases {
		bad := strings.Replace(good, c.from, c.to, 1)
		if bad == good {
			t.Fatalf("%s: the replacement did not apply", c.name)
		}
		_, err := kubectlIn(bad, "apply", "-f", "-")
		if err == nil {
			_, _ = kubectl("delete", "dj", "e2e-bad", "--ignore-not-found")
			t.Errorf("%s: kubectl apply accepted the spec", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error does not name %s: %v", c.name, c.field, err)
		}
		if strings.Contains(err.Error(), "sk-e2e-not-echoed") {
			t.Errorf("%s: the refusal repeats the key: %v", c.name, err)
		}
	}
}
