package annotator

import (
	"time"

	"github.com/go-logr/logr"

	"github.com/distillery-dev/distillery/internal/annotator/budget"
	"github.com/distillery-dev/distillery/internal/annotator/progress"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Options is one shard's run: the config and what the command line overrides.
type Options struct {
	Config contract.AnnotateConfig
	Shard  int
	// DatasetPath, EvalPath, OutputDir and CacheDir default to the config's; an empty CacheDir disables
	// the cache.
	DatasetPath string
	EvalPath    string
	OutputDir   string
	CacheDir    string
	// Ledger is the shared book of the teacher budget (config "budget"); nil takes the file
	// contract.BudgetLedgerFileName in the job folder (or the output folder), which serves shards that
	// run on one machine.
	Ledger budget.Ledger
	// Strict fails the shard on the first bad dataset line instead of counting and skipping it.
	Strict bool
	// APIKey is the teacher's key, read from the environment by the caller.
	APIKey string
	// Progress receives progress reports every ProgressInterval; nil logs them.
	Progress         progress.Reporter
	ProgressInterval time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the retry backoff; zero takes the teacher package defaults.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// UnreachableAfter is how many connection failures before any answer, or inputs failing every retry
	// in a row, make the shard fail; zero takes the teacher package default.
	UnreachableAfter int
	// SyncInterval is how often the shard file is fsynced.
	SyncInterval time.Duration
	Log          logr.Logger
}

func (o *Options) setDefaults() {
	if o.DatasetPath == "" {
		o.DatasetPath = o.Config.Dataset.Path
	}
	if o.EvalPath == "" {
		o.EvalPath = o.Config.Dataset.EvalPath
	}
	if o.OutputDir == "" {
		o.OutputDir = o.Config.Output.Dir
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = progress.DefaultInterval
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 5 * time.Second
	}
	if o.Progress == nil {
		o.Progress = progress.LogReporter{Log: o.Log}
	}
	if o.Config.Teacher.MaxConcurrency <= 0 {
		o.Config.Teacher.MaxConcurrency = 1
	}
}
