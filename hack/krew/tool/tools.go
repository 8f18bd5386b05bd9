//go:build tools

// Package tool pins the krew version the krew manifest is tested with.
package tool

import (
	_ "sigs.k8s.io/krew/cmd/krew"
)
