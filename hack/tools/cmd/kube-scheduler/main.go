// Command kube-scheduler is Kubernetes' own kube-scheduler, built from k8s.io/kubernetes v1.37.2.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() { os.Exit(cli.Run(app.NewSchedulerCommand())) }
