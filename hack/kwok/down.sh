#!/usr/bin/env bash
# Stops what hack/kwok/up.sh started (by recorded PID, SIGKILL after a grace period) and removes its state
# dir. Nothing of the real-node dev cluster is touched: the simulated cluster has no containers, mounts,
# bridges or iptables rules. Safe to run twice.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T0=$(date +%s.%N)
step "operator and kwok" stop_all 5 distillery-operator kwok
step "control plane" controlplane_down
step "state dir $DEV" rm -rf "$DEV"
log "simulated cluster down in $(elapsed_since "$T0")s"
