// Package reportview prints a job's evaluation as tables for a terminal: the eval table, the per-class
// table and the sweep table. It reads the report documents generically (the trainer's metrics.json, the
// report ConfigMap's report.json), so fields added to them later show up without a change here.
package reportview

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// evaluationOrder is the order of the known evaluation fields; others follow, sorted.
var evaluationOrder = []string{
	"metric", "examples", "studentAccuracy", "accuracy", "teacherAccuracy", "agreement", "exactMatch", "tokenF1", "bestStep",
}

// evaluationNames are the row names of the known fields.
var evaluationNames = map[string]string{
	"metric": "metric", "examples": "eval examples", "studentAccuracy": "student accuracy", "accuracy": "student accuracy",
	"teacherAccuracy": "teacher accuracy", "agreement": "student-teacher agreement", "exactMatch": "exact match",
	"tokenF1": "token F1", "bestStep": "best step", "evalAccuracy": "student accuracy", "evalExamples": "eval examples",
}

// Evaluation is the document's evaluation: its "evaluation" object, else the top-level evalAccuracy and
// evalExamples of a trainer summary; nil when it has none.
func Evaluation(doc map[string]any) map[string]any {
	if e, ok := doc["evaluation"].(map[string]any); ok && len(e) > 0 {
		return e
	}
	e := map[string]any{}
	for _, k := range []string{"evalAccuracy", "evalExamples"} {
		if v, ok := doc[k]; ok {
			e[k] = v
		}
	}
	if len(e) == 0 {
		return nil
	}
	return e
}

// Write prints every table the document has: evaluation, per class, and the sweep's points when there
// is more than one.
func Write(w io.Writer, doc map[string]any) {
	if e := Evaluation(doc); e != nil {
		WriteEvaluation(w, e)
	}
	if pc := perClassRows(doc["perClass"]); len(pc) > 0 {
		fmt.Fprintln(w)
		writeTable(w, pc)
	}
	if points, ok := doc["points"].([]any); ok && len(points) > 1 {
		fmt.Fprintln(w)
		WritePoints(w, points)
	}
}

// WriteEvaluation prints the eval table: one row per field, known fields first.
func WriteEvaluation(w io.Writer, e map[string]any) {
	rows := [][]string{{"EVALUATION", "VALUE"}}
	for _, k := range orderedKeys(e, evaluationOrder) {
		if e[k] == nil {
			continue
		}
		name := evaluationNames[k]
		if name == "" {
			name = k
		}
		rows = append(rows, []string{name, Format(e[k])})
	}
	writeTable(w, rows)
}

// pointColumns is the order of the known sweep columns; others follow, sorted.
var pointColumns = []string{
	"index", "fraction", "mode", "rationaleWeight", "baseModel", "seed", "state", "accuracy", "studentAccuracy",
	"teacherAccuracy", "agreement", "steps", "bestStep", "wallSeconds", "served", "message",
}

// WritePoints prints the sweep table: one row per point, a column per scalar field any point has.
func WritePoints(w io.Writer, points []any) {
	keys := map[string]any{}
	for _, p := range points {
		if m, ok := p.(map[string]any); ok {
			for k, v := range m {
				if isScalar(v) {
					keys[k] = v
				}
			}
		}
	}
	cols := orderedKeys(keys, pointColumns)
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = strings.ToUpper(c)
	}
	rows := [][]string{header}
	for _, p := range points {
		m, _ := p.(map[string]any)
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = Format(m[c])
		}
		rows = append(rows, row)
	}
	writeTable(w, rows)
}

// perClassRows reads per-class metrics as {label: {precision, recall, f1, support}} or as a list of
// objects with a "label".
func perClassRows(v any) [][]string {
	byLabel := map[string]map[string]any{}
	switch pc := v.(type) {
	case map[string]any:
		for label, m := range pc {
			if mm, ok := m.(map[string]any); ok {
				byLabel[label] = mm
			}
		}
	case []any:
		for _, item := range pc {
			if mm, ok := item.(map[string]any); ok {
				byLabel[Format(mm["label"])] = mm
			}
		}
	}
	if len(byLabel) == 0 {
		return nil
	}
	metrics := map[string]any{}
	for _, m := range byLabel {
		for k, v := range m {
			if k != "label" && isScalar(v) {
				metrics[k] = v
			}
		}
	}
	cols := orderedKeys(metrics, []string{"precision", "recall", "f1", "support"})
	header := []string{"CLASS"}
	for _, c := range cols {
		header = append(header, strings.ToUpper(c))
	}
	rows := [][]string{header}
	labels := make([]string, 0, len(byLabel))
	for l := range byLabel {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		row := []string{l}
		for _, c := range cols {
			row = append(row, Format(byLabel[l][c]))
		}
		rows = append(rows, row)
	}
	return rows
}

// Format prints a JSON value for a table: whole numbers as integers, others with 4 decimals, absent as
// "-".
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', 4, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

func isScalar(v any) bool {
	switch v.(type) {
	case nil, float64, int64, int, string, bool:
		return true
	}
	return false
}

func orderedKeys(m map[string]any, known []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range known {
		if _, ok := m[k]; ok {
			out = append(out, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func writeTable(w io.Writer, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}
