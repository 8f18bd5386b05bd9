package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/distillery-dev/distillery/internal/reportview"
)

// Keys of the report ConfigMap <job>-report (docs/workloads.md).
const (
	reportJSONKey = "report.json"
	reportSVGKey  = "report.svg"
)

func reportConfigMapName(job string) string { return job + "-report" }

func newReportCommand(streams IO) *cobra.Command {
	cluster := newClusterFlags()
	var plot string
	cmd := &cobra.Command{
		Use:   "report NAME",
		Short: "Print a DistillationJob's evaluation (and sweep) tables; write its report plot to a file",
		Long: `report reads the job's report (ConfigMap <NAME>-report, keys report.json and report.svg, written when
training ends) from the cluster of the current kubeconfig and prints the eval table, the per-class table
and, for a sweep, one row per point. -o FILE.svg writes the report's plot. Before the report exists it
prints the evaluation in the job's status, if any.`,
		Example: `  kubectl distillery report compare-numbers
  kubectl distillery report compare-numbers -o report.svg`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job := args[0]
			dyn, kube, ns, err := cluster.clients()
			if err != nil {
				return err
			}
			cm, err := kube.CoreV1().ConfigMaps(ns).Get(cmd.Context(), reportConfigMapName(job), metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && cm.Data[reportJSONKey] == "") {
				return reportFromStatus(cmd, streams, dyn, ns, job, plot)
			}
			if err != nil {
				return err
			}
			var doc map[string]any
			if err := json.Unmarshal([]byte(cm.Data[reportJSONKey]), &doc); err != nil {
				return fmt.Errorf("ConfigMap %s key %s is not JSON: %w", cm.Name, reportJSONKey, err)
			}
			reportview.Write(streams.Out, doc)
			if plot == "" {
				return nil
			}
			svg, ok := cm.Data[reportSVGKey]
			if !ok || svg == "" {
				return fmt.Errorf("ConfigMap %s has no %s (a report too large for a ConfigMap keeps its plot only in the job's folder)", cm.Name, reportSVGKey)
			}
			if err := os.WriteFile(plot, []byte(svg), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(streams.Out, "\nplot: %s\n", plot)
			return nil
		},
	}
	cluster.bind(cmd.Flags())
	cmd.Flags().StringVarP(&plot, "output", "o", "", "write the report's plot (SVG) to this file")
	return cmd
}

// reportFromStatus prints the evaluation the operator put in the job's status, for a job whose report
// ConfigMap is not written (yet).
func reportFromStatus(cmd *cobra.Command, streams IO, dyn dynamic.Interface, ns, job, plot string) error {
	dj, err := dyn.Resource(jobsResource).Namespace(ns).Get(cmd.Context(), job, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("no DistillationJob %q in namespace %q", job, ns)
	}
	if err != nil {
		return err
	}
	eval, _, _ := unstructured.NestedMap(dj.Object, "status", "evaluation")
	if len(eval) == 0 {
		stage, _, _ := unstructured.NestedString(dj.Object, "status", "stage")
		return fmt.Errorf("DistillationJob %s has no report yet (stage %s): ConfigMap %s is written when training ends",
			job, orDash(stage), reportConfigMapName(job))
	}
	doc := map[string]any{"evaluation": eval}
	if points, ok, _ := unstructured.NestedSlice(dj.Object, "status", "experiments"); ok {
		doc["points"] = points
	}
	reportview.Write(streams.Out, doc)
	if plot != "" {
		return fmt.Errorf("ConfigMap %s holds no report, so there is no plot to write (the table above is from the job's status)", reportConfigMapName(job))
	}
	return nil
}
