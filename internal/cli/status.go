package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/distillery-dev/distillery/internal/reportview"
)

func newStatusCommand(streams IO) *cobra.Command {
	cluster := newClusterFlags()
	var output string
	var watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a DistillationJob's stages, progress, spend and ETA from the cluster",
		Long: `status reads the DistillationJob from the cluster of the current kubeconfig and shows its stage and
progress, then every part of its status (annotation, training, evaluation, and whatever else the operator
reports, such as spend, rate and ETA), then its conditions.`,
		Example: `  kubectl distillery status compare-numbers
  kubectl distillery status compare-numbers -n team-a --watch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "yaml" && output != "json" {
				return fmt.Errorf("-o %q: use yaml or json", output)
			}
			dyn, _, ns, err := cluster.clients()
			if err != nil {
				return err
			}
			for {
				dj, err := dyn.Resource(jobsResource).Namespace(ns).Get(cmd.Context(), args[0], metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("no DistillationJob %q in namespace %q", args[0], ns)
				}
				if err != nil {
					return err
				}
				if err := printStatus(streams.Out, dj, output, time.Now()); err != nil {
					return err
				}
				if !watch || finished(dj) {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
					fmt.Fprintln(streams.Out)
				}
			}
		},
	}
	cluster.bind(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "", "print the status as yaml or json instead")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print it again every --interval until the job succeeds or fails")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "how often --watch prints")
	return cmd
}

func finished(dj *unstructured.Unstructured) bool {
	stage, _, _ := unstructured.NestedString(dj.Object, "status", "stage")
	return stage == "Succeeded" || stage == "Failed"
}

// statusOrder puts the parts of the status a user looks for first; the rest follow, sorted.
var statusOrder = []string{"annotation", "training", "evaluation", "experiments"}

// statusSkip are the parts printed elsewhere (or not at all).
var statusSkip = map[string]bool{"conditions": true, "stage": true, "progress": true, "observedGeneration": true,
	"startTime": true, "completionTime": true, "studentModel": true}

// printStatus shows the job's status generically: every field the operator writes is shown, those
// added after this binary was built too.
func printStatus(w io.Writer, dj *unstructured.Unstructured, output string, now time.Time) error {
	status, _, _ := unstructured.NestedMap(dj.Object, "status")
	switch output {
	case "json":
		b, err := json.MarshalIndent(status, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(status)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", dj.GetName())
	fmt.Fprintf(tw, "Namespace:\t%s\n", dj.GetNamespace())
	fmt.Fprintf(tw, "Stage:\t%s\n", orDash(status["stage"]))
	if p, ok := status["progress"]; ok {
		if m, isMap := p.(map[string]any); isMap {
			fmt.Fprintf(tw, "Progress:\t%s\n", inline(m))
		} else {
			fmt.Fprintf(tw, "Progress:\t%s\n", reportview.Format(p))
		}
	}
	for _, k := range []string{"startTime", "completionTime"} {
		if t, ok := status[k].(string); ok {
			fmt.Fprintf(tw, "%s:\t%s\n", map[string]string{"startTime": "Started", "completionTime": "Completed"}[k], since(t, now))
		}
	}
	if sm, ok := status["studentModel"].(string); ok {
		fmt.Fprintf(tw, "StudentModel:\t%s\n", sm)
	}
	tw.Flush()
	for _, k := range sections(status) {
		fmt.Fprintf(w, "%s:\n", title(k))
		writeSection(w, status[k])
	}
	conds, _, _ := unstructured.NestedSlice(dj.Object, "status", "conditions")
	if len(conds) > 0 {
		fmt.Fprintln(w, "Conditions:")
		ct := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(ct, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			age := "-"
			if t, ok := m["lastTransitionTime"].(string); ok {
				if parsed, err := time.Parse(time.RFC3339, t); err == nil {
					age = duration.HumanDuration(now.Sub(parsed))
				}
			}
			fmt.Fprintf(ct, "  %s\t%s\t%s\t%s\t%s\n", orDash(m["type"]), orDash(m["status"]), orDash(m["reason"]), age, orDash(m["message"]))
		}
		ct.Flush()
	}
	return nil
}

// sections are the status's other parts, in statusOrder then by name.
func sections(status map[string]any) []string {
	var known, rest []string
	for _, k := range statusOrder {
		if _, ok := status[k]; ok {
			known = append(known, k)
		}
	}
	for k := range status {
		if !statusSkip[k] && !slices.Contains(statusOrder, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(known, rest...)
}

// writeSection prints a part of the status: an object as "key: value" lines (nested objects with dotted
// keys), a list of objects as a table.
func writeSection(w io.Writer, v any) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	switch x := v.(type) {
	case map[string]any:
		for _, kv := range flatten("", x) {
			fmt.Fprintf(tw, "  %s:\t%s\n", kv[0], kv[1])
		}
	case []any:
		tw.Flush()
		reportview.WritePoints(indent{w}, x)
	default:
		fmt.Fprintf(tw, "  %s\n", reportview.Format(x))
	}
}

// flatten lists an object's scalar leaves as dotted keys, sorted.
func flatten(prefix string, m map[string]any) [][2]string {
	var out [][2]string
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			out = append(out, flatten(key, sub)...)
			continue
		}
		out = append(out, [2]string{key, reportview.Format(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// inline is a small object on one line: "a=1 b=2".
func inline(m map[string]any) string {
	var parts []string
	for _, kv := range flatten("", m) {
		parts = append(parts, kv[0]+"="+kv[1])
	}
	return strings.Join(parts, " ")
}

func since(t string, now time.Time) string {
	parsed, err := time.Parse(time.RFC3339, t)
	if err != nil {
		return t
	}
	return fmt.Sprintf("%s (%s ago)", t, duration.HumanDuration(now.Sub(parsed)))
}

func title(k string) string { return strings.ToUpper(k[:1]) + k[1:] }

func orDash(v any) string {
	if v == nil {
		return "-"
	}
	return reportview.Format(v)
}

// indent prefixes every line written with two spaces.
type indent struct{ w io.Writer }

func (i indent) Write(b []byte) (int, error) {
	lines := strings.SplitAfter(string(b), "\n")
	for _, l := range lines {
		if l == "" {
			continue
		}
		if _, err := io.WriteString(i.w, "  "+l); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
