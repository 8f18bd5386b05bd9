// Package kubeapi is the annotator's small window on the Kubernetes API: requests on the job's own
// ConfigMaps (the progress reports, the budget ledger) with the pod's service account, whose Role allows
// get and patch on those ConfigMaps and nothing else. It uses net/http rather than client-go: two verbs on
// one kind do not need a typed client, and the annotator image stays small.
package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
)

// ServiceAccountDir is where Kubernetes mounts the pod's service account token, CA and namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// maxResponseBytes bounds what is read of an answer (a ConfigMap of a job is small).
const maxResponseBytes = 4 << 20

// Client talks to one namespace of the API server.
type Client struct {
	// Host is the API server's base URL, e.g. https://10.96.0.1:443.
	Host      string
	Namespace string
	HTTP      *http.Client
	// TokenPath is the service account token, read on every request because projected tokens are
	// rotated; empty when HTTP authenticates by itself (tests).
	TokenPath string
}

// InCluster returns the client of a pod (the API server's address in the environment and a service account
// mounted in saDir); ok is false outside a cluster.
func InCluster(saDir string) (c *Client, ok bool, err error) {
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
	hc, err := clientWithCA(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, false, err
	}
	u := url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)}
	return &Client{Host: u.String(), Namespace: strings.TrimSpace(string(ns)), HTTP: hc, TokenPath: tokenPath}, true, nil
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

// ConfigMapURL is the API URL of ConfigMap name in the client's namespace.
func (c *Client) ConfigMapURL(name string) string {
	return strings.TrimRight(c.Host, "/") + fmt.Sprintf("/api/v1/namespaces/%s/configmaps/%s", c.Namespace, name)
}

// StatusError is an answer of the API server other than 2xx.
type StatusError struct {
	Code    int
	Status  string
	URL     string
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.URL, e.Status, e.Message)
}

// IsConflict reports whether err is the API server's 409 Conflict (a stale resourceVersion).
func IsConflict(err error) bool {
	var s *StatusError
	return errors.As(err, &s) && s.Code == http.StatusConflict
}

// Do sends one request (body nil for GET) and returns the answer's body, or a *StatusError.
func (c *Client) Do(ctx context.Context, method, u, contentType string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.TokenPath != "" {
		token, err := os.ReadFile(c.TokenPath)
		if err != nil {
			return nil, fmt.Errorf("reading the service account token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("reading the answer to %s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := b
		if len(msg) > 512 {
			msg = msg[:512]
		}
		return nil, &StatusError{Code: resp.StatusCode, Status: resp.Status, URL: u, Message: string(bytes.TrimSpace(msg))}
	}
	return b, nil
}
