#!/usr/bin/env bash
# The control plane of the local dev cluster, as processes on this machine: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler. Idempotent: certificates and tokens are made once; a process that
# runs already is left alone. Used by up.sh for the real node, and usable alone (DISTILLERY_NODE=none) for a
# cluster of simulated (KWOK) nodes.
#
# Usage: hack/cluster/controlplane.sh up|down      (settings: see lib.sh)
# Outputs: $DISTILLERY_DEV_DIR/kubeconfig (admin, token auth), pki/, tokens.csv, <component>.kubeconfig
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# With a real node, pods reach the apiserver through the `kubernetes` Service, so it advertises the node's
# address and its endpoints are reconciled. Without one it stays on loopback (a loopback advertise address
# needs --endpoint-reconciler-type=none).
if [ "$NODE_MODE" = real ]; then
  ADVERTISE=$NODE_IP BIND=0.0.0.0 RECONCILER=lease
else
  ADVERTISE=127.0.0.1 BIND=127.0.0.1 RECONCILER=none
fi

gen_token() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# sign NAME SUBJECT EXTENSIONS: a key and a certificate signed by the cluster CA.
sign() {
  local name=$1 subj=$2 ext=$3
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -out "$PKI/$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 \
    -out "$PKI/$name.crt" -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$PKI/$name.csr"
}

make_pki() {
  mkdir -p "$PKI"
  if [ -f "$PKI/done" ] && [ "$(cat "$PKI/done")" = "$NODE_IP" ]; then
    log "    certificates exist ($PKI)"
    return
  fi
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 3650 \
    -subj "/CN=distillery-dev-ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,IP:127.0.0.1,IP:$APISERVER_SERVICE_IP,IP:$NODE_IP"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
  echo "$NODE_IP" >"$PKI/done"
  log "    made a CA, apiserver/kubelet certificates and service-account keys in $PKI"
}

make_tokens() {
  if [ -f "$DEV/tokens.csv" ]; then
    log "    tokens exist"
    return
  fi
  local admin cm sched node proxy dns
  admin=$(gen_token) cm=$(gen_token) sched=$(gen_token) node=$(gen_token) proxy=$(gen_token) dns=$(gen_token)
  cat >"$DEV/tokens.csv.tmp" <<EOF
$admin,admin,admin,"system:masters"
$cm,system:kube-controller-manager,kcm
$sched,system:kube-scheduler,ksched
$node,system:node:$NODE_NAME,node-$NODE_NAME,"system:nodes"
$proxy,system:kube-proxy,kproxy
$dns,system:distillery-dev-dns,dns
EOF
  chmod 600 "$DEV/tokens.csv.tmp"
  mv "$DEV/tokens.csv.tmp" "$DEV/tokens.csv"
  write_kubeconfig "$KUBECONFIG_ADMIN" admin "$admin"
  write_kubeconfig "$DEV/controller-manager.kubeconfig" system:kube-controller-manager "$cm"
  write_kubeconfig "$DEV/scheduler.kubeconfig" system:kube-scheduler "$sched"
  write_kubeconfig "$DEV/kubelet.kubeconfig" "system:node:$NODE_NAME" "$node"
  write_kubeconfig "$DEV/kube-proxy.kubeconfig" system:kube-proxy "$proxy"
  write_kubeconfig "$DEV/dns.kubeconfig" system:distillery-dev-dns "$dns"
  log "    wrote tokens.csv and kubeconfigs (admin: $KUBECONFIG_ADMIN)"
}

start_etcd() {
  local url=http://127.0.0.1:$ETCD_PORT peer=http://127.0.0.1:$ETCD_PEER_PORT
  start etcd "$K8S_BIN/etcd" --name=dev --data-dir="$DEV/etcd" \
    --listen-client-urls="$url" --advertise-client-urls="$url" \
    --listen-peer-urls="$peer" --initial-advertise-peer-urls="$peer" --initial-cluster="dev=$peer" \
    --unsafe-no-fsync=true --log-level=warn
  wait_for "etcd" 30 curl -fsS "$url/health"
}

start_apiserver() {
  local extra=()
  [ "$RECONCILER" = none ] && extra+=(--endpoint-reconciler-type=none)
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="$BIND" --secure-port="$APISERVER_PORT" --advertise-address="$ADVERTISE" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --token-auth-file="$DEV/tokens.csv" \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --allow-privileged=true --profiling=false "${extra[@]}"
  wait_for "kube-apiserver /readyz" 90 curl -fsS --cacert "$PKI/ca.crt" \
    -H "Authorization: Bearer $(cut -d, -f1 "$DEV/tokens.csv" | head -1)" \
    "https://127.0.0.1:$APISERVER_PORT/readyz"
}

# No health ports (--secure-port=0): two dev clusters (other DISTILLERY_DEV_DIR and ports) can run at once.
start_controllers() {
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$DEV/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$DEV/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$DEV/controller-manager.kubeconfig" \
    --secure-port=0 --leader-elect=false --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$DEV/scheduler.kubeconfig" \
    --authentication-kubeconfig="$DEV/scheduler.kubeconfig" \
    --authorization-kubeconfig="$DEV/scheduler.kubeconfig" \
    --secure-port=0 --leader-elect=false --profiling=false
  # Pods are refused until the namespace's default ServiceAccount exists.
  wait_for "the default ServiceAccount" 60 kc -n default get serviceaccount default
}

controlplane_up() {
  local t0; t0=$(date +%s.%N)
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b missing: run hack/build-k8s-binaries.sh"
  done
  mkdir -p "$DEV" "$LOGS" "$PIDS"
  step "certificates" make_pki
  step "tokens and kubeconfigs" make_tokens
  step "etcd (127.0.0.1:$ETCD_PORT)" start_etcd
  step "kube-apiserver (https://127.0.0.1:$APISERVER_PORT, advertises $ADVERTISE)" start_apiserver
  step "kube-controller-manager and kube-scheduler" start_controllers
  log "control plane ready in $(elapsed_since "$t0")s; export KUBECONFIG=$KUBECONFIG_ADMIN"
}

controlplane_down() {
  stop_all 10 kube-scheduler kube-controller-manager kube-apiserver
  stop_all 10 etcd
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-up}" in
    up) controlplane_up ;;
    down) controlplane_down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
  esac
fi
