package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/distillery-dev/distillery/internal/admission"
)

func newValidateCommand(streams IO) *cobra.Command {
	var namespace, output string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check DistillationJobs and StudentModels offline with the CRDs' own schema and CEL rules",
		Long: `validate admits every DistillationJob and StudentModel in the files as the cluster's apiserver would
on kubectl apply, without a cluster: unknown fields are refused, defaults filled in, and the CRDs' OpenAPI
schema and CEL rules (x-kubernetes-validations) checked. A refusal is printed as kubectl apply prints it.
The CRDs are those this binary was built with.`,
		Example: `  distillery validate config/samples/distillery_v1alpha1_distillationjob.yaml
  distillery validate -o yaml job.yaml     # the job as stored, defaults filled in`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if output != "" && output != "yaml" && output != "json" {
				return fmt.Errorf("-o %q: use yaml or json", output)
			}
			set, err := admission.Distillery()
			if err != nil {
				return err
			}
			bad, total := 0, 0
			for _, file := range files {
				data, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				docs, err := set.CreateAll(cmd.Context(), data, namespace)
				if err != nil {
					fmt.Fprintln(streams.Out, admission.KubectlMessage(err, file))
					bad++
				}
				for _, d := range docs {
					total++
					if d.Err != nil {
						bad++
						fmt.Fprintln(streams.Out, admission.KubectlMessage(d.Err, file))
						continue
					}
					if err := printValid(streams, file, d, output); err != nil {
						return err
					}
				}
			}
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d objects would be refused", bad, total)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of objects that name none (kubectl takes it from the context)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "print each valid object as stored, defaults filled in: yaml or json")
	return cmd
}

func printValid(streams IO, file string, d admission.Document, output string) error {
	var b []byte
	var err error
	switch output {
	case "":
		_, err = fmt.Fprintf(streams.Out, "%s: %s is valid\n", file, d.Describe())
		return err
	case "json":
		b, err = json.MarshalIndent(d.Object.Object, "", "  ")
		b = append(b, '\n')
	default:
		b, err = yaml.Marshal(d.Object.Object)
		b = append([]byte("---\n"), b...)
	}
	if err != nil {
		return err
	}
	_, err = streams.Out.Write(b)
	return err
}
