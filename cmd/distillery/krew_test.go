package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"text/template"

	"github.com/distillery-dev/distillery/internal/testenv"
)

// repoRoot is the checkout this test file is in.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// renderKrewManifest renders hack/krew/distillery.yaml, the krew-release-bot template, as the bot does
// on a release: .TagName and .Version, and addURIAndSha, which renders the URL with the tag and writes
// "uri: URL" and "sha256: ..." of the asset. Here an asset's sha256 is that of the archive of the same
// file name in shas; a platform without a local archive gets a placeholder (krew checks only the one it
// installs).
func renderKrewManifest(t *testing.T, root, tag string, shas map[string]string) []byte {
	t.Helper()
	values := struct{ TagName, Version string }{tag, strings.TrimPrefix(tag, "v")}
	funcs := template.FuncMap{"addURIAndSha": func(url, tag string) (string, error) {
		var u bytes.Buffer
		tmpl, err := template.New("url").Parse(url)
		if err != nil {
			return "", err
		}
		if err := tmpl.Execute(&u, values); err != nil {
			return "", err
		}
		sum, ok := shas[path.Base(u.String())]
		if !ok {
			sum = strings.Repeat("f0", 32)
		}
		return "uri: " + u.String() + "\n    sha256: " + sum, nil
	}}
	src := filepath.Join(root, "hack", "krew", "distillery.yaml")
	tmpl, err := template.New(filepath.Base(src)).Funcs(funcs).ParseFiles(src)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, values); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// run runs a command and fails the test with its output when it fails.
func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// TestKrewInstallsThePluginFromItsManifest backs the krew manifest with krew itself: krew v0.4.3 (built
// from its Go module, hack/krew/tool) installs `kubectl distillery` from hack/krew/distillery.yaml, rendered
// as krew-release-bot renders it, and the archive `make cli-dist` builds for this machine
// (hack/krew/archives.sh), into a fresh KREW_ROOT; the real kubectl then runs the installed plugin. krew
// validates the manifest (name, version, platforms, bin) and checks the archive's sha256 against it: the
// same manifest with another sha256 is refused.
func TestKrewInstallsThePluginFromItsManifest(t *testing.T) {
	root := repoRoot(t)
	assets := testenv.Assets() // where kubectl is
	if _, err := os.Stat(filepath.Join(assets, "kubectl")); err != nil {
		t.Fatalf("no kubectl in %s (KUBEBUILDER_ASSETS, else bin/k8s): run `make envtest` first: %v", assets, err)
	}
	dir := t.TempDir()
	tools, dist, krewRoot := filepath.Join(dir, "tools"), filepath.Join(dir, "dist"), filepath.Join(dir, "krew")

	build := exec.Command("go", "build", "-o", filepath.Join(tools, "kubectl-krew"), "sigs.k8s.io/krew/cmd/krew")
	build.Dir = filepath.Join(root, "hack", "krew", "tool")
	run(t, build)
	platform := runtime.GOOS + "/" + runtime.GOARCH
	archives := exec.Command(filepath.Join(root, "hack", "krew", "archives.sh"), platform)
	archives.Env = append(os.Environ(), "DISTILLERY_DIST="+dist)
	run(t, archives)
	archive := filepath.Join(dist, "kubectl-distillery_"+runtime.GOOS+"_"+runtime.GOARCH+".tar.gz")
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	manifest := filepath.Join(dir, "distillery.yaml")
	if err := os.WriteFile(manifest, renderKrewManifest(t, root, "v0.1.0", map[string]string{filepath.Base(archive): hex.EncodeToString(sum[:])}), 0o644); err != nil {
		t.Fatal(err)
	}

	kubectl := func(args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(assets, "kubectl"), args...)
		cmd.Env = append(os.Environ(), "KREW_ROOT="+krewRoot, "KREW_NO_UPGRADE_CHECK=1", "HOME="+dir,
			"PATH="+strings.Join([]string{filepath.Join(krewRoot, "bin"), tools, os.Getenv("PATH")}, string(os.PathListSeparator)))
		return cmd
	}

	// Another sha256 in the manifest: krew refuses the archive and installs nothing.
	wrong := filepath.Join(dir, "wrong-sha.yaml")
	if err := os.WriteFile(wrong, renderKrewManifest(t, root, "v0.1.0", map[string]string{filepath.Base(archive): strings.Repeat("ab", 32)}), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("krew", "install", "--manifest="+wrong, "--archive="+archive).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "checksum does not match") {
		t.Errorf("krew installed from a manifest whose sha256 is not the archive's (%v):\n%s", err, out)
	}

	out := run(t, kubectl("krew", "install", "--manifest="+manifest, "--archive="+archive))
	if !strings.Contains(out, `Installed plugin: distillery`) {
		t.Errorf("krew install printed:\n%s", out)
	}
	// krew's receipt (what `kubectl krew list` reads, once an index exists) records the manifest installed.
	if receipt, err := os.ReadFile(filepath.Join(krewRoot, "receipts", "distillery.yaml")); err != nil || !strings.Contains(string(receipt), "version: v0.1.0") {
		t.Errorf("krew's receipt of distillery (%v):\n%s", err, receipt)
	}
	if _, err := os.Stat(filepath.Join(krewRoot, "bin", "kubectl-distillery")); err != nil {
		t.Errorf("krew linked no kubectl-distillery into KREW_ROOT/bin: %v", err)
	}
	sample := filepath.Join(root, "config", "samples", "distillery_v1alpha1_distillationjob.yaml")
	if out := run(t, kubectl("distillery", "validate", sample)); !strings.Contains(out, "is valid") {
		t.Errorf("the krew-installed kubectl distillery validate printed %q", out)
	}
}
