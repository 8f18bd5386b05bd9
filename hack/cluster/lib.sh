# Shared settings and helpers of hack/cluster/*.sh. Sourced, not run.
#
# Environment (all optional):
#   DISTILLERY_DEV_DIR    state: certs, kubeconfigs, data, logs, PIDs   (default: <repo>/.dev)
#   DISTILLERY_CACHE      caches that survive down.sh: image tarballs, rootfs (default: <repo>/bin/cache)
#   DISTILLERY_CONTAINERD_ROOT  containerd's root: its images survive down.sh (default: $DISTILLERY_CACHE/containerd)
#   DISTILLERY_NODE       real (containerd + kubelet + kube-proxy + DNS) | none (control plane only, e.g. for
#                         KWOK nodes)                                     (default: real)
#   DISTILLERY_DNS_UPSTREAM  host:port the cluster DNS forwards non-cluster names to (default: none, refused)
#   NODE_IP               the node's address                              (default: the default route's device's)
#   NODE_NAME             the Node's name                                 (default: distillery-dev)
#   APISERVER_PORT        6443;  ETCD_PORT 23790 (peer: ETCD_PORT+10)
#   SERVICE_CIDR          10.0.0.0/24 (apiserver is .1, DNS is .10);  POD_CIDR 10.88.0.0/16
#   DISTILLERY_ROLLOUT_TIMEOUT  how long `rollout` waits for a Deployment (default: 180s)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEV=${DISTILLERY_DEV_DIR:-$ROOT/.dev}
CACHE=${DISTILLERY_CACHE:-$ROOT/bin/cache}
NODE_MODE=${DISTILLERY_NODE:-real}
K8S_BIN=$ROOT/bin/k8s
PKI=$DEV/pki
LOGS=$DEV/logs
PIDS=$DEV/pids
KUBECONFIG_ADMIN=$DEV/kubeconfig
APISERVER_PORT=${APISERVER_PORT:-6443}
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 10))
SERVICE_CIDR=${SERVICE_CIDR:-10.0.0.0/24}
SERVICE_PREFIX=${SERVICE_CIDR%.*}          # 10.0.0
APISERVER_SERVICE_IP=$SERVICE_PREFIX.1
DNS_SERVICE_IP=$SERVICE_PREFIX.10
POD_CIDR=${POD_CIDR:-10.88.0.0/16}
CLUSTER_DOMAIN=cluster.local
NODE_NAME=${NODE_NAME:-distillery-dev}
CNI_NETWORK=distillery-dev
CNI_BRIDGE=cni0
CONTAINERD_SOCK=$DEV/containerd/containerd.sock
# containerd's root (content store, snapshots, metadata) is a cache that outlives down.sh, so imported images
# need no second import; its containers are removed by down.sh and again at start.
CONTAINERD_ROOT=${DISTILLERY_CONTAINERD_ROOT:-$CACHE/containerd}
PAUSE_IMAGE=distillery.local/pause:dev

if [ -z "${NODE_IP:-}" ]; then
  _dev=$(ip -4 route show default 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="dev"){print $(i+1); exit}}')
  NODE_IP=$(ip -4 -o addr show dev "${_dev:-eth0}" 2>/dev/null | awk '{split($4,a,"/"); print a[1]; exit}')
fi
[ -n "${NODE_IP:-}" ] || NODE_IP=127.0.0.1

export PATH=$K8S_BIN:$PATH

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# step NAME CMD...: runs a step, printing what it does and how long it took.
step() {
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  log "==> $name"
  "$@"
  log "    $name: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}')"
}

# elapsed_since T0: seconds since T0 (a date +%s.%N value), one decimal.
elapsed_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# alive NAME: whether the process recorded as NAME runs.
alive() {
  local f=$PIDS/$1.pid
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start NAME CMD...: starts CMD in the background (own session, log in $LOGS/NAME.log, PID in $PIDS/NAME.pid)
# unless NAME already runs.
start() {
  local name=$1; shift
  mkdir -p "$LOGS" "$PIDS"
  if alive "$name"; then
    log "    $name already running (pid $(cat "$PIDS/$name.pid"))"
    return 0
  fi
  setsid nohup "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
  log "    started $name (pid $!, log $LOGS/$name.log)"
}

# stop NAME [GRACE_SECONDS]: SIGTERM, then SIGKILL after the grace period; removes the PID file.
stop() {
  local name=$1 grace=${2:-5} f=$PIDS/$1.pid pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "    $name (pid $pid) ignored SIGTERM for ${grace}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    log "    stopped $name (pid $pid)"
  fi
  rm -f "$f"
}

# stop_all GRACE_SECONDS NAME...: stop, all at once: SIGTERM to each, SIGKILL to those left after the grace
# period.
stop_all() {
  local grace=$1 name pid i left; shift
  declare -A pids=()
  for name in "$@"; do
    [ -f "$PIDS/$name.pid" ] || continue
    pid=$(cat "$PIDS/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      pids[$name]=$pid
    else
      rm -f "$PIDS/$name.pid"
    fi
  done
  for ((i = 0; i <= grace * 10; i++)); do
    left=0
    for name in "${!pids[@]}"; do kill -0 "${pids[$name]}" 2>/dev/null && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for name in "${!pids[@]}"; do
    pid=${pids[$name]}
    if kill -0 "$pid" 2>/dev/null; then
      log "    $name (pid $pid) ignored SIGTERM for ${grace}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    log "    stopped $name (pid $pid)"
    rm -f "$PIDS/$name.pid"
  done
}

# wait_for DESCRIPTION TIMEOUT_SECONDS CMD...: retries CMD every 0.2 s until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local t0; t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) - t0 >= timeout)); then
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.2
  done
}

# write_file PATH: writes stdin to PATH unless PATH has that content already (kube-proxy exits when its
# config file changes, even to the same content).
write_file() {
  local tmp=$1.tmp
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

ctrk() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# remove_containers: deletes every container (and its snapshot) containerd knows in k8s.io: pods of an
# earlier run. Images stay.
remove_containers() {
  local ids
  alive containerd && [ -S "$CONTAINERD_SOCK" ] || return 0
  ids=$(ctrk containers ls -q 2>/dev/null) || return 0
  [ -n "$ids" ] || return 0
  ctrk tasks kill -a -s SIGKILL $ids >/dev/null 2>&1 || true
  ctrk tasks delete -f $ids >/dev/null 2>&1 || true
  ctrk containers delete $ids >/dev/null 2>&1 || true
  log "    removed $(echo "$ids" | wc -w) container(s) of an earlier run"
}

kc() { kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# rollout NAMESPACE DEPLOYMENT: waits for the Deployment's rollout; when it does not finish, prints its
# pods, their events and the namespace's events, so a failed run says why.
rollout() {
  kc -n "$1" rollout status "deploy/$2" --timeout="${DISTILLERY_ROLLOUT_TIMEOUT:-180s}" && return
  log "the rollout of $1/$2 did not finish; its pods and events:"
  kc -n "$1" get pods -o wide >&2 || true
  kc -n "$1" describe pods >&2 || true
  kc -n "$1" get events --sort-by=.lastTimestamp >&2 || true
  return 1
}

# write_kubeconfig FILE USER TOKEN
write_kubeconfig() {
  local file=$1 user=$2 token=$3
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: distillery-dev
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
    token: $token
contexts:
- name: distillery-dev
  context: {cluster: distillery-dev, user: $user}
current-context: distillery-dev
EOF
  mv "$file.tmp" "$file"
}
