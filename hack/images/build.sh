#!/usr/bin/env bash
# Builds the dev cluster's container images as tarballs (docker-save format) without a registry, a base
# image or a Docker engine, caching each by the hash of its inputs: a second run with the same inputs does
# nothing. Import them with hack/images/import.sh (ctr -n k8s.io images import).
#
# Usage:
#   hack/images/build.sh pause                     the sandbox image: distillery.local/pause:dev
#   hack/images/build.sh go NAME PKG [PKG...]      static Go binaries, one layer, /<binary> each; the
#                                                  entrypoint is the first: distillery.local/NAME:dev
#                                                  e.g. go operator ./cmd/manager ./cmd/annotator
#   hack/images/build.sh debian                    the student image's base only (Debian + python3, bash):
#                                                  distillery.local/debian:dev, for smoke tests
#   hack/images/build.sh tool NAME                 builds hack/clustertools/NAME; prints its path
#   hack/images/build.sh kueue                     Kueue's manager built from its Go module by
#                                                  hack/kueue/build.sh, as /manager: distillery.local/kueue:dev
#   hack/images/build.sh student                   Debian (debootstrap) + python3 + the student runtime's
#                                                  venv (.venv, made by hack/python-env.sh) + student/:
#                                                  distillery.local/student:dev
# Prints the tarball's path on stdout. Tarballs: $DISTILLERY_CACHE/images/NAME.tar (default bin/cache).
# IMAGE_TAG overrides the tag (dev). STUDENT_GZIP_LEVEL (default 0: stored, fastest) sets the student
# image's compression.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${DISTILLERY_CACHE:-$root/bin/cache}
images=$cache/images
tools=$cache/clustertools
tag=${IMAGE_TAG:-dev}
registry=distillery.local
mkdir -p "$images" "$tools"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
hash_of() { sha256sum | cut -c1-16; }

# tool NAME: builds hack/clustertools/NAME (static) once per source hash; prints its path.
tool() {
  local name=$1 h
  h=$(cd "$root/hack/clustertools" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | sort | xargs cat | hash_of)
  if [ "$(cat "$tools/$name.stamp" 2>/dev/null)" != "$h" ] || [ ! -x "$tools/$name" ]; then
    log "building hack/clustertools/$name"
    (cd "$root/hack/clustertools" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$tools/$name.tmp" "./$name")
    mv "$tools/$name.tmp" "$tools/$name"
    echo "$h" >"$tools/$name.stamp"
  fi
  echo "$tools/$name"
}

# cached NAME HASH: whether the tarball of NAME was built from inputs of this hash.
cached() {
  [ -f "$images/$1.tar" ] && [ "$(cat "$images/$1.tar.inputs" 2>/dev/null)" = "$2" ]
}

# done_image NAME HASH: records the inputs hash and the image reference beside the tarball.
done_image() {
  echo "$registry/$1:$tag" >"$images/$1.tar.ref"
  echo "$2" >"$images/$1.tar.inputs"
}

build_pause() {
  local pause imagepack h
  pause=$(tool pause)
  imagepack=$(tool imagepack)
  h=$( { sha256sum "$pause" | cut -d' ' -f1; echo "$tag"; cat "$0"; } | hash_of)
  if cached pause "$h"; then log "pause image cached"; echo "$images/pause.tar"; return; fi
  "$imagepack" -o "$images/pause.tar" -tag "$registry/pause:$tag" -entrypoint /pause -file "/pause=$pause"
  done_image pause "$h"
  echo "$images/pause.tar"
}

build_kueue() {
  local imagepack bin h
  imagepack=$(tool imagepack)
  bin=$("$root/hack/kueue/build.sh")
  h=$( { sha256sum "$bin" | cut -d' ' -f1; echo "$tag"; cat "$0"; } | hash_of)
  if cached kueue "$h"; then log "kueue image cached"; echo "$images/kueue.tar"; return; fi
  # Non-root like Kueue's own distroless image: its Deployment sets runAsNonRoot without a user.
  "$imagepack" -o "$images/kueue.tar" -tag "$registry/kueue:$tag" -entrypoint /manager -user 65532:65532 -file "/manager=$bin"
  done_image kueue "$h"
  echo "$images/kueue.tar"
}

build_go() {
  local name=$1; shift
  [ $# -gt 0 ] || { echo "usage: $0 go NAME PKG [PKG...]" >&2; exit 2; }
  local imagepack dir pkg bin files=() entry="" h
  imagepack=$(tool imagepack)
  dir=$images/$name.bin
  mkdir -p "$dir"
  for pkg in "$@"; do
    bin=$(basename "$pkg")
    (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$dir/$bin" "$pkg")
    files+=(-file "/$bin=$dir/$bin")
    [ -n "$entry" ] || entry=/$bin
  done
  h=$( { for pkg in "$@"; do sha256sum "$dir/$(basename "$pkg")"; done; echo "$tag $*"; cat "$0"; } | hash_of)
  if cached "$name" "$h"; then log "$name image cached"; echo "$images/$name.tar"; return; fi
  "$imagepack" -o "$images/$name.tar" -tag "$registry/$name:$tag" -entrypoint "$entry" "${files[@]}"
  done_image $name "$h"
  echo "$images/$name.tar"
}

# The student image's root file system: a minimal Debian of the host's release with python3 (the same
# minor version as the venv's, so its compiled wheels load), made once by debootstrap.
student_rootfs() {
  local rootfs=$cache/rootfs/student-bookworm params="bookworm minbase python3 v1"
  if [ "$(cat "$rootfs.stamp" 2>/dev/null)" = "$params" ]; then
    echo "$rootfs"
    return
  fi
  command -v debootstrap >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
  log "debootstrap: a minimal Debian bookworm with python3 into $rootfs (a few minutes, once)"
  local t0; t0=$(date +%s)
  rm -rf "$rootfs" "$rootfs.tmp"
  mkdir -p "$(dirname "$rootfs")"
  debootstrap --variant=minbase --include=python3 bookworm "$rootfs.tmp" http://deb.debian.org/debian >"$cache/rootfs/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/rootfs/debootstrap.log" >&2; exit 1; }
  # Slim: no package cache, lists, docs, manuals or translations.
  rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/lib/apt/lists/* \
    "$rootfs.tmp"/usr/share/doc/* "$rootfs.tmp"/usr/share/man/* "$rootfs.tmp"/usr/share/locale/*
  mv "$rootfs.tmp" "$rootfs"
  echo "$params" >"$rootfs.stamp"
  log "debootstrap done in $(($(date +%s) - t0))s"
  echo "$rootfs"
}

# The student image's base alone (Debian + python3, bash): small, for smoke tests and debugging pods.
build_debian() {
  local imagepack rootfs h
  imagepack=$(tool imagepack)
  rootfs=$(student_rootfs)
  h=$( { cat "$rootfs.stamp"; echo "$tag"; sha256sum "$imagepack"; } | hash_of)
  if cached debian "$h"; then log "debian image cached"; echo "$images/debian.tar"; return; fi
  "$imagepack" -o "$images/debian.tar" -tag "$registry/debian:$tag" -cmd '["bash"]' \
    -exclude '/dev/*' -exclude '/proc/*' -exclude '/sys/*' -exclude '/run/*' -exclude '/tmp/*' -dir "/=$rootfs"
  done_image debian "$h"
  echo "$images/debian.tar"
}

build_student() {
  local venv=${PYTHON_VENV:-$root/.venv} imagepack rootfs site dist=/usr/local/lib/python3.11/dist-packages h level=${STUDENT_GZIP_LEVEL:-0}
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.requirements.sha256" ]; then
    log "no student venv at $venv: running hack/python-env.sh"
    "$root/hack/python-env.sh"
  fi
  site=$(echo "$venv"/lib/python3.11/site-packages)
  [ -d "$site" ] || { echo "student image: $site missing (the image's Debian python is 3.11)" >&2; exit 1; }
  imagepack=$(tool imagepack)
  rootfs=$(student_rootfs)
  h=$( {
    cat "$rootfs.stamp" "$venv/.requirements.sha256"; ls "$site"
    (cd "$root/student" && find distillery_student -type f -name '*.py' | sort | xargs sha256sum)
    echo "$tag $level"; cat "$0"; sha256sum "$imagepack"
  } | hash_of)
  if cached student "$h"; then log "student image cached"; echo "$images/student.tar"; return; fi
  log "packing the student image (rootfs + venv site-packages + student/, gzip level $level)"
  # Layers: Debian; the CUDA libraries torch's PyPI wheel depends on; the other packages; our code. The
  # venv's editable-install hook of the student package is replaced by the package itself.
  "$imagepack" -o "$images/student.tar" -tag "$registry/student:$tag" -level "$level" -cache "$images/student.layers" \
    -cmd '["python3"]' -workdir /work -env PYTHONUNBUFFERED=1 -env HF_HUB_OFFLINE=1 \
    -exclude '/dev/*' -exclude '/proc/*' -exclude '/sys/*' -exclude '/run/*' -exclude '/tmp/*' \
    -exclude "$dist/nvidia" -exclude "$dist/__editable__*" -exclude "$dist/pip" -exclude "$dist/pip-*" \
    -dir "/=$rootfs" \
    -dir "$dist/nvidia=$site/nvidia" \
    -dir "$dist=$site" \
    -dir "$dist/distillery_student=$root/student/distillery_student"
  done_image student "$h"
  echo "$images/student.tar"
}

case "${1:-}" in
  pause) build_pause ;;
  go) shift; build_go "$@" ;;
  student) build_student ;;
  debian) build_debian ;;
  tool) tool "$2" ;;
  kueue) build_kueue ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
