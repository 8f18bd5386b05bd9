// Command kubelet is Kubernetes' own kubelet, built from k8s.io/kubernetes v1.37.2.
package main

import (
	"os"

	"context"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() { os.Exit(cli.Run(app.NewKubeletCommand(context.Background()))) }
