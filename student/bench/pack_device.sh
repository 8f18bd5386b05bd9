#!/usr/bin/env bash
# Sequence packing on the 2-GPU machine, in one call (docs/benchmarks.md, "Packed batches"): GPU 0 times
# t5-large at 32 records, GPU 1 checks packed against padded losses, then times t5-base at 64 records.
# Logs and JSON go to $OUT. Each part has its own time limit.
set -uo pipefail
OUT="${OUT:-/tmp/pack-out}"
mkdir -p "$OUT"
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
V="${VARIANTS:-hf-fair ours-eager ours-compiled ours-packed-eager ours-packed ours-packed-compiled}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
(CUDA_VISIBLE_DEVICES=0 timeout "${LARGE_S:-520}" python3 train_step.py --models t5-large --batch 32 --steps 10 --warmup 2 \
  --repeats 3 --variants $V --json "$OUT/large.json" > "$OUT/large.log" 2>&1; echo "large exit $?" >> "$OUT/large.log") &
(export CUDA_VISIBLE_DEVICES=1
 timeout "${CHECK_S:-90}" python3 train_step.py --models t5-base --batch 64 --steps 12 --check-packing > "$OUT/check.log" 2>&1
 echo "check exit $?" >> "$OUT/check.log"
 timeout "${BASE_S:-420}" python3 train_step.py --models t5-base --batch 64 --steps 10 --warmup 2 --repeats 3 --variants $V \
   --json "$OUT/base.json" > "$OUT/base.log" 2>&1
 echo "base exit $?" >> "$OUT/base.log") &
wait
tail -n 12 "$OUT"/*.log
