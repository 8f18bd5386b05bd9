#!/usr/bin/env bash
# Checks the dev cluster end to end with real pods (image distillery.local/debian:dev, built and imported
# here): a pod runs to Succeeded and its logs are read; a Deployment with a readiness probe becomes Ready;
# another pod reaches it through its Service's DNS name (short and fully qualified) and the `kubernetes`
# Service answers from inside a pod; kubectl exec works. Cleans up its namespace.
#
# Usage: hack/cluster/smoke.sh           (after hack/cluster/up.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ns=smoke-$$
T0=$(date +%s.%N)
trap 'kc delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT

step "debian image" bash -c "'$ROOT/hack/images/import.sh' \"\$('$ROOT/hack/images/build.sh' debian)\""
kc create namespace "$ns" >/dev/null
wait_for "default ServiceAccount in $ns" 30 kc -n "$ns" get serviceaccount default

one_pod() {
  kc -n "$ns" apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  restartPolicy: Never
  containers:
  - name: hello
    image: distillery.local/debian:dev
    imagePullPolicy: Never
    command: [bash, -c, 'echo "hello from $(hostname) $(python3 --version)"; cat /etc/resolv.conf']
    resources: {limits: {memory: 64Mi}}
EOF
  kc -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/hello --timeout=60s >/dev/null
  kc -n "$ns" logs hello | sed 's/^/      /' >&2
  kc -n "$ns" logs hello | grep -q "hello from hello"
}

web_deployment() {
  kc -n "$ns" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: distillery.local/debian:dev
        imagePullPolicy: Never
        command: [bash, -c, 'mkdir -p /srv && echo "web $(hostname)" > /srv/index.html && exec python3 -m http.server 8080 -d /srv']
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /index.html, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
EOF
  kc -n "$ns" rollout status deployment/web --timeout=90s >&2
}

service_dns() {
  kc -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: distillery.local/debian:dev
    imagePullPolicy: Never
    command:
    - python3
    - -c
    - |
      import socket, ssl, urllib.request
      for url in ["http://web", "http://web.$ns.svc.cluster.local/index.html"]:
          host = url.split("/")[2]
          body = urllib.request.urlopen(url, timeout=5).read().decode().strip()
          print(f"{url} ({socket.gethostbyname(host)}) -> {body}")
      ip = socket.gethostbyname("kubernetes.default")
      try:
          urllib.request.urlopen("https://kubernetes.default/readyz", timeout=5, context=ssl._create_unverified_context())
      except urllib.error.HTTPError as e:
          print(f"https://kubernetes.default ({ip}) -> HTTP {e.code} (anonymous)")
      else:
          print(f"https://kubernetes.default ({ip}) -> 200")
EOF
  if ! kc -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=60s >/dev/null; then
    kc -n "$ns" logs client >&2 || true
    die "the client pod did not succeed"
  fi
  kc -n "$ns" logs client | sed 's/^/      /' >&2
}

exec_in_pod() {
  local pod
  pod=$(kc -n "$ns" get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
  kc -n "$ns" exec "$pod" -- cat /srv/index.html | sed 's/^/      /' >&2
}

step "a pod to Succeeded, with kubectl logs" one_pod
step "a Deployment with a readiness probe to Ready" web_deployment
step "a pod reaches the Service by DNS name (and the kubernetes Service)" service_dns
step "kubectl exec" exec_in_pod
log "smoke test passed in $(elapsed_since "$T0")s"
