#!/usr/bin/env bash
# Imports image tarballs (from hack/images/build.sh) into the dev cluster's containerd, in the k8s.io
# namespace the kubelet uses, unpacked for overlayfs. An image whose tarball was imported already (same
# inputs hash) is skipped. Pods use them with imagePullPolicy: IfNotPresent or Never.
#
# Usage: hack/images/import.sh TARBALL...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"
[ -S "$CONTAINERD_SOCK" ] || die "containerd is not running ($CONTAINERD_SOCK): run hack/cluster/up.sh"
mkdir -p "$DEV/images"
for tar in "$@"; do
  name=$(basename "$tar" .tar)
  inputs=$(cat "$tar.inputs" 2>/dev/null || sha256sum "$tar" | cut -c1-16)
  if [ "$(cat "$DEV/images/$name.imported" 2>/dev/null)" = "$inputs" ]; then
    log "    $name: imported already"
    continue
  fi
  t0=$(date +%s.%N)
  ctr --address "$CONTAINERD_SOCK" -n k8s.io images import --snapshotter overlayfs --platform linux/amd64 "$tar" >/dev/null
  echo "$inputs" >"$DEV/images/$name.imported"
  log "    imported $name ($(du -h "$tar" | cut -f1)) in $(elapsed_since "$t0")s"
done
