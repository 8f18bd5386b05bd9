//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildPlugin builds cmd/distillery as kubectl-distillery into a fresh folder, as plugin_test.go and
// `make cli` do, and returns the folder (to put first on PATH).
func buildPlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-distillery"), "./cmd/distillery")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/distillery: %v\n%s", err, out)
	}
	return dir
}

// kubectlPlugin runs the real kubectl with the plugin's folder first on PATH: `kubectl distillery ARGS`.
// The kubeconfig comes from $KUBECONFIG (kubectl finds a plugin only when no flag precedes its name).
func kubectlPlugin(pluginDir string, args ...string) (string, error) {
	cmd := exec.Command(kubectlBin, append([]string{"distillery"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+pluginDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// liveStatus is what `kubectl distillery status` shows of a running annotation.
type liveStatus struct {
	stage            string
	done, total      int
	tokens, requests int
	cost, perSecond  float64
	eta              string
}

var (
	progressRe  = regexp.MustCompile(`(?m)^Progress:\s+(\d+)/(\d+)\s*$`)
	stageRe     = regexp.MustCompile(`(?m)^Stage:\s+(\S+)`)
	sectionRe   = regexp.MustCompile(`(?m)^([A-Z][A-Za-z]*):\n((?:  .*\n)*)`)
	sectionLine = regexp.MustCompile(`(?m)^  (\S+):\s+(.*?)\s*$`)
)

// parseStatus reads the human output of `kubectl distillery status`: the header lines, and the
// "key: value" lines of the Annotation and Rate sections.
func parseStatus(out string) liveStatus {
	var s liveStatus
	if m := stageRe.FindStringSubmatch(out); m != nil {
		s.stage = m[1]
	}
	if m := progressRe.FindStringSubmatch(out); m != nil {
		s.done, _ = strconv.Atoi(m[1])
		s.total, _ = strconv.Atoi(m[2])
	}
	for _, sec := range sectionRe.FindAllStringSubmatch(out, -1) {
		fields := map[string]string{}
		for _, kv := range sectionLine.FindAllStringSubmatch(sec[2], -1) {
			fields[kv[1]] = kv[2]
		}
		switch sec[1] {
		case "Annotation":
			s.tokens, _ = strconv.Atoi(fields["tokens"])
			s.requests, _ = strconv.Atoi(fields["requests"])
			s.cost, _ = strconv.ParseFloat(fields["cost"], 64)
		case "Rate":
			if fields["unit"] == "inputs" {
				s.perSecond, _ = strconv.ParseFloat(fields["perSecond"], 64)
				s.eta = fields["eta"]
			}
		}
	}
	return s
}

// TestPluginStatusShowsLiveSpendAndETA: while a job annotates (one shard asking the slow teacher one
// input at a time, about a minute in all), the real kubectl runs the plugin, `kubectl distillery status
// NAME`, until its output shows the Annotating stage not yet done, a non-zero spend (tokens, requests and,
// with prices, cost) and a rate in inputs/s with an ETA. The job is deleted once seen: what it would train
// is covered elsewhere.
func TestPluginStatusShowsLiveSpendAndETA(t *testing.T) {
	t.Parallel()
	const job, inputs = "e2e-plugin-status", 150
	plugin := buildPlugin(t)
	start := time.Now()
	startJob(t, jobSpec{name: job, teacher: "teacher-slow", inputs: inputs, concurrency: 1,
		budget: `{maxTokens: 100000000, promptPricePerMillion: "3", completionPricePerMillion: "15"}`})
	var last string
	var seen liveStatus
	eventually(t, minutes(4), "kubectl distillery status to show live spend and an ETA while annotating", func() string {
		out, err := kubectlPlugin(plugin, "status", job, "-n", ns)
		if err != nil {
			t.Fatalf("kubectl distillery status %s: %v\n%s", job, err, out)
		}
		last = out
		s := parseStatus(out)
		switch {
		case s.stage == "-" || s.stage == "Pending" || (s.stage == "Annotating" && s.perSecond == 0):
			return "waiting for a rate:\n" + out // "-": no status written yet
		case s.stage != "Annotating":
			t.Fatalf("the job left Annotating (stage %q) before status showed its rate and ETA; last output:\n%s", s.stage, out)
		}
		seen = s
		return ""
	})
	t.Logf("seen after %s:\n%s", time.Since(start).Round(time.Second), last)
	if seen.total != inputs || seen.done >= seen.total {
		t.Errorf("progress %d/%d: want fewer than %d of %d inputs done while annotating", seen.done, seen.total, inputs, inputs)
	}
	if seen.tokens <= 0 || seen.requests <= 0 || seen.cost <= 0 {
		t.Errorf("spend tokens=%d requests=%d cost=%v: want all above zero while annotating", seen.tokens, seen.requests, seen.cost)
	}
	if d, err := time.ParseDuration(seen.eta); err != nil || d <= 0 {
		t.Errorf("eta %q: want a duration above zero while annotating (rate %v inputs/s)", seen.eta, seen.perSecond)
	}
	if !strings.Contains(last, "Name:") || !strings.Contains(last, job) {
		t.Errorf("status output does not name the job:\n%s", last)
	}
}
