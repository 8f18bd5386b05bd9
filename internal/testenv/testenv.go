// Package testenv starts envtest, a real kube-apiserver and etcd, with the project's CRDs installed, for the
// test suites outside controllers/ that need one.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Root is the repository's root folder.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Assets is the folder of etcd, kube-apiserver and kubectl: $KUBEBUILDER_ASSETS, which make sets, else bin/k8s.
func Assets() string {
	if a := os.Getenv("KUBEBUILDER_ASSETS"); a != "" {
		return a
	}
	return filepath.Join(Root(), "bin", "k8s")
}

// Start starts an apiserver with config/crd/bases installed; the caller stops it with env.Stop().
func Start() (*envtest.Environment, *rest.Config, error) {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: Assets(),
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting envtest (assets in %s): %w", Assets(), err)
	}
	return env, cfg, nil
}
