//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	ns          = "default"
	demoJob     = "compare-numbers"
	teacherNS   = "distillery-demo"
	teacherPort = 8000
)

// jobSpec is what the e2e jobs vary; everything else is the demo's task with a small, fast training run.
type jobSpec struct {
	name, teacher string
	inputs        int
	shards        int
	concurrency   int
	maxSteps      int
	suspend       bool
	serve         bool
	// budget is spec.teacher.budget as inline YAML, e.g. "{maxTokens: 1500}"; empty: none.
	budget string
}

func (j jobSpec) yaml() string {
	return fmt.Sprintf(`apiVersion: distillery.dev/v1alpha1
kind: DistillationJob
metadata:
  name: %[1]s
  labels: {e2e: "true", e2e-job: %[1]s}
spec:
  suspend: %[7]t
  teacher:
    endpoint: http://%[2]s.%[8]s.svc:%[9]d/v1
    model: demo-teacher
    maxConcurrency: %[5]d
    timeoutSeconds: 10
    maxRetries: 8%[11]s
  task:
    type: Classification
    instruction: Say which of the two numbers is larger. Explain your reasoning, then give the answer.
    labels: [first, second]
    examples:
    - {input: "First: 17\nSecond: 42", rationale: "The first number is 17 and the second number is 42. 42 is larger than 17.", label: second}
    - {input: "First: 908\nSecond: 77", rationale: "The first number is 908 and the second number is 77. 908 is larger than 77.", label: first}
  dataset:
    configMap: {name: %[1]s-data, key: train.jsonl}
    labelField: label
  annotation:
    shards: %[4]d
    resources: {requests: {cpu: 50m, memory: 64Mi}}
  student:
    baseModelFrom: {claimName: distillery-models, path: tiny-t5}
  training:
    maxSteps: %[6]d
    batchSize: 8
    learningRate: "0.001"
    maxInputLength: 32
    maxTargetLength: 96
    checkpointEverySteps: 10
    gpusPerWorker: 0
    resources: {requests: {cpu: 100m, memory: 512Mi}}
  serving:
    enabled: %[10]t
    resources: {requests: {cpu: 100m, memory: 512Mi}}
  storage: {size: 1Gi}
`, j.name, j.teacher, j.inputs, j.shards, j.concurrency, j.maxSteps, j.suspend, teacherNS, teacherPort, j.serve, j.budgetLine())
}

func (j jobSpec) budgetLine() string {
	if j.budget == "" {
		return ""
	}
	return "\n    budget: " + j.budget
}

// datasetConfigMap is the job's dataset: n "which is larger" lines with gold labels.
func datasetConfigMap(name string, n int) string {
	rng := rand.New(rand.NewSource(int64(len(name))))
	var b strings.Builder
	for i := 0; i < n; i++ {
		a, c := rng.Intn(1000), rng.Intn(1000)
		label := "first"
		if c > a {
			label = "second"
		}
		line, _ := json.Marshal(map[string]string{"id": fmt.Sprintf("%s-%d", name, i), "input": fmt.Sprintf("First: %d\nSecond: %d", a, c), "label": label})
		b.WriteString("    " + string(line) + "\n")
	}
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-data\n  labels: {e2e: \"true\"}\ndata:\n  train.jsonl: |\n%s", name, b.String())
}

// startJob applies a job and its dataset and deletes both (and its StudentModel) when the test ends.
func startJob(t *testing.T, j jobSpec) {
	t.Helper()
	if j.shards == 0 {
		j.shards = 1
	}
	if j.concurrency == 0 {
		j.concurrency = 8
	}
	if j.maxSteps == 0 {
		j.maxSteps = 10
	}
	apply(t, datasetConfigMap(j.name, j.inputs))
	apply(t, j.yaml())
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := kubectl("get", "dj,jobs,pods,sm", "-l", "distillery.dev/job="+j.name, "-o", "wide")
			desc, _ := kubectl("describe", "dj", j.name)
			t.Logf("state at failure:\n%s\n%s", out, desc)
		}
		_, _ = kubectl("delete", "dj", j.name, "--ignore-not-found", "--wait=false")
		_, _ = kubectl("delete", "sm", j.name, "--ignore-not-found", "--wait=false")
		_, _ = kubectl("delete", "configmap", j.name+"-data", "--ignore-not-found", "--wait=false")
	})
}

func stage(t *testing.T, job string) string { return jsonpath(t, "dj", job, ".status.stage") }

func conditionReason(t *testing.T, job, typ string) (status, reason, message string) {
	var dj struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string }
		}
	}
	getJSON(t, &dj, "dj", job)
	for _, c := range dj.Status.Conditions {
		if c.Type == typ {
			return c.Status, c.Reason, c.Message
		}
	}
	return "", "", ""
}

// waitStage waits for the job's stage; a Failed job ends the wait early with its reason.
func waitStage(t *testing.T, job, want string, timeoutMin int) {
	t.Helper()
	eventually(t, minutes(timeoutMin), "job "+job+" to reach "+want, func() string {
		got := stage(t, job)
		if got == want {
			return ""
		}
		if got == "Failed" && want != "Failed" {
			_, r, m := conditionReason(t, job, "Failed")
			t.Fatalf("job %s failed: %s: %s", job, r, m)
		}
		return "stage " + got
	})
}

// workspaceDir is the host directory behind the job's workspace PVC (a hostPath PV of the dev cluster).
func workspaceDir(t *testing.T, job string) string {
	t.Helper()
	pv := jsonpath(t, "pvc", job+"-workspace", ".spec.volumeName")
	if pv == "" {
		t.Fatalf("workspace PVC of %s is not bound", job)
	}
	return jsonpath(t, "pv", pv, ".spec.hostPath.path")
}

// jobFolder is the host directory of the job run's own folder in its workspace: jobs/<job>-<uid>.
func jobFolder(t *testing.T, job string) string {
	t.Helper()
	uid := jsonpath(t, "dj", job, ".metadata.uid")
	if uid == "" {
		t.Fatalf("job %s has no uid", job)
	}
	return filepath.Join(workspaceDir(t, job), "jobs", job+"-"+uid)
}

// annotationRecords reads every shard file and counts the records per id.
func annotationRecords(t *testing.T, job string) (perID map[string]int, statuses map[string]int) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(jobFolder(t, job), "annotations", "shard-*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shard files for %s: %v", job, err)
	}
	perID, statuses = map[string]int{}, map[string]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var r struct{ ID, Status string }
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: bad record %q: %v", f, sc.Text(), err)
			}
			perID[r.ID]++
			statuses[r.Status]++
		}
		fh.Close()
	}
	return perID, statuses
}

// assertExactlyOnce checks that each of the job's n inputs has exactly one record.
func assertExactlyOnce(t *testing.T, job string, n int) map[string]int {
	t.Helper()
	perID, statuses := annotationRecords(t, job)
	if len(perID) != n {
		t.Errorf("%s: %d distinct ids in the records, want %d", job, len(perID), n)
	}
	for id, c := range perID {
		if c != 1 {
			t.Errorf("%s: id %s has %d records", job, id, c)
		}
	}
	return statuses
}
