#!/usr/bin/env bash
# Builds etcd, the Kubernetes control-plane and node binaries, kubectl and controller-gen from Go modules
# (no download site is reachable) into bin/, once. A stamp file records the tools module's hash, so a
# second run is a no-op and a change of versions rebuilds.
#
# Usage: hack/build-k8s-binaries.sh [name ...]   (default: everything)
#   names: etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy controller-gen
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
tools="$root/hack/tools"
k8s_version=v1.37.2
mkdir -p "$bin/k8s"

all=(etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy controller-gen)
want=("$@")
[ ${#want[@]} -eq 0 ] && want=("${all[@]}")

stamp=$(cat "$tools/go.mod" "$tools/go.sum" "$0" | sha256sum | cut -c1-16)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"

for name in "${want[@]}"; do
  out="$bin/k8s/$name"
  if [ -x "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
    continue
  fi
  case "$name" in
    controller-gen) pkg=sigs.k8s.io/controller-tools/cmd/controller-gen; out="$bin/controller-gen" ;;
    etcd|kube-*|kubelet|kubectl) pkg=./cmd/$name ;;
    *) echo "unknown binary: $name" >&2; exit 2 ;;
  esac
  if [ -x "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then continue; fi
  start=$(date +%s)
  echo "building $name ..." >&2
  (cd "$tools" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  echo "$stamp" > "$out.stamp"
  echo "built $name in $(( $(date +%s) - start ))s" >&2
done
