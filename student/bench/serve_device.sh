#!/usr/bin/env bash
# The Serving figures of docs/benchmarks.md in one call, most wanted first (each server compiles its decoder and
# captures its CUDA graphs before it is ready: 61 s with one lane, 96 s with two, for t5-base on an H200; part 1
# took about 5 minutes in the latest run: expect 7-9 minutes in all):
#   1. t5-base: the decoders (the floor), the new server with 1 and 2 lanes at 1, 8, 64, 256 clients, and the
#      previous server at 64 clients, in one process so the ratios come from the same minutes;
#   2. a ~0.5B decoder: the decoders and the new server at 1 client;
#   3. t5-base again (the same model): the previous server at more clients, and the new one with no model.
# Results land in $OUT/{t5,decoder,legacy}.json as they come, so a run cut short keeps what it measured.
#   OUT=/tmp/out LEGACY=/tmp/legacy_serve.py bash bench/serve_device.sh
#   DEVICE=cpu T5=tiny DECODER=tiny-causal BENCH_SECONDS=1 REPS=1 OUT=/tmp/out LEGACY=... bash bench/serve_device.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT}
export OUT
DEVICE=${DEVICE:-cuda} T5=${T5:-t5-base} DECODER=${DECODER:-decoder-0.5b}
SECONDS_=${BENCH_SECONDS:-1} REPS=${REPS:-3} LEGACY=${LEGACY:-}
MODEL=$(mktemp -d)/t5
common=(--device "$DEVICE" --seconds "$SECONDS_" --reps "$REPS")
bench() { python3 bench/serve_bench.py "${common[@]}" "$@" 2>&1 | grep -v "Writing model shards"; }

bench --shape "$T5" --model-dir "$MODEL" --phases decoders new legacy --clients 1 8 64 256 --lanes 1 2 \
  --legacy-serve "$LEGACY" --legacy-clients 64 --json t5.json
bench --shape "$DECODER" --phases decoders new --clients 1 --json decoder.json
bench --shape "$T5" --model-dir "$MODEL" --phases legacy host-only --legacy-serve "$LEGACY" \
  --legacy-clients 1 8 256 --host-only-clients 64 --json legacy.json
