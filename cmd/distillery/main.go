// Command distillery runs a DistillationJob on this machine without a cluster (run, serve), checks one
// offline (validate, estimate) and shows one in a cluster (status, report). Installed as
// kubectl-distillery it is the kubectl plugin "kubectl distillery". See internal/cli.
package main

import (
	"os"

	"github.com/distillery-dev/distillery/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args, cli.StandardIO())) }
