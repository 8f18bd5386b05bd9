// Command kube-proxy is Kubernetes' own kube-proxy, built from k8s.io/kubernetes v1.37.2.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() { os.Exit(cli.Run(app.NewProxyCommand())) }
