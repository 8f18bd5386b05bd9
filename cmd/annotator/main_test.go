package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distillery-dev/distillery/internal/annotator/budget"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

// The test binary doubles as the annotator, so the tests can run it as a process and SIGKILL it
// without building it separately.
func TestMain(m *testing.M) {
	if os.Getenv("ANNOTATOR_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

type setup struct {
	dir, config, termination string
	fake                     *faketeacher.Server
	inputs                   map[string]string
}

func newSetup(t *testing.T, n int, fake *faketeacher.Server, endpoint string) *setup {
	t.Helper()
	s := &setup{dir: t.TempDir(), fake: fake, inputs: map[string]string{}}
	if fake != nil {
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)
		endpoint = srv.URL + "/v1"
	}
	var data bytes.Buffer
	if err := faketeacher.WriteCompareDataset(&data, n, 3); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data.Bytes()))
	for sc.Scan() {
		var l faketeacher.CompareLine
		json.Unmarshal(sc.Bytes(), &l)
		s.inputs[l.ID] = l.Input
	}
	cfg := contract.AnnotateConfig{
		Job: "job1", Shards: 1,
		Teacher: contract.Teacher{Endpoint: endpoint, Model: "fake", APIKeyEnv: "TEST_TEACHER_KEY",
			MaxConcurrency: 8, MaxTokens: 64, TimeoutSeconds: 5, MaxRetries: 2},
		Task:    faketeacher.CompareTask(),
		Dataset: contract.DatasetRef{Path: filepath.Join(s.dir, "data.jsonl"), IDField: "id", InputField: "input", LabelField: "label"},
		Filter:  contract.Filter{DropLabelMismatch: true},
		Output:  contract.AnnotateOut{Dir: filepath.Join(s.dir, "annotations"), CacheDir: filepath.Join(s.dir, "cache")},
	}
	s.config = filepath.Join(s.dir, "annotate.json")
	s.termination = filepath.Join(s.dir, "termination-log")
	b, _ := json.Marshal(cfg)
	os.WriteFile(s.config, b, 0o644)
	os.WriteFile(cfg.Dataset.Path, data.Bytes(), 0o644)
	return s
}

func (s *setup) command(key string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(os.Args[0], "--config", s.config, "--termination-log", s.termination, "--retry-base-delay", "1ms")
	cmd.Env = append(os.Environ(), "ANNOTATOR_TEST_RUN_MAIN=1", "JOB_COMPLETION_INDEX=0", "TEST_TEACHER_KEY="+key,
		"KUBERNETES_SERVICE_HOST=")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	return cmd, &logs
}

func (s *setup) shardFile() string {
	return filepath.Join(s.dir, "annotations", contract.ShardFileName(0, 1))
}

// records reads the shard file's whole records, ignoring a torn last line.
func (s *setup) records(t *testing.T) map[string]int {
	t.Helper()
	b, err := os.ReadFile(s.shardFile())
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		var r contract.Record
		if json.Unmarshal([]byte(line), &r) == nil && r.ID != "" {
			ids[r.ID]++
		}
	}
	return ids
}

func (s *setup) result(t *testing.T) contract.AnnotateResult {
	t.Helper()
	b, err := os.ReadFile(s.termination)
	if err != nil {
		t.Fatal(err)
	}
	var res contract.AnnotateResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("termination message %q: %v", b, err)
	}
	return res
}

func TestSIGKILLMidShardThenRestartAnnotatesEveryInputOnce(t *testing.T) {
	const n = 400
	s := newSetup(t, n, &faketeacher.Server{Latency: 5 * time.Millisecond, RecordInputs: true}, "")
	cmd, logs := s.command("")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForRecords(t, s, 100)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	before := s.records(t)
	if len(before) >= n {
		t.Fatalf("the annotator finished before the kill (%d records); the test needs it killed mid-shard", len(before))
	}

	cmd, logs = s.command("")
	if err := cmd.Run(); err != nil {
		t.Fatalf("restart: %v\n%s", err, logs)
	}
	after := s.records(t)
	for id := range s.inputs {
		if after[id] != 1 {
			t.Errorf("input %s appears %d times after the restart", id, after[id])
		}
	}
	askedTwice := 0
	for input, times := range s.fake.Seen() {
		if times > 1 {
			askedTwice++
		}
		for id := range before {
			if times > 1 && s.inputs[id] == input {
				t.Errorf("input %s was asked %d times although its record survived the kill", id, times)
			}
		}
	}
	if askedTwice > 8 {
		t.Errorf("%d inputs asked twice; only the 8 in flight at the kill may be", askedTwice)
	}
	if res := s.result(t); res.Total != n || res.OK != n {
		t.Errorf("termination after restart = %+v", res)
	}
	t.Logf("killed after %d records; %d in-flight inputs asked again", len(before), askedTwice)
}

// waitForRecords polls until the shard file holds at least n records; it is not a timing assertion.
func waitForRecords(t *testing.T, s *setup, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if len(s.records(t)) >= n {
			return
		}
	}
	t.Fatalf("no %d records after 30s", n)
}

func TestTheAPIKeyNeverLeavesTheProcess(t *testing.T) {
	const key = "sk-live-SECRET-4c1b7e"
	replies := map[string]faketeacher.Reply{}
	echoKey := func(req faketeacher.Request) faketeacher.Reply {
		if r, ok := replies[req.Input]; ok {
			r.Message += strings.TrimPrefix(req.Authorization, "Bearer ")
			return r
		}
		return faketeacher.Reply{}
	}
	s := newSetup(t, 30, &faketeacher.Server{Script: echoKey}, "")
	replies[s.inputs["3"]] = faketeacher.Reply{Fault: faketeacher.Reject, Status: 401, Message: "Incorrect API key provided: "}
	replies[s.inputs["4"]] = faketeacher.Reply{Fault: faketeacher.Reject, Status: 403, Message: "key not allowed: "}
	cmd, logs := s.command(key)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	if res := s.result(t); res.TeacherErrors != 2 {
		t.Fatalf("want the two rejected inputs as teacher errors, got %+v", res)
	}
	assertNoKey(t, key, "logs", logs.Bytes())
	assertNoKeyInTree(t, key, s.dir)

	unreachable := newSetup(t, 5, nil, "http://"+key+"@127.0.0.1:1/v1")
	cmd, logs = unreachable.command(key)
	if err := cmd.Run(); err == nil {
		t.Fatal("an unreachable teacher should fail the shard")
	}
	assertNoKey(t, key, "logs", logs.Bytes())
	assertNoKeyInTree(t, key, unreachable.dir)
}

// A key pasted into the endpoint (admission refuses it; an old object may still carry one) reaches neither
// the logs nor the termination message nor any file, though Go's HTTP errors quote the URL.
func TestAKeyInTheEndpointNeverLeavesTheProcess(t *testing.T) {
	const userKey, queryKey = "sk-url-user-5d2a9c", "sk-url-query-8e1f07"
	s := newSetup(t, 5, nil, "http://apikey:"+userKey+"@127.0.0.1:1/v1?api_key="+queryKey)
	cmd, logs := s.command("")
	if err := cmd.Run(); err == nil {
		t.Fatal("an unreachable teacher should fail the shard")
	}
	if res := s.result(t); res.Reason != contract.ReasonTeacherUnreachable || !strings.Contains(res.Error, "127.0.0.1:1") {
		t.Errorf("termination = %+v, want TeacherUnreachable naming the redacted endpoint", res)
	}
	for _, key := range []string{userKey, queryKey} {
		assertNoKey(t, key, "logs", logs.Bytes())
		assertNoKeyInTree(t, key, s.dir)
	}
}

func assertNoKey(t *testing.T, key, what string, b []byte) {
	t.Helper()
	if bytes.Contains(b, []byte(key)) {
		t.Errorf("the API key appears in %s:\n%s", what, b)
	}
}

// assertNoKeyInTree checks every file the run wrote, except the config that names the endpoint.
func assertNoKeyInTree(t *testing.T, key, dir string) {
	t.Helper()
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || filepath.Base(path) == "annotate.json" {
			return err
		}
		b, _ := os.ReadFile(path)
		assertNoKey(t, key, path, b)
		return nil
	})
}

func TestAnUnreachableTeacherEndsTheProcessWithTheReason(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	endpoint := "http://" + l.Addr().String() + "/v1"
	l.Close()
	s := newSetup(t, 20, nil, endpoint)
	cmd, logs := s.command("")
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() == 0 {
		t.Fatalf("exit = %v, want non-zero\n%s", err, logs)
	}
	res := s.result(t)
	if res.Reason != contract.ReasonTeacherUnreachable || !strings.Contains(res.Error, endpoint) || res.Stage != "annotate" {
		t.Errorf("termination = %+v", res)
	}
}

func TestShardComesFromTheFlagOrTheIndexedJob(t *testing.T) {
	t.Setenv("JOB_COMPLETION_INDEX", "5")
	f, err := parseFlags(nil)
	if err != nil || f.shard != 5 {
		t.Errorf("from JOB_COMPLETION_INDEX: %d, %v", f.shard, err)
	}
	if f, err = parseFlags([]string{"--shard", "2"}); err != nil || f.shard != 2 {
		t.Errorf("from --shard: %d, %v", f.shard, err)
	}
	t.Setenv("JOB_COMPLETION_INDEX", "")
	if _, err := parseFlags(nil); err == nil {
		t.Error("no shard at all should be an error")
	}
}

func TestADatasetWithoutTheInputFieldFailsForGood(t *testing.T) {
	s := newSetup(t, 0, &faketeacher.Server{}, "")
	var cfg contract.AnnotateConfig
	b, _ := os.ReadFile(s.config)
	json.Unmarshal(b, &cfg)
	data := `{"id":"1","text":"is 3 bigger than 2?"}` + "\n" + `{"id":"2","text":"is 1 bigger than 2?"}` + "\n"
	os.WriteFile(cfg.Dataset.Path, []byte(data), 0o644)
	cmd, logs := s.command("")
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != contract.ExitCodePermanent {
		t.Fatalf("exit = %v, want %d\n%s", err, contract.ExitCodePermanent, logs)
	}
	res := s.result(t)
	want := `dataset line 1 has no field "input" (fields: id, text); set spec.dataset.inputField`
	if res.Reason != contract.ReasonInvalidInput || !strings.Contains(res.Error, want) || res.SkippedLines != 2 {
		t.Errorf("termination = %+v, want InvalidInput with %q and 2 skipped lines", res, want)
	}
	if s.fake.Calls() != 0 {
		t.Errorf("the teacher was asked %d times", s.fake.Calls())
	}
}

func TestThePodUsesTheLedgerConfigMapOrNothing(t *testing.T) {
	cfg := contract.AnnotateConfig{Budget: &contract.Budget{LedgerConfigMap: "job-budget"}}
	saDir := t.TempDir()
	f := flags{serviceAccountDir: saDir}

	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if l := budgetLedger(f, cfg); l != nil {
		t.Errorf("outside a cluster the ledger is %T, want nil (the job folder's file)", l)
	}
	if l := budgetLedger(f, contract.AnnotateConfig{}); l != nil {
		t.Errorf("without a budget the ledger is %T", l)
	}

	// In a pod whose service account cannot be read, no request may start outside the shared ledger.
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if err := os.WriteFile(filepath.Join(saDir, "token"), []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := budgetLedger(f, cfg)
	if _, ok := l.(budget.Unavailable); !ok {
		t.Fatalf("a pod without its namespace and CA gets ledger %T, want budget.Unavailable", l)
	}
	if _, err := l.Update(context.Background(), 0, nil); err == nil {
		t.Error("the unavailable ledger answered")
	}
}
