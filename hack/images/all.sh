#!/usr/bin/env bash
# Builds (cached) and imports the project's images into the dev cluster's containerd:
#   distillery.local/operator:dev      /manager (entrypoint), /annotator     (if cmd/manager exists)
#   distillery.local/demo-teacher:dev  /demo-teacher                        (if cmd/demo-teacher exists)
#   distillery.local/student:dev       Debian + python3 + the student venv  (unless DISTILLERY_IMAGES=go)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/hack/cluster/lib.sh"
b=$root/hack/images/build.sh
tars=()
if [ -d "$root/cmd/manager" ]; then
  pkgs=(./cmd/manager)
  [ -d "$root/cmd/annotator" ] && pkgs+=(./cmd/annotator)
  tars+=("$(step "operator image" "$b" go operator "${pkgs[@]}")")
fi
[ -d "$root/cmd/demo-teacher" ] && tars+=("$(step "demo-teacher image" "$b" go demo-teacher ./cmd/demo-teacher)")
[ "${DISTILLERY_IMAGES:-all}" = go ] || tars+=("$(step "student image" "$b" student)")
step "import into containerd" "$root/hack/images/import.sh" "${tars[@]}"
