// Package cli is the `distillery` command (cmd/distillery), also installed as the kubectl plugin
// `kubectl distillery`: run a job on this machine, serve its model, validate and estimate a job offline,
// and show a job's status and report from a cluster. The commands are cobra commands; the work lives in
// internal/localrun, internal/admission, internal/annotator/estimate and internal/reportview.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// IO are the command's streams; Terminal says whether Out is a terminal (progress bars redraw in place).
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	Terminal bool
}

// StandardIO is the process's own streams.
func StandardIO() IO {
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Terminal: term.IsTerminal(int(os.Stdout.Fd()))}
}

// NewRoot is the distillery command. invokedAs is the program's name (os.Args[0]): as kubectl-distillery
// its help says "kubectl distillery".
func NewRoot(invokedAs string, streams IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "distillery",
		Short: "Distil a teacher LLM into a small student: run a job on this machine, or inspect one in a cluster",
		Long: `distillery runs a DistillationJob's whole pipeline on this machine without a cluster, from the same
YAML (run, serve), checks a job before a cluster or a teacher sees it (validate, estimate), and shows a
job running in a cluster (status, report; also as the kubectl plugin "kubectl distillery").`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if strings.HasPrefix(filepath.Base(invokedAs), "kubectl-") {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl distillery"}
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.AddCommand(
		newRunCommand(streams),
		newServeCommand(streams),
		newValidateCommand(streams),
		newEstimateCommand(streams),
		newStatusCommand(streams),
		newReportCommand(streams),
	)
	return root
}

// Main runs the command line and returns the exit code. The first SIGINT or SIGTERM cancels the
// command's context (a run stops and keeps its files); a second one exits at once.
func Main(args []string, streams IO) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	go func() {
		<-signals
		fmt.Fprintln(streams.Err, "\nstopping (again to quit at once) ...")
		cancel()
		<-signals
		os.Exit(130)
	}()
	root := NewRoot(args[0], streams)
	root.SetArgs(args[1:])
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(streams.Err, "error:", err)
	var exit *exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	return 1
}

// exitError carries an exit code other than 1 (2 for refused input, 130 for an interrupted run).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
