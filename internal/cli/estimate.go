package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/distillery-dev/distillery/internal/annotator/estimate"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/localrun"
)

func newEstimateCommand(streams IO) *cobra.Command {
	o := localrun.Options{OutputDir: "distillery-runs"}
	var sample int
	var seed int64
	var seedSet bool
	var prices estimate.Prices
	var output string
	cmd := &cobra.Command{
		Use:   "estimate JOB.yaml",
		Short: "Ask the teacher about a small sample and project the annotation's tokens, cost and time",
		Long: `estimate sends the job's real prompt for a small seeded sample of its dataset (20 inputs by default) to
the teacher, judges the answers as the annotator would, and projects what annotating the whole dataset
(or spec.dataset.maxExamples of it) and its eval split (spec.dataset.eval, which is annotated too) takes:
tokens per input (mean and p95), total tokens, the cost at the given prices, the time at the configured
shards, concurrency and rate limit, and the share of answers that would be rejected, so a broken prompt
is caught for the price of the sample, which it also shows. Data references resolve
as in "distillery run" (--data). Prices per million tokens come from the flags, else from
spec.teacher.budget (promptPricePerMillion, completionPricePerMillion).`,
		Example: `  distillery estimate job.yaml --data ./data --prompt-price 0.15 --completion-price 0.60
  distillery estimate job.yaml --data ./data --sample 50 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("-o %q: use json (or nothing for a table)", output)
			}
			o.JobFile = args[0]
			plan, err := localrun.NewPlan(cmd.Context(), o)
			if err != nil {
				return err
			}
			prices = pricesFor(prices, plan.Annotate.Budget)
			if !seedSet {
				seed = plan.Annotate.Dataset.Seed
			}
			e, err := estimate.Run(cmd.Context(), estimate.Options{
				Config: plan.Annotate, Sample: sample, Seed: seed, APIKey: plan.APIKey, Prices: prices,
			})
			if err != nil {
				return err
			}
			if output == "json" {
				b, err := json.MarshalIndent(struct {
					Job    string          `json:"job"`
					Seed   int64           `json:"seed"`
					Prices estimate.Prices `json:"prices"`
					estimate.Estimate
				}{plan.Job.Name, seed, prices, e}, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(streams.Out, "%s\n", b)
				return err
			}
			writeEstimate(streams.Out, plan.Job.Name, seed, prices, plan.Annotate.Shards, plan.Annotate.Teacher.MaxConcurrency, e)
			if b := plan.Annotate.Budget; b != nil && b.Capped() {
				writeBudgetCheck(streams.Out, b.BudgetCaps, e, plan.Job.Spec.Annotation.Estimate != nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data", ".", "folder the job's ConfigMap (DIR/name/key) and PVC (DIR/claimName/path) references resolve in")
	f.StringVar(&o.TeacherEndpoint, "teacher-endpoint", "", "use this OpenAI-compatible base URL instead of spec.teacher.endpoint")
	f.IntVar(&sample, "sample", estimate.DefaultSample, "how many inputs to ask about")
	f.Int64Var(&seed, "seed", 0, "seed of the sample (default: spec.training.seed, so the sample is part of a maxExamples job's)")
	f.Float64Var(&prices.PromptPerMillion, "prompt-price", 0, "price per million prompt tokens")
	f.Float64Var(&prices.CompletionPerMillion, "completion-price", 0, "price per million completion tokens")
	f.StringVarP(&output, "output", "o", "", "json for the estimate as JSON")
	cmd.PreRun = func(cmd *cobra.Command, _ []string) { seedSet = cmd.Flags().Changed("seed") }
	return cmd
}

// pricesFor are the prices of the flags, else spec.teacher.budget's.
func pricesFor(flags estimate.Prices, b *contract.Budget) estimate.Prices {
	if flags.Set() || b == nil {
		return flags
	}
	return estimate.Prices{PromptPerMillion: b.PromptPricePerMillion, CompletionPerMillion: b.CompletionPricePerMillion}
}

func writeEstimate(w io.Writer, job string, seed int64, prices estimate.Prices, shards, concurrency int, e estimate.Estimate) {
	fmt.Fprintf(w, "Estimate for %s: %d of %d inputs asked (seed %d), %d answered\n\n", job, e.Sampled, e.Inputs, seed, e.Answered)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PER INPUT\tMEAN\tP95")
	row := func(name string, s estimate.Stats, format string) {
		fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\n", name, s.Mean, s.P95)
	}
	row("prompt tokens", e.PromptTokens, "%.1f")
	row("completion tokens", e.CompletionTokens, "%.1f")
	row("tokens", e.Tokens, "%.1f")
	row("latency (s)", e.LatencySeconds, "%.2f")
	tw.Flush()

	fmt.Fprintf(w, "\nAnswers: %d ok, %d unparseable, %d label mismatch, %d teacher errors: parse rate %.1f%%, reject rate %.1f%%\n",
		e.Statuses["ok"], e.Statuses["unparseable"], e.Statuses["label_mismatch"], e.Statuses["teacher_error"], 100*e.ParseRate, 100*e.RejectRate)
	for _, r := range e.Rejected {
		fmt.Fprintf(w, "  %s %s: %s\n", r.ID, r.Status, r.Error)
	}

	fmt.Fprintf(w, "\nThe sample spent %d tokens (%d prompt + %d completion) in %d requests",
		e.Spend.Tokens(), e.Spend.PromptTokens, e.Spend.CompletionTokens, e.Spend.Requests)
	if prices.Set() {
		fmt.Fprintf(w, ", cost %.4f", (float64(e.Spend.PromptTokens)*prices.PromptPerMillion+float64(e.Spend.CompletionTokens)*prices.CompletionPerMillion)/1e6)
	}
	fmt.Fprintln(w)

	p := e.Projected
	eval := ""
	if e.EvalInputs > 0 {
		eval = fmt.Sprintf(", %d of them the eval split's", e.EvalInputs)
	}
	fmt.Fprintf(w, "\nProjected for %d inputs (one request each%s; retries and cache hits aside):\n", e.Inputs, eval)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  tokens\t%d\t(%d prompt + %d completion)\n", p.Tokens, p.PromptTokens, p.CompletionTokens)
	if p.Cost != nil {
		fmt.Fprintf(tw, "  cost\t%.4f\t(at %g per million prompt and %g per million completion tokens)\n", *p.Cost, prices.PromptPerMillion, prices.CompletionPerMillion)
	} else {
		fmt.Fprintf(tw, "  cost\t-\t(give --prompt-price and --completion-price per million tokens)\n")
	}
	if p.Seconds > 0 {
		fmt.Fprintf(tw, "  time\t%s\t(%.1f requests/s: %d shards x %d concurrent, limited by %s)\n",
			(time.Duration(p.Seconds * float64(time.Second))).Round(time.Second), p.RequestsPerSecond, shards, concurrency, p.LimitedBy)
	}
	tw.Flush()
}

// writeBudgetCheck compares the projection with spec.teacher.budget's caps: the share of each cap the
// whole annotation would use, and about how many inputs the tightest cap pays for. withSample: the job runs
// its own estimate first (spec.annotation.estimate), whose sample the budget pays too; this sample's spend
// stands for it.
func writeBudgetCheck(w io.Writer, caps contract.BudgetCaps, e estimate.Estimate, withSample bool) {
	p := e.Projected
	spend := contract.Spend{Requests: int64(p.Requests), PromptTokens: p.PromptTokens, CompletionTokens: p.CompletionTokens}
	title := "\nAgainst spec.teacher.budget:"
	if withSample {
		spend = spend.Add(e.Spend)
		title = "\nAgainst spec.teacher.budget (the projection plus the job's own estimate sample, spec.annotation.estimate):"
	}
	share := 0.0
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	check := func(name, format string, used, limit float64) {
		if limit <= 0 {
			return
		}
		share = max(share, used/limit)
		fmt.Fprintf(tw, "  %s\t"+format+" of "+format+"\t(%.0f%%)\n", name, used, limit, 100*used/limit)
	}
	check("tokens", "%.0f", float64(spend.Tokens()), float64(caps.MaxTokens))
	check("requests", "%.0f", float64(spend.Requests), float64(caps.MaxRequests))
	check("cost", "%.4f", caps.Cost(spend), caps.MaxCost)
	tw.Flush()
	if share > 1 && e.Inputs > 0 {
		fmt.Fprintf(w, "  the budget pays for about %d of the %d inputs: the job would stop with BudgetExceeded (or train on those, with onExceeded: Train)\n",
			int(float64(e.Inputs)/share), e.Inputs)
	}
}
