#!/usr/bin/env bash
# Brings up a simulated cluster: hack/cluster's control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler: the real scheduler, Job controller and garbage collector) with
# its own state dir and ports, the DistillationJob/StudentModel CRDs, and `kwok` simulating
# KWOK_CPU_NODES CPU nodes and KWOK_GPU_NODES nodes with nvidia.com/gpu: KWOK_GPUS_PER_NODE.
# Pod outcomes follow hack/kwok/stages/pod-outcome.yaml. Idempotent. Settings: see hack/kwok/lib.sh.
#
#   hack/kwok/up.sh && export KUBECONFIG=$PWD/.dev-sim/kubeconfig     ...     hack/kwok/down.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T0=$(date +%s.%N)

build_kwok() {
  if [ -x "$KWOK_BIN" ] && [ "$(cat "$KWOK_BIN.stamp" 2>/dev/null)" = "$KWOK_VERSION" ]; then
    log "    kwok $KWOK_VERSION exists"
    return
  fi
  # kwok wants k8s.io v0.36: `go install pkg@version` builds it in its own module, apart from ours.
  (cd "$ROOT" && GOBIN="$ROOT/bin" GOFLAGS=-mod=mod go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")
  echo "$KWOK_VERSION" >"$KWOK_BIN.stamp"
}

install_crds() {
  kc apply --server-side --force-conflicts -f "$ROOT/config/crd/bases" >/dev/null
  kc wait --for=condition=Established --timeout=60s crd/distillationjobs.distillery.dev crd/studentmodels.distillery.dev >/dev/null
}

start_kwok() {
  # One document stream: each file starts a new document.
  : >"$DEV/kwok-stages.yaml"
  for f in "$KWOK_STAGES"/*.yaml; do
    printf -- '---\n' >>"$DEV/kwok-stages.yaml"
    cat "$f" >>"$DEV/kwok-stages.yaml"
  done
  start kwok "$KWOK_BIN" --kubeconfig="$KUBECONFIG_ADMIN" --config="$DEV/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 --cidr=10.244.0.0/16 --server-address=127.0.0.1:0
}

# node NAME KIND CPU MEMORY GPUS: one simulated Node document.
node() {
  local name=$1 kind=$2 cpu=$3 mem=$4 gpus=$5 gpu_line=""
  [ "$gpus" -gt 0 ] && gpu_line="    nvidia.com/gpu: \"$gpus\""
  cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    distillery.dev/sim-node: $kind
status:
  capacity: &res
    cpu: "$cpu"
    memory: $mem
    pods: "$KWOK_NODE_PODS"
$gpu_line
  allocatable: *res
YAML
}

create_nodes() {
  local i docs=""
  for ((i = 0; i < KWOK_CPU_NODES; i++)); do docs+=$(node "kwok-cpu-$i" cpu 256 2Ti 0)$'\n'; done
  for ((i = 0; i < KWOK_GPU_NODES; i++)); do docs+=$(node "kwok-gpu-$i" gpu 128 2Ti "$KWOK_GPUS_PER_NODE")$'\n'; done
  [ -n "$docs" ] && kc apply -f - <<<"$docs" >/dev/null
  local want=$((KWOK_CPU_NODES + KWOK_GPU_NODES))
  wait_for "$want simulated nodes Ready" 60 bash -c \
    "[ \"\$(kubectl --kubeconfig '$KUBECONFIG_ADMIN' get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}' | grep -c True)\" -ge $want ]"
}

step "binaries (bin/k8s, built once from Go modules)" "$ROOT/hack/build-k8s-binaries.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubectl
step "kwok $KWOK_VERSION (bin/kwok)" build_kwok
controlplane_up
step "CRDs" install_crds
step "kwok" start_kwok
step "nodes: $KWOK_CPU_NODES CPU, $KWOK_GPU_NODES GPU x $KWOK_GPUS_PER_NODE" create_nodes
log "simulated cluster up in $(elapsed_since "$T0")s"
cat >&2 <<MSG

  export KUBECONFIG=$KUBECONFIG_ADMIN
  kubectl get nodes -l type=kwok
  logs: $LOGS    down: hack/kwok/down.sh
MSG
