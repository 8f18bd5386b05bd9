#!/usr/bin/env bash
# Removes everything hack/cluster/up.sh made: the processes (by recorded PID, SIGKILL after a grace
# period), the containers and their shims, the mounts under the state dir and the pods' network
# namespaces, the cni0 bridge, the KUBE-* and CNI-* iptables chains, the kubepods cgroups, the CNI state,
# the sysctls it changed, and the state dir. Safe to run twice, and after a half-finished up.sh.
# Caches (bin/k8s, $DISTILLERY_CACHE: image tarballs, rootfs, containerd's image store) are kept; remove
# $DISTILLERY_CACHE (bin/cache) by hand to drop them.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
source "$here/lib.sh"
source "$here/controlplane.sh"
T0=$(date +%s.%N)

# pids_in_cgroups: every process in a kubepods cgroup (the pods' containers).
pids_in_cgroups() {
  local c
  for c in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
    if [ -d "$c" ]; then find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done | sort -un
}

stop_node() {
  stop_all 5 kubelet kube-proxy clusterdns
  # The containers: kill what runs in the pods' cgroups, then the shims of our containerd (they name its
  # socket on their command line), then containerd.
  local pids p
  if $real_node; then
    pids=$(pids_in_cgroups)
    [ -n "$pids" ] && { log "    killing $(echo "$pids" | wc -w) container process(es)"; kill -KILL $pids 2>/dev/null || true; }
    for p in /proc/[0-9]*; do
      if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "containerd-shim.* -address $CONTAINERD_SOCK"; then
        kill -KILL "${p#/proc/}" 2>/dev/null && log "    killed shim ${p#/proc/}" || true
      fi
    done
    remove_containers
  fi
  stop containerd 10
}

unmount_all() {
  # Every mount below the state dir (kubelet volumes, containerd rootfs and shm), deepest first.
  local m n=0
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "    could not unmount $m"
    n=$((n + 1))
  done < <(awk -v d="$DEV" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
  # The pods' network namespaces, made by containerd's CRI (their veths go with them).
  $real_node || { log "    $n mount(s) removed"; return 0; }
  for m in /var/run/netns/cni-*; do
    [ -e "$m" ] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    rm -f "$m"
    n=$((n + 1))
  done
  log "    $n mount(s) removed"
}

remove_network() {
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
    ip link delete "$CNI_BRIDGE" && log "    deleted bridge $CNI_BRIDGE"
  fi
  # Our chains: KUBE-* (kubelet, kube-proxy) and CNI-* (bridge ipMasq, portmap). Rewrite each table without
  # them, leaving every other rule as it is.
  local cmd t
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    for t in filter nat mangle raw; do
      local rules
      rules=$("$cmd-save" -t "$t" 2>/dev/null) || continue
      grep -qE '(KUBE|CNI)-' <<<"$rules" || continue
      grep -vE '^:(KUBE|CNI)-|^-A (KUBE|CNI)-|-[jg] (KUBE|CNI)-' <<<"$rules" | "$cmd-restore" -T "$t"
      log "    removed KUBE-*/CNI-* from $cmd $t"
    done
  done
  # The CNI plugins' result cache and IPAM state for our network.
  rm -rf "/var/lib/cni/results/$CNI_NETWORK-"* /var/lib/cni/results/cni-loopback-* "/var/lib/cni/networks/$CNI_NETWORK"
  if [ -f "$DEV/sysctl.orig" ]; then
    while IFS='=' read -r k v; do
      echo "$v" >"/proc/sys/${k//.//}" 2>/dev/null || true
    done <"$DEV/sysctl.orig"
    log "    restored sysctls"
  fi
}

remove_cgroups() {
  local c n=0
  for c in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [ -d "$c" ] || continue
    # Deepest first; a cgroup with processes left cannot go: kill them (they are the pods') and retry.
    local i
    for i in 1 2 3 4 5; do
      find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [ -d "$c" ] || break
      find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
      sleep 0.2
    done
    [ -d "$c" ] && log "    could not remove $c" || n=$((n + 1))
  done
  log "    removed $n kubepods cgroup tree(s)"
}

# The bridge, iptables chains, netns and cgroups are machine-wide: only a state dir that ran the real node
# (node.sh leaves $DEV/node) cleans them, so tearing down a control-plane-only cluster (KWOK) next to the
# real one leaves the real one alone. DISTILLERY_FORCE_NODE_CLEANUP=1 cleans them regardless.
real_node=false
[ -e "$DEV/node" ] || [ "${DISTILLERY_FORCE_NODE_CLEANUP:-0}" = 1 ] && real_node=true
step "node processes and containers" stop_node
step "control plane processes" controlplane_down
step "mounts" unmount_all
if $real_node; then
  step "network: bridge, iptables, CNI state, sysctls" remove_network
  step "cgroups" remove_cgroups
fi
step "state dir $DEV" rm -rf "$DEV"
log "cluster down in $(elapsed_since "$T0")s"
