//go:build tools

// Package tools pins the code generators this repository builds into bin/.
package tools

import (
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
