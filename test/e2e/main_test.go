//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"testing"
)

// teacherVariant is a Deployment and Service of the demo teacher with fault-injecting flags.
func teacherVariant(name, flags string) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: distillery-demo, labels: {app: %[1]s}}
spec:
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers:
      - name: teacher
        image: distillery.local/demo-teacher:dev
        imagePullPolicy: Never
        command: ["/demo-teacher", "--addr=:8000", %[2]s]
        ports: [{name: http, containerPort: 8000}]
        readinessProbe: {tcpSocket: {port: http}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: distillery-demo}
spec: {selector: {app: %[1]s}, ports: [{name: http, port: 8000, targetPort: http}]}
---`, name, flags)
}

// teachers are the variants the tests point jobs at; teacher-down is a Service with no pods behind it.
var teachers = teacherVariant("teacher-flaky", `"--latency=10ms", "--garbage-fraction=0.3", "--fail-first-n=10", "--429-for-seconds=8s"`) +
	teacherVariant("teacher-slow", `"--latency=400ms"`) + `
apiVersion: v1
kind: Service
metadata: {name: teacher-down, namespace: distillery-demo}
spec: {selector: {app: no-such-teacher}, ports: [{name: http, port: 8000}]}
`

func TestMain(m *testing.M) {
	if _, err := os.Stat(kubeconfig); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: no cluster (%v): run `make dev` first, or `make test-e2e`\n", err)
		os.Exit(1)
	}
	if _, err := kubectlIn(teachers, "apply", "-f", "-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, d := range []string{"teacher-flaky", "teacher-slow"} {
		if _, err := kubectl("-n", teacherNS, "rollout", "status", "deploy/"+d, "--timeout=180s"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	_, _ = kubectl("delete", "dj,sm,configmap", "-l", "e2e=true", "--ignore-not-found", "--wait=false")
	os.Exit(code)
}
