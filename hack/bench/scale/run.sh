#!/usr/bin/env bash
# The scale benchmark for each N (default: 100 1000), each on a fresh simulated cluster (hack/kwok/up.sh,
# then down.sh), printing one table. Extra arguments after -- go to the benchmark, e.g. -- -settle 60s.
#
#   hack/bench/scale/run.sh            hack/bench/scale/run.sh 100 -- -shards 4
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
ns=() args=()
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then shift; args=("$@"); break; fi
  ns+=("$1"); shift
done
[ ${#ns[@]} -gt 0 ] || ns=(100 1000)
cd "$ROOT"
go build -o "$ROOT/bin/bench-scale" ./hack/bench/scale
trap '"$ROOT/hack/kwok/down.sh" >/dev/null 2>&1 || true' EXIT
header=true rows=""
for n in "${ns[@]}"; do
  "$ROOT/hack/kwok/down.sh" >/dev/null 2>&1 || true
  "$ROOT/hack/kwok/up.sh" 2>&1 | tail -1 >&2
  out=$("$ROOT/bin/bench-scale" -n "$n" -header="$header" "${args[@]}")
  rows+="$out"$'\n'
  header=false
done
printf '\n%s' "$rows"
