//go:build e2e

// Package e2e drives a real local cluster (make dev) the way users do: kubectl apply, get, wait, and
// HTTP through the apiserver's service proxy. Run with `make test-e2e`.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

var (
	root       = mustAbs("../..")
	kubectlBin = filepath.Join(root, "bin", "k8s", "kubectl")
	kubeconfig = envOr("KUBECONFIG", filepath.Join(envOr("DISTILLERY_DEV_DIR", filepath.Join(root, ".dev")), "kubeconfig"))
)

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// kubectl runs the real kubectl against the dev cluster and returns stdout, or stderr in the error.
func kubectl(args ...string) (string, error) {
	return kubectlIn("", args...)
}

func kubectlIn(stdin string, args ...string) (string, error) {
	cmd := exec.Command(kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func apply(t *testing.T, yaml string) {
	t.Helper()
	if _, err := kubectlIn(yaml, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// jsonpath reads one field of an object.
func jsonpath(t *testing.T, kind, name, path string) string {
	t.Helper()
	out, _ := kubectl("get", kind, name, "-o", "jsonpath={"+path+"}")
	return strings.TrimSpace(out)
}

// eventually polls cond until it returns "" (done) or the timeout passes; the last message fails the test.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	utiltesting.Eventually(t, timeout, 2*time.Second, what, func() error {
		if msg := cond(); msg != "" {
			return errors.New(msg)
		}
		return nil
	})
}

// getJSON decodes `kubectl get -o json`.
func getJSON(t *testing.T, into any, args ...string) {
	t.Helper()
	out := mustKubectl(t, append(append([]string{"get"}, args...), "-o", "json")...)
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("decoding kubectl get %v: %v", args, err)
	}
}

// predict posts to a StudentModel's Service through the apiserver's service proxy.
func predict(t *testing.T, ns, model string, inputs []string, explain bool) (map[string]any, error) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"inputs": inputs, "explain": explain})
	f := filepath.Join(t.TempDir(), "predict.json")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl("create", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/services/%s-student:http/proxy/v1/predict", ns, model), "-f", f)
	if err != nil {
		return nil, err
	}
	var resp map[string]any
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Errorf("decoding %q: %w", out, err)
	}
	return resp, nil
}
