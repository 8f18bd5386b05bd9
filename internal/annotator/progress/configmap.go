package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/distillery-dev/distillery/internal/annotator/kubeapi"
	"github.com/distillery-dev/distillery/internal/contract"
)

// ServiceAccountDir is where Kubernetes mounts the pod's service account token, CA and namespace.
const ServiceAccountDir = kubeapi.ServiceAccountDir

// ConfigMapReporter JSON-merge-patches one key of the job's progress ConfigMap with the pod's service
// account, whose Role allows only get/patch on that ConfigMap.
type ConfigMapReporter struct {
	API *kubeapi.Client
	// URL is the ConfigMap's API URL.
	URL string
	Key string
}

// InCluster returns the reporter for key of ConfigMap name when running in a pod (the API server's
// address in the environment and a service account mounted in saDir); ok is false outside a cluster.
func InCluster(saDir, name, key string) (r *ConfigMapReporter, ok bool, err error) {
	api, ok, err := kubeapi.InCluster(saDir)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &ConfigMapReporter{API: api, URL: api.ConfigMapURL(name), Key: key}, true, nil
}

// Report patches {"data":{key: json(p)}}.
func (c *ConfigMapReporter) Report(ctx context.Context, p contract.AnnotateProgress) error {
	value, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding progress: %w", err)
	}
	patch, err := json.Marshal(map[string]map[string]string{"data": {c.Key: string(value)}})
	if err != nil {
		return fmt.Errorf("encoding progress patch: %w", err)
	}
	if _, err := c.API.Do(ctx, http.MethodPatch, c.URL, "application/merge-patch+json", patch); err != nil {
		return fmt.Errorf("patching progress ConfigMap: %w", err)
	}
	return nil
}
