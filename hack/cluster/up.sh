#!/usr/bin/env bash
# Brings up the local dev cluster: the control plane (controlplane.sh) and, unless DISTILLERY_NODE=none, a
# real node (node.sh: containerd, kubelet, kube-proxy, cluster DNS), then builds and imports the project's
# images (hack/images/all.sh; DISTILLERY_IMAGES=none skips that). Idempotent: run it again to repair or
# to re-import changed images. Settings: see lib.sh. Tear down with hack/cluster/down.sh.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
source "$here/lib.sh"
source "$here/controlplane.sh"
source "$here/node.sh"
T0=$(date +%s.%N)

bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
[ "$NODE_MODE" = real ] && bins+=(kubelet kube-proxy)
step "binaries (bin/k8s, built once from Go modules)" "$ROOT/hack/build-k8s-binaries.sh" "${bins[@]}"
controlplane_up
case "$NODE_MODE" in
  real) node_up ;;
  none) log "DISTILLERY_NODE=none: no node (add KWOK nodes yourself)" ;;
  *) die "DISTILLERY_NODE=$NODE_MODE: want real or none" ;;
esac
if [ "$NODE_MODE" = real ] && [ "${DISTILLERY_IMAGES:-all}" != none ]; then
  step "images" "$ROOT/hack/images/all.sh"
fi
log "cluster up in $(elapsed_since "$T0")s"
cat >&2 <<EOF

  export KUBECONFIG=$KUBECONFIG_ADMIN
  kubectl get nodes,pods -A
  logs: $LOGS    down: hack/cluster/down.sh
EOF
