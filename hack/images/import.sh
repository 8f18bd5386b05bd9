#!/usr/bin/env bash
# Imports image tarballs (from hack/images/build.sh) into the dev cluster's containerd, in the k8s.io
# namespace the kubelet uses, unpacked for overlayfs. An image whose tarball was imported already (same
# inputs hash) is skipped. Pods use them with imagePullPolicy: IfNotPresent or Never.
#
# Usage: hack/images/import.sh TARBALL...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"
[ -S "$CONTAINERD_SOCK" ] || die "containerd is not running ($CONTAINERD_SOCK): run hack/cluster/up.sh"
# Markers of what was imported live beside containerd's root, which outlives down.sh.
marks=$CONTAINERD_ROOT.imported
mkdir -p "$marks"
for tar in "$@"; do
  name=$(basename "$tar" .tar)
  inputs=$(cat "$tar.inputs" 2>/dev/null || sha256sum "$tar" | cut -c1-16)
  ref=$(cat "$tar.ref" 2>/dev/null || tar -xOf "$tar" manifest.json | sed -n 's/.*"RepoTags":\["\([^"]*\)".*/\1/p')
  if [ "$(cat "$marks/$name" 2>/dev/null)" = "$inputs" ] && ctrk images ls -q | grep -qxF "$ref"; then
    log "    $name: imported already"
    continue
  fi
  t0=$(date +%s.%N)
  ctrk images import --snapshotter overlayfs --platform linux/amd64 "$tar" >/dev/null
  echo "$inputs" >"$marks/$name"
  log "    imported $name ($(du -h "$tar" | cut -f1)) in $(elapsed_since "$t0")s"
done
