//go:build local

// Package local tests `distillery run` end to end without a cluster: the demo job of config/samples,
// unchanged, against the demo teacher (cmd/demo-teacher), with the tiny T5 of `make dev`
// (hack/dev/tiny_model.py) and its dataset (hack/dev/dataset.py), to a served model that answers a
// prediction through `distillery serve`: the same result as `make dev`, with no cluster. The run is
// interrupted with Ctrl-C (SIGINT) while it trains and resumed with the teacher gone, so the resume asks
// the teacher nothing again. Run it with `make test-local` (it needs the student runtime's Python:
// DISTILLERY_TEST_PYTHON, default .venv/bin/python from `make python-env`).
package local

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	root      = filepath.Join("..", "..")
	sampleJob = filepath.Join(root, "config", "samples", "distillery_v1alpha1_distillationjob.yaml")
)

func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("DISTILLERY_TEST_PYTHON")
	if py == "" {
		py, _ = filepath.Abs(filepath.Join(root, ".venv", "bin", "python"))
	}
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("no Python with the student runtime at %s (run `make python-env`, or set DISTILLERY_TEST_PYTHON): %v", py, err)
	}
	return py
}

// build compiles a command of this module into dir.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a process with its output in a buffer; the test stops it at the end.
func start(t *testing.T, dir, name string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, out
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func TestRunTheDemoJobWithoutACluster(t *testing.T) {
	py := python(t)
	work := t.TempDir()
	distillery := build(t, work, "cmd/distillery")
	teacher := build(t, work, "cmd/demo-teacher")

	// The data `make dev` puts in the cluster, under --data: the ConfigMap compare-numbers-data key
	// train.jsonl, and the PVC distillery-models path tiny-t5.
	data := filepath.Join(work, "data")
	dataset := filepath.Join(data, "compare-numbers-data", "train.jsonl")
	if err := os.MkdirAll(filepath.Dir(dataset), 0o755); err != nil {
		t.Fatal(err)
	}
	gen := exec.Command(py, filepath.Join(root, "hack", "dev", "dataset.py"), "1000", "1")
	lines, err := gen.Output()
	if err != nil {
		t.Fatalf("hack/dev/dataset.py: %v", err)
	}
	if err := os.WriteFile(dataset, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, py, filepath.Join(root, "hack", "dev", "tiny_model.py"), filepath.Join(data, "distillery-models", "tiny-t5"))

	port := freePort(t)
	teacherCmd, teacherLog := start(t, work, teacher, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	waitFor(t, "the demo teacher", 30*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	job, err := filepath.Abs(sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"run", job, "--data", data, "--python", py, "--teacher-endpoint", fmt.Sprintf("http://127.0.0.1:%d/v1", port)}
	runDir := filepath.Join(work, "distillery-runs", "compare-numbers")

	// First run: Ctrl-C once training has made progress.
	first, firstOut := start(t, work, distillery, args...)
	trainLog := filepath.Join(runDir, "logs", "train.log")
	waitFor(t, "training to pass step 20", 20*time.Minute, func() bool { return lastStep(trainLog) >= 20 })
	first.Process.Signal(syscall.SIGINT)
	err = first.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(firstOut.String(), "training interrupted; run the same command again to resume") {
		t.Fatalf("after Ctrl-C: %v, want exit code 130 and the resume hint\n%s", err, firstOut)
	}
	stoppedAt := lastStep(trainLog)
	if !strings.Contains(readFile(t, trainLog), fmt.Sprintf("checkpoint %s", filepath.Join(runDir, "checkpoints"))) {
		t.Errorf("the trainer wrote no checkpoint when it was stopped (SIGTERM):\n%s", tail(readFile(t, trainLog), 20))
	}

	// The teacher goes away: the resumed run must not need it.
	teacherCmd.Process.Signal(syscall.SIGTERM)
	teacherCmd.Wait()
	second, secondOut := start(t, work, distillery, args...)
	if err := second.Wait(); err != nil {
		t.Fatalf("the resumed run: %v\n%s\nteacher:\n%s", err, secondOut, teacherLog)
	}
	out := secondOut.String()
	t.Logf("resumed run:\n%s", out)
	if !strings.Contains(readFile(t, trainLog), "resumed from") {
		t.Errorf("training did not resume from its checkpoint (stopped at step %d):\n%s", stoppedAt, tail(readFile(t, trainLog), 30))
	}
	for _, want := range []string{"annotate  1000 inputs:", "EVALUATION", "student accuracy", "model:   " + filepath.Join(runDir, "model"),
		"serve:   distillery serve " + runDir} {
		if !strings.Contains(out, want) {
			t.Errorf("the run's output has no %q", want)
		}
	}
	assertEveryInputOnce(t, filepath.Join(runDir, "annotations"), 1000)
	var metrics struct {
		EvalAccuracy float64 `json:"evalAccuracy"`
		Evaluation   struct {
			StudentAccuracy *float64 `json:"studentAccuracy"`
		} `json:"evaluation"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(runDir, "metrics.json"))), &metrics); err != nil {
		t.Fatal(err)
	}
	acc := metrics.EvalAccuracy
	if metrics.Evaluation.StudentAccuracy != nil {
		acc = *metrics.Evaluation.StudentAccuracy
	}
	// The demo learns, as in make dev (test/e2e TestDemoJob): chance is 0.5, 600 CPU steps reach about 0.9.
	if acc < 0.7 {
		t.Errorf("eval accuracy %v, want at least 0.7", acc)
	}

	// distillery serve answers a prediction.
	servePort := freePort(t)
	serve, serveOut := start(t, work, distillery, "serve", runDir, "--python", py, "--port", fmt.Sprint(servePort))
	base := fmt.Sprintf("http://127.0.0.1:%d", servePort)
	waitFor(t, "the student server", 5*time.Minute, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	body := `{"inputs":["First: 12\nSecond: 48","First: 73\nSecond: 56"],"explain":true}`
	resp, err := http.Post(base+"/v1/predict", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("predict: %v\n%s", err, serveOut)
	}
	defer resp.Body.Close()
	var answer struct {
		Predictions []struct{ Label, Rationale string } `json:"predictions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != 200 || len(answer.Predictions) != 2 {
		t.Fatalf("predict: %d %+v %v", resp.StatusCode, answer, err)
	}
	for _, p := range answer.Predictions {
		if p.Label != "first" && p.Label != "second" {
			t.Errorf("prediction label %q is not one of the task's labels", p.Label)
		}
		if strings.TrimSpace(p.Rationale) == "" {
			t.Errorf("explain=true returned no rationale: %+v", p)
		}
	}
	t.Logf("prediction: %+v", answer.Predictions)
	serve.Process.Signal(syscall.SIGINT)
	if err := serve.Wait(); err != nil {
		t.Errorf("distillery serve after Ctrl-C: %v\n%s", err, serveOut)
	}
}

// lastStep is the newest step of the trainer's progress reports in its log.
func lastStep(log string) int {
	f, err := os.Open(log)
	if err != nil {
		return 0
	}
	defer f.Close()
	step := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "progress train-0 ")
		if i < 0 {
			continue
		}
		var p struct{ Step int }
		if json.Unmarshal([]byte(line[i+len("progress train-0 "):]), &p) == nil {
			step = p.Step
		}
	}
	return step
}

func assertEveryInputOnce(t *testing.T, dir string, n int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "shard-*.jsonl"))
	ids := map[string]int{}
	for _, f := range files {
		for _, line := range strings.Split(strings.TrimSpace(readFile(t, f)), "\n") {
			var r struct{ ID string }
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			ids[r.ID]++
		}
	}
	if len(files) != 2 || len(ids) != n {
		t.Errorf("%d shard files with %d ids, want 2 files and %d ids", len(files), len(ids), n)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("input %s has %d records", id, c)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
