#!/usr/bin/env bash
# The real node of the local dev cluster: Debian's containerd + runc + CNI plugins (installed here), a
# kubelet, kube-proxy (iptables mode) and the cluster DNS (hack/clustertools/clusterdns behind the kube-dns
# Service at $DNS_SERVICE_IP). Needs the control plane (controlplane.sh) and the pause image
# (hack/images/build.sh pause). Idempotent.
#
# Usage: hack/cluster/node.sh up            (down: see down.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  if [ ${#missing[@]} -eq 0 ]; then
    log "    containerd, runc, CNI plugins, iptables, conntrack: installed"
    return
  fi
  log "    apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

set_sysctls() {
  # Pods' traffic is routed and bridged through this host, and Service rules must see bridged packets.
  [ -f "$DEV/sysctl.orig" ] || {
    echo "net.ipv4.ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
    echo "net.ipv4.conf.all.route_localnet=$(cat /proc/sys/net/ipv4/conf/all/route_localnet)"   # kube-proxy sets it
    echo "net.bridge.bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 1)"
  } >"$DEV/sysctl.orig"
  echo 1 >/proc/sys/net/ipv4/ip_forward
  if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    modprobe br_netfilter 2>/dev/null || die "net.bridge.bridge-nf-call-iptables missing and br_netfilter cannot be loaded"
  fi
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
}

start_containerd() {
  local d=$DEV/containerd
  mkdir -p "$CONTAINERD_ROOT" "$d/state" "$DEV/cni/net.d" "$DEV/cni/ipam"
  # restrict_oom_score_adj: root in this VM lacks CAP_SYS_RESOURCE; without it every sandbox fails with
  # "runc create failed: ... can't get final child's PID from pipe: EOF".
  write_file "$d/config.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DEV/cni/net.d"
EOF
  write_file "$DEV/cni/net.d/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$DEV/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  # A second `make dev` on a running cluster must change nothing that runs: only a containerd started
  # now may hold containers of an earlier run (stale sandboxes the kubelet would fight); a running one
  # holds the pods of this cluster.
  local fresh=true
  alive containerd && fresh=false
  start containerd containerd --config "$d/config.toml"
  wait_for "containerd" 30 ctr --address "$CONTAINERD_SOCK" version
  if $fresh; then remove_containers; fi
}

import_pause() {
  local tar
  tar=$("$ROOT/hack/images/build.sh" pause)
  "$ROOT/hack/images/import.sh" "$tar"
}

start_kubelet() {
  mkdir -p "$DEV/kubelet"
  write_file "$DEV/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
hairpinMode: hairpin-veth
maxPods: 110
# Images are imported, never pulled: never garbage-collect them, and evict only when really full.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
nodeStatusReportFrequency: 10s
EOF
  start kubelet "$K8S_BIN/kubelet" --config="$DEV/kubelet-config.yaml" \
    --kubeconfig="$DEV/kubelet.kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --root-dir="$DEV/kubelet" --cert-dir="$DEV/kubelet/pki" --v=1
  wait_for "node $NODE_NAME Ready" 120 kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
}

start_kube_proxy() {
  write_file "$DEV/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $DEV/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: [primary]
conntrack:
  maxPerCore: 0
EOF
  start kube-proxy "$K8S_BIN/kube-proxy" --config="$DEV/kube-proxy-config.yaml" --v=1
  wait_for "kube-proxy's Service rules" 60 iptables -t nat -S KUBE-SERVICES
}

start_dns() {
  local dns
  dns=$("$ROOT/hack/images/build.sh" tool clusterdns)
  # The DNS server runs on the host at the node's address; the kube-dns Service (no selector) points there,
  # so pods use the Service's ClusterIP as on any cluster.
  kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "distillery-dev:dns"}
rules:
- apiGroups: [""]
  resources: [services, namespaces]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "distillery-dev:dns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "distillery-dev:dns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:distillery-dev-dns"}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_SERVICE_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: distillery-dev}
addressType: IPv4
endpoints:
- addresses: ["$NODE_IP"]
  conditions: {ready: true}
  nodeName: $NODE_NAME
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
EOF
  start clusterdns "$dns" --kubeconfig="$DEV/dns.kubeconfig" --listen="$NODE_IP:53" --domain="$CLUSTER_DOMAIN" \
    --upstream="${DISTILLERY_DNS_UPSTREAM:-}"
  wait_for "cluster DNS" 30 grep -q "serving" "$LOGS/clusterdns.log"
}

node_up() {
  local t0; t0=$(date +%s.%N)
  [ "$(id -u)" = 0 ] || die "the node needs root"
  for b in kubelet kube-proxy; do
    [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b missing: run hack/build-k8s-binaries.sh"
  done
  mkdir -p "$DEV"
  touch "$DEV/node"   # tells down.sh that the machine-wide node state (bridge, iptables, cgroups) is ours
  step "node packages" install_packages
  step "sysctls (ip_forward, bridge-nf-call-iptables)" set_sysctls
  step "containerd ($CONTAINERD_SOCK)" start_containerd
  step "pause image" import_pause
  step "kubelet (node $NODE_NAME, $NODE_IP)" start_kubelet
  step "kube-proxy (iptables)" start_kube_proxy
  step "cluster DNS ($DNS_SERVICE_IP -> $NODE_IP:53)" start_dns
  log "node ready in $(elapsed_since "$t0")s"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-up}" in
    up) node_up ;;
    *) echo "usage: $0 up" >&2; exit 2 ;;
  esac
fi
