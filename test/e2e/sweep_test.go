//go:build e2e

package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// sweepSample is the sweep users copy: 2 data fractions x 2 modes on the demo task (config/samples).
var sweepSample = filepath.Join(root, "config", "samples", "distillery_v1alpha1_distillationjob_sweep.yaml")

const sweepJob = "compare-numbers-sweep"

// TestSweepSample applies the sweep sample unchanged: it annotates once, trains its 4 points, reaches
// Succeeded with 4 rows, writes report.json and report.svg into its report ConfigMap, and
// `kubectl get sm` shows the served point's accuracy.
func TestSweepSample(t *testing.T) {
	t.Parallel()
	mustKubectl(t, "apply", "-f", sweepSample)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := kubectl("get", "dj,jobs,pods,sm", "-l", "distillery.dev/job="+sweepJob, "-o", "wide")
			desc, _ := kubectl("describe", "dj", sweepJob)
			t.Logf("state at failure:\n%s\n%s", out, desc)
		}
		_, _ = kubectl("delete", "dj", sweepJob, "--ignore-not-found", "--wait=false")
		_, _ = kubectl("delete", "sm", sweepJob, "--ignore-not-found", "--wait=false")
	})
	waitStage(t, sweepJob, "Succeeded", 30)

	var dj struct {
		Status struct {
			Experiments []struct {
				Index    int
				Fraction string
				Mode     string
				State    string
				Accuracy string
				Served   bool
				Message  string
			}
			ServedExperiment *int
			Evaluation       struct{ Accuracy, TeacherAccuracy string }
			Conditions       []struct{ Type, Status, Reason, Message string }
		}
	}
	getJSON(t, &dj, "dj", sweepJob)
	rows := dj.Status.Experiments
	if len(rows) != 4 {
		t.Fatalf("%d rows in status.experiments, want 4 (2 fractions x 2 modes): %+v", len(rows), rows)
	}
	served := ""
	for _, r := range rows {
		if r.State != "Succeeded" || r.Accuracy == "" {
			t.Errorf("point %d (%s, %s): %s, accuracy %q: %s", r.Index, r.Fraction, r.Mode, r.State, r.Accuracy, r.Message)
		}
		if r.Served {
			served = r.Accuracy
		}
		t.Logf("point %d: fraction %s, %s: accuracy %s", r.Index, r.Fraction, r.Mode, r.Accuracy)
	}
	if dj.Status.ServedExperiment == nil || served == "" || dj.Status.Evaluation.Accuracy != served {
		t.Errorf("served point %v with accuracy %q; status.evaluation.accuracy %q", dj.Status.ServedExperiment, served, dj.Status.Evaluation.Accuracy)
	}
	if dj.Status.Evaluation.TeacherAccuracy == "" {
		t.Errorf("no teacher accuracy beside the student's: %+v", dj.Status.Evaluation)
	}
	if s, reason, msg := conditionReason(t, sweepJob, "Reported"); s != "True" {
		t.Errorf("Reported condition %s/%s: %s", s, reason, msg)
	}

	// The report: the points table as JSON, and a figure.
	reportJSON := jsonpath(t, "configmap", sweepJob+"-report", `.data.report\.json`)
	var report struct {
		Points []json.RawMessage `json:"points"`
	}
	if err := json.Unmarshal([]byte(reportJSON), &report); err != nil || len(report.Points) != 4 {
		t.Errorf("report.json (%v) has %d points, want 4: %.300s", err, len(report.Points), reportJSON)
	}
	if svg := jsonpath(t, "configmap", sweepJob+"-report", `.data.report\.svg`); !strings.Contains(svg, "<svg") {
		t.Errorf("report.svg is not an SVG: %.200q", svg)
	}

	// `kubectl get sm` shows the served point's accuracy (and the teacher's beside it).
	cells := tableCells(t, mustKubectl(t, "get", "sm", sweepJob))
	if cells["ACCURACY"] != served || cells["TEACHER"] != dj.Status.Evaluation.TeacherAccuracy {
		t.Errorf("kubectl get sm: %v, want ACCURACY %s (the served point's) and TEACHER %s", cells, served, dj.Status.Evaluation.TeacherAccuracy)
	}
}

// tableCells reads the one row of kubectl's table output by column header. Columns are separated by runs
// of spaces; empty cells are not expected in the columns read.
func tableCells(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row, got:\n%s", out)
	}
	header, row := lines[0], lines[1]
	// Each column starts where its header does (kubectl pads every cell to its column's width).
	var starts []int
	fields := strings.Fields(header)
	for offset, i := 0, 0; i < len(fields); i++ {
		at := offset + strings.Index(header[offset:], fields[i])
		starts, offset = append(starts, at), at+len(fields[i])
	}
	cells := map[string]string{}
	for i, name := range fields {
		end := len(row)
		if i+1 < len(fields) {
			end = min(starts[i+1], len(row))
		}
		if starts[i] < end {
			cells[name] = strings.TrimSpace(row[starts[i]:end])
		}
	}
	return cells
}
