package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestKubectlRunsItAsAPlugin installs the binary as kubectl-distillery on PATH and has the real kubectl (the
// one envtest uses, bin/k8s) find and run it: `kubectl distillery validate` on the sample, offline.
func TestKubectlRunsItAsAPlugin(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run through `make test` (it points at bin/k8s, where kubectl is)")
	}
	kubectl := filepath.Join(assets, "kubectl")
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-distillery"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, file, _, _ := runtime.Caller(0)
	sample := filepath.Join(filepath.Dir(file), "..", "..", "config", "samples", "distillery_v1alpha1_distillationjob.yaml")
	cmd := exec.Command(kubectl, "distillery", "validate", sample)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl distillery validate: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "is valid") {
		t.Errorf("kubectl distillery validate printed %q; want the sample reported valid", out)
	}
}
