// Command kube-apiserver is Kubernetes' own kube-apiserver, built from k8s.io/kubernetes v1.37.2.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
