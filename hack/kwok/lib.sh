# Settings of the simulated (KWOK) cluster, sourced by hack/kwok/*.sh. It reuses hack/cluster's control
# plane with its own state dir and ports, so it runs next to the real-node dev cluster.
#
# Environment (all optional):
#   DISTILLERY_SIM_DIR   state: certs, kubeconfig, etcd data, logs, PIDs   (default: <repo>/.dev-sim)
#   SIM_APISERVER_PORT   16443;  SIM_ETCD_PORT 23890 (peer +10);  SIM_SERVICE_CIDR 10.96.0.0/16
#   KWOK_CPU_NODES 4  KWOK_GPU_NODES 16  KWOK_GPUS_PER_NODE 8  KWOK_NODE_PODS 1000 (pods per simulated node)
#   SIM_KUBE_API_QPS     client QPS of kube-controller-manager and kube-scheduler (default 300; burst 2x):
#                        the defaults (20 and 50) make the Job controller, not the operator, the bottleneck
#                        at 1,000 jobs.
KWOK_LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export DISTILLERY_DEV_DIR=${DISTILLERY_SIM_DIR:-$KWOK_LIB_ROOT/.dev-sim}
export DISTILLERY_NODE=none
export APISERVER_PORT=${SIM_APISERVER_PORT:-16443}
export ETCD_PORT=${SIM_ETCD_PORT:-23890}
# A /16: every StudentModel has a ClusterIP Service, and a /24 runs out at 254.
export SERVICE_CIDR=${SIM_SERVICE_CIDR:-10.96.0.0/16}
SIM_KUBE_API_QPS=${SIM_KUBE_API_QPS:-300}
KWOK_CPU_NODES=${KWOK_CPU_NODES:-4}
KWOK_GPU_NODES=${KWOK_GPU_NODES:-16}
KWOK_GPUS_PER_NODE=${KWOK_GPUS_PER_NODE:-8}
KWOK_NODE_PODS=${KWOK_NODE_PODS:-1000}
KWOK_VERSION=v0.8.0

source "$KWOK_LIB_ROOT/hack/cluster/lib.sh"
source "$KWOK_LIB_ROOT/hack/cluster/controlplane.sh"

KWOK_BIN=$ROOT/bin/kwok
KWOK_STAGES=$ROOT/hack/kwok/stages

# Give the control plane's kube-controller-manager and kube-scheduler a client rate fit for a thousand
# jobs, by wrapping lib.sh's start (the last of a repeated flag wins).
eval "_cluster_$(declare -f start)"
start() {
  local name=$1; shift
  local qps=(--kube-api-qps="$SIM_KUBE_API_QPS" --kube-api-burst=$((SIM_KUBE_API_QPS * 2)))
  case $name in
    kube-controller-manager) set -- "$@" "${qps[@]}" --concurrent-job-syncs=20 ;;
    kube-scheduler) set -- "$@" "${qps[@]}" ;;
  esac
  _cluster_start "$name" "$@"
}
