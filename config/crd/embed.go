// Package crd embeds the generated CustomResourceDefinitions (bases/, from `make manifests`), so that the
// tools that apply the API's own schema offline (`distillery validate`, `distillery run`) carry exactly
// what the cluster installs.
package crd

import _ "embed"

// DistillationJob is the DistillationJob CRD.
//
//go:embed bases/distillery.dev_distillationjobs.yaml
var DistillationJob []byte

// StudentModel is the StudentModel CRD.
//
//go:embed bases/distillery.dev_studentmodels.yaml
var StudentModel []byte
