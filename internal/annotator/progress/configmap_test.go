package progress

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"

	"github.com/distillery-dev/distillery/internal/contract"
)

// fakeServiceAccount mounts a token, namespace and CA like Kubernetes does.
func fakeServiceAccount(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for name, content := range map[string][]byte{"token": []byte("tok-123\n"), "namespace": []byte("team-a"), "ca.crt": ca} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	t.Setenv("KUBERNETES_SERVICE_HOST", host)
	t.Setenv("KUBERNETES_SERVICE_PORT", port)
	return dir
}

func TestConfigMapReporterMergePatchesItsKey(t *testing.T) {
	var method, path, contentType, auth string
	var body []byte
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, path, contentType, auth = r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization")
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	r, ok, err := InCluster(fakeServiceAccount(t, srv), contract.ProgressConfigMapName("job1"), contract.AnnotateProgressKey(3))
	if err != nil || !ok {
		t.Fatalf("InCluster = %v, %v", ok, err)
	}
	p := contract.AnnotateProgress{Done: 120, Total: 500, UpdatedAt: "2026-11-29T20:10:00Z"}
	if err := r.Report(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if method != http.MethodPatch || path != "/api/v1/namespaces/team-a/configmaps/job1-progress" ||
		contentType != "application/merge-patch+json" || auth != "Bearer tok-123" {
		t.Errorf("request: %s %s %s %q", method, path, contentType, auth)
	}
	var patch struct{ Data map[string]string }
	if err := json.Unmarshal(body, &patch); err != nil {
		t.Fatal(err)
	}
	var got contract.AnnotateProgress
	if err := json.Unmarshal([]byte(patch.Data["annotate-3"]), &got); err != nil || got != p || len(patch.Data) != 1 {
		t.Errorf("patch = %s", body)
	}
}

func TestAFailedReportIsAnErrorNotAPanic(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `configmaps "job1-progress" is forbidden`, http.StatusForbidden)
	}))
	defer srv.Close()
	r, _, err := InCluster(fakeServiceAccount(t, srv), "job1-progress", "annotate-0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Report(context.Background(), contract.AnnotateProgress{}); err == nil {
		t.Fatal("a 403 should be an error")
	}
	Once(context.Background(), r, contract.AnnotateProgress{}, logr.Discard()) // logged, not fatal
}

func TestOutsideAClusterThereIsNoReporter(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, ok, err := InCluster(t.TempDir(), "x", "y"); ok || err != nil {
		t.Errorf("InCluster outside a pod = %v, %v", ok, err)
	}
}
