#!/usr/bin/env bash
# Builds Kueue's manager from its Go module (hack/kueue/go.mod pins sigs.k8s.io/kueue) into bin/kueue/,
# once: a stamp of this module's go.mod, go.sum and this script makes a second run a no-op and a version
# change rebuild. Prints the binary's path. hack/images/build.sh kueue packs it into an image.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/bin/kueue/manager
stamp=$(cat "$here/go.mod" "$here/go.sum" "$0" | sha256sum | cut -c1-16)
if [ -x "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
version=$(cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/kueue)
start=$(date +%s)
echo "building kueue $version (cold: several minutes) ..." >&2
(cd "$here" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$version" \
  -o "$out.tmp" sigs.k8s.io/kueue/cmd/kueue)
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
echo "built kueue in $(($(date +%s) - start))s" >&2
echo "$out"
