// Command kube-controller-manager is Kubernetes' own kube-controller-manager, built from k8s.io/kubernetes v1.37.2.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
