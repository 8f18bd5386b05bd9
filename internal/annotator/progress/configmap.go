package progress

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distillery-dev/distillery/internal/contract"
)

// ServiceAccountDir is where Kubernetes mounts the pod's service account token, CA and namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// ConfigMapReporter JSON-merge-patches one key of the job's progress ConfigMap with the pod's service
// account, whose Role allows only get/patch on that ConfigMap.
type ConfigMapReporter struct {
	// URL is the ConfigMap's API path on the API server.
	URL       string
	Key       string
	TokenPath string
	Client    *http.Client
}

// InCluster returns the reporter for key of ConfigMap name when running in a pod (the API server's
// address in the environment and a service account mounted in saDir); ok is false outside a cluster.
func InCluster(saDir, name, key string) (r *ConfigMapReporter, ok bool, err error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	tokenPath := filepath.Join(saDir, "token")
	if host == "" || port == "" {
		return nil, false, nil
	}
	if _, err := os.Stat(tokenPath); err != nil {
		return nil, false, nil
	}
	ns, err := os.ReadFile(filepath.Join(saDir, "namespace"))
	if err != nil {
		return nil, false, fmt.Errorf("reading the pod's namespace: %w", err)
	}
	client, err := clientWithCA(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, false, err
	}
	u := url.URL{
		Scheme: "https", Host: net.JoinHostPort(host, port),
		Path: fmt.Sprintf("/api/v1/namespaces/%s/configmaps/%s", strings.TrimSpace(string(ns)), name),
	}
	return &ConfigMapReporter{URL: u.String(), Key: key, TokenPath: tokenPath, Client: client}, true, nil
}

func clientWithCA(caPath string) (*http.Client, error) {
	pem, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("the cluster CA file holds no certificate")
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

// Report patches {"data":{key: json(p)}}. The token is read on every report because projected service
// account tokens are rotated.
func (c *ConfigMapReporter) Report(ctx context.Context, p contract.AnnotateProgress) error {
	value, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding progress: %w", err)
	}
	patch, err := json.Marshal(map[string]map[string]string{"data": {c.Key: string(value)}})
	if err != nil {
		return fmt.Errorf("encoding progress patch: %w", err)
	}
	token, err := os.ReadFile(c.TokenPath)
	if err != nil {
		return fmt.Errorf("reading the service account token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.URL, bytes.NewReader(patch))
	if err != nil {
		return fmt.Errorf("building progress patch: %w", err)
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := c.Client.Do(req)
	if err != nil {
		return fmt.Errorf("patching progress ConfigMap: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("patching progress ConfigMap %s: %s: %s", c.URL, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
