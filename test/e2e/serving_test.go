//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// kubectlProxy starts `kubectl proxy` on a free port and returns its base URL: plain HTTP on localhost to
// the apiserver, whose service proxy reaches the student's Service without kube-proxy.
func kubectlProxy(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(kubectlBin, "--kubeconfig", kubeconfig, "proxy", "--port=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n') // "Starting to serve on 127.0.0.1:PORT"
	if err != nil {
		t.Fatalf("kubectl proxy: %v", err)
	}
	addr := strings.TrimSpace(line[strings.LastIndex(line, " ")+1:])
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return "http://" + addr
}

func studentBase(proxy, model string) string {
	return fmt.Sprintf("%s/api/v1/namespaces/%s/services/%s-student:http/proxy", proxy, ns, model)
}

// openaiClientScript is client code as an application that called the teacher would have it, pointed at
// the student's base URL: the official `openai` package from the project's virtualenv.
const openaiClientScript = `
import json, sys, openai
base, model, key = sys.argv[1], sys.argv[2], sys.argv[3]
c = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
ask = [{"role": "system", "content": "Say which of the two numbers is larger."},
       {"role": "user", "content": "First: 12\nSecond: 48"}]
out = {"models": [m.id for m in c.models.list().data]}
r = c.chat.completions.create(model=model, messages=ask, temperature=0)
out["label"], out["total_tokens"] = r.choices[0].message.content, r.usage.total_tokens
out["plain_has_rationale"] = "rationale" in (r.choices[0].message.model_extra or {})
e = c.chat.completions.create(model=model, messages=ask, extra_body={"explain": True})
out["explained_label"], out["rationale"] = e.choices[0].message.content, e.choices[0].message.model_extra.get("rationale")
out["completions"] = [x.text for x in c.completions.create(model=model, prompt=["First: 3\nSecond: 9", "First: 70\nSecond: 1"]).choices]
try:
    c.chat.completions.create(model=model, messages=ask, n=2)
except openai.BadRequestError as err:
    out["n2_param"] = err.body["param"]
print(json.dumps(out))
`

func TestStudentAnswersTheOpenAIClientThroughItsService(t *testing.T) {
	waitStage(t, demoJob, "Succeeded", 30)
	mustKubectl(t, "wait", "--for=condition=Ready", "sm/"+demoJob, "--timeout=300s")
	base := studentBase(kubectlProxy(t), demoJob) + "/v1"
	// kubectl proxy passes the client's Authorization header on, and the apiserver checks it before it
	// proxies: the client's API key is the cluster's admin token here (the student itself asks for none).
	token := mustKubectl(t, "config", "view", "--raw", "--minify", "-o", "jsonpath={.users[0].user.token}")
	cmd := exec.Command(filepath.Join(root, ".venv", "bin", "python"), "-c", openaiClientScript, base, demoJob, token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("openai client: %v: %s", err, stderr.String())
	}
	var got struct {
		Models            []string `json:"models"`
		Label             string   `json:"label"`
		ExplainedLabel    string   `json:"explained_label"`
		TotalTokens       int      `json:"total_tokens"`
		PlainHasRationale bool     `json:"plain_has_rationale"`
		Rationale         string   `json:"rationale"`
		Completions       []string `json:"completions"`
		N2Param           string   `json:"n2_param"`
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("decoding %q: %v", stdout, err)
	}
	labels := map[string]bool{"first": true, "second": true}
	if len(got.Models) != 1 || got.Models[0] != demoJob {
		t.Errorf("models = %v, want [%s] (the StudentModel's name)", got.Models, demoJob)
	}
	if !labels[got.Label] || got.ExplainedLabel != got.Label || got.TotalTokens <= 0 {
		t.Errorf("chat: label %q, explained label %q, total tokens %d", got.Label, got.ExplainedLabel, got.TotalTokens)
	}
	if got.PlainHasRationale || strings.TrimSpace(got.Rationale) == "" {
		t.Errorf("the rationale must come with explain only: plain has one %v, explained %q", got.PlainHasRationale, got.Rationale)
	}
	if len(got.Completions) != 2 || !labels[got.Completions[0]] || !labels[got.Completions[1]] {
		t.Errorf("completions = %v", got.Completions)
	}
	if got.N2Param != "n" {
		t.Errorf("n=2 was not refused with param n: %q", got.N2Param)
	}
}

// requestLoop posts /v1/predict through the service proxy until stop closes, one request at a time per
// worker, and returns how many succeeded and a description of each that did not.
func requestLoop(base string, workers int, stop <-chan struct{}) func() (int, []string) {
	var mu sync.Mutex
	var ok int
	var failed []string
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 60 * time.Second}
	body := []byte(`{"inputs":["First: 12\nSecond: 48"]}`)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(base+"/v1/predict", "application/json", bytes.NewReader(body))
				msg := ""
				if err != nil {
					msg = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						msg = fmt.Sprintf("%d %s", resp.StatusCode, b)
					}
				}
				mu.Lock()
				if msg == "" {
					ok++
				} else {
					failed = append(failed, msg)
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	return func() (int, []string) {
		wg.Wait()
		return ok, failed
	}
}

func TestScaleAndRollingUpdateLoseNoRequest(t *testing.T) {
	waitStage(t, demoJob, "Succeeded", 30)
	mustKubectl(t, "wait", "--for=condition=Ready", "sm/"+demoJob, "--timeout=300s")
	deploy := demoJob + "-student"

	// kubectl scale goes through the StudentModel's scale subresource to its Deployment.
	mustKubectl(t, "scale", "sm/"+demoJob, "--replicas=2")
	eventually(t, minutes(5), "two ready replicas", func() string {
		if r := jsonpath(t, "deploy", deploy, ".spec.replicas"); r != "2" {
			return "deployment replicas " + r
		}
		if r := jsonpath(t, "sm", demoJob, ".status.readyReplicas"); r != "2" {
			return "ready replicas " + r
		}
		return ""
	})
	mustKubectl(t, "scale", "sm/"+demoJob, "--replicas=1")
	eventually(t, minutes(2), "back to one replica", func() string {
		if r := jsonpath(t, "deploy", deploy, ".spec.replicas"); r != "1" {
			return "deployment replicas " + r
		}
		return ""
	})
	mustKubectl(t, "rollout", "status", "deploy/"+deploy, "--timeout=180s")

	// A rolling update (new resources: a new pod template) under a steady request loop.
	base := studentBase(kubectlProxy(t), demoJob)
	stop := make(chan struct{})
	results := requestLoop(base, 4, stop)
	time.Sleep(3 * time.Second)
	mustKubectl(t, "patch", "sm", demoJob, "--type=merge", "-p",
		`{"spec":{"serving":{"resources":{"requests":{"cpu":"250m","memory":"768Mi"}}}}}`)
	t.Cleanup(func() {
		_, _ = kubectl("patch", "sm", demoJob, "--type=merge", "-p", `{"spec":{"serving":{"resources":null}}}`)
		_, _ = kubectl("rollout", "status", "deploy/"+deploy, "--timeout=300s")
	})
	eventually(t, minutes(1), "the operator to change the pod template", func() string {
		if cpu := jsonpath(t, "deploy", deploy, ".spec.template.spec.containers[0].resources.requests.cpu"); cpu != "250m" {
			return "cpu request " + cpu
		}
		return ""
	})
	mustKubectl(t, "rollout", "status", "deploy/"+deploy, "--timeout=300s")
	time.Sleep(10 * time.Second) // past the old pod's drain
	close(stop)
	ok, failed := results()
	t.Logf("rolling update: %d requests answered, %d failed", ok, len(failed))
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed during the rolling update, e.g. %v", len(failed), ok+len(failed), failed[:min(3, len(failed))])
	}
	if ok < 20 {
		t.Errorf("only %d requests answered: the loop did not run through the update", ok)
	}
}
