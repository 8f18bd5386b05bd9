//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"testing"
)

// teachers are the demo teacher's fault-injecting variants the tests point jobs at; teacher-down is a
// Service with no pods behind it.
const teachers = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: teacher-flaky, namespace: distillery-demo, labels: {app: teacher-flaky}}
spec:
  selector: {matchLabels: {app: teacher-flaky}}
  template:
    metadata: {labels: {app: teacher-flaky}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers:
      - name: teacher
        image: distillery.local/demo-teacher:dev
        imagePullPolicy: Never
        command: ["/demo-teacher", "--addr=:8000", "--latency=10ms", "--garbage-fraction=0.3", "--fail-first-n=10", "--429-for-seconds=8s"]
        ports: [{name: http, containerPort: 8000}]
        readinessProbe: {tcpSocket: {port: http}, periodSeconds: 2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: teacher-slow, namespace: distillery-demo, labels: {app: teacher-slow}}
spec:
  selector: {matchLabels: {app: teacher-slow}}
  template:
    metadata: {labels: {app: teacher-slow}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers:
      - name: teacher
        image: distillery.local/demo-teacher:dev
        imagePullPolicy: Never
        command: ["/demo-teacher", "--addr=:8000", "--latency=400ms"]
        ports: [{name: http, containerPort: 8000}]
        readinessProbe: {tcpSocket: {port: http}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: teacher-flaky, namespace: distillery-demo}
spec: {selector: {app: teacher-flaky}, ports: [{name: http, port: 8000, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: teacher-slow, namespace: distillery-demo}
spec: {selector: {app: teacher-slow}, ports: [{name: http, port: 8000, targetPort: http}]}
---
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
