#!/usr/bin/env bash
# Builds the krew archives of the distillery CLI: dist/kubectl-distillery_<os>_<arch>.tar.gz, each holding
# the binary as kubectl-distillery and the README, plus dist/checksums.txt (sha256, what krew checks).
# Usage: hack/krew/archives.sh [os/arch ...]   (default: linux and darwin, amd64 and arm64)
# DISTILLERY_DIST puts them in another folder than dist/ (the krew test builds its own there).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
platforms=("$@")
[ ${#platforms[@]} -eq 0 ] && platforms=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64)
dist=${DISTILLERY_DIST:-$root/dist}
mkdir -p "$dist"
: >"$dist/checksums.txt"
for p in "${platforms[@]}"; do
  os=${p%/*} arch=${p#*/}
  work=$(mktemp -d)
  (cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "-s -w" -o "$work/kubectl-distillery" ./cmd/distillery)
  cp "$root/README.md" "$work/"
  archive="kubectl-distillery_${os}_${arch}.tar.gz"
  tar -C "$work" -czf "$dist/$archive" kubectl-distillery README.md
  rm -rf "$work"
  (cd "$dist" && sha256sum "$archive" >>checksums.txt)
  echo "built dist/$archive" >&2
done
cat "$dist/checksums.txt"
