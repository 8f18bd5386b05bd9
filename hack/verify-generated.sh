#!/usr/bin/env bash
# Fails when `make generate manifests` changed committed files: generated code must be committed.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(api config/crd config/rbac)
if ! git diff --quiet -- "${paths[@]}" || [ -n "$(git ls-files --others --exclude-standard -- "${paths[@]}")" ]; then
  echo "generated files are stale: run 'make generate manifests' and commit the result:" >&2
  git status --short -- "${paths[@]}" >&2
  git diff --stat -- "${paths[@]}" >&2
  exit 1
fi
echo "generated files are up to date"
