#!/usr/bin/env bash
# Sequence packing on the 2-GPU machine (docs/benchmarks.md, "Packed batches"), one part per call:
#   step  (default) GPU 0 times t5-large at 32 records; GPU 1 checks packed against padded losses, then times
#         t5-base at 64 records.
#   more  GPU 0 times t5-large at 64 records (micro-batches planned for 200 GB: one per step); GPU 1 runs
#         train() jobs (120 and 500 steps) packed and padded.
#   last  GPU 0: the worst batch of a default spec, packed, planned for 80 GiB; a 500-step train() job packed
#         with graphs and with compiled blocks. GPU 1: t5-large at 64 records planned for the card's own memory.
#   memfit  GPU 0: the worst batch packed again (after the estimate's fix); GPU 1: t5-large at 64 records again.
#   decoder a Qwen2.5-0.5B-shaped student at 32 records, padded on GPU 0 and packed on GPU 1.
# One GPU (parts run one after the other; a later session):
#   fit       packed micro-batches planned for 80 GiB (the process capped there): t5-base, t5-large and qwen-1.5b
#             eagerly (train()'s default on a GPU) on the worst, the half-row and the benchmark's largest batch;
#             then t5-large with compiled blocks.
#   fitgraphs under CUDA graphs: t5-large with one micro-batch per step (planned for 200 GiB: the graphs' pool
#             beside an eager step); t5-large and t5-base planned for 80 GiB; then with compiled blocks too.
#   plan      t5-large at 64 records, packed and compiled, planned for the card as train() plans it: with graphs,
#             then without (spec.training.compile).
#   loopce    a 500-step t5-base train() job, packed, with compiled blocks and no graphs.
#   lora8b    the Llama-3.1-8B shape with LoRA at 16 records, padded then packed.
# Logs and JSON go to $OUT. Each part has its own time limit.
set -uo pipefail
OUT="${OUT:-/tmp/pack-out}"
mkdir -p "$OUT"
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
run() {  # run GPU NAME SECONDS COMMAND...: on one GPU, its log in $OUT/NAME.log
  local gpu=$1 name=$2 secs=$3; shift 3
  CUDA_VISIBLE_DEVICES=$gpu timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
  echo "$name exit $?" >> "$OUT/$name.log"
}
case "${1:-step}" in
step)
  V="${VARIANTS:-hf-fair ours-eager ours-compiled ours-packed-eager ours-packed ours-packed-compiled}"
  run 0 large 520 python3 train_step.py --models t5-large --batch 32 --steps 10 --warmup 2 --repeats 3 --variants $V \
    --json "$OUT/large.json" &
  (run 1 check 90 python3 train_step.py --models t5-base --batch 64 --steps 12 --check-packing
   run 1 base 420 python3 train_step.py --models t5-base --batch 64 --steps 10 --warmup 2 --repeats 3 --variants $V \
     --json "$OUT/base.json") &
  ;;
more)
  run 0 large64 500 python3 train_step.py --models t5-large --batch 64 --steps 10 --warmup 2 --repeats 3 --memory-gb 200 \
    --variants ours-compiled ours-packed-eager ours-packed-compiled --json "$OUT/large64.json" &
  (run 1 loop 240 python3 train_loop.py --shape t5-base --steps 120 --records 1500 --repeats 3 --order packed eager
   run 1 loop500 260 python3 train_loop.py --shape t5-base --steps 500 --records 6000 --repeats 1 --order packed eager) &
  ;;
last)
  (run 0 memfit 120 python3 memory_fit.py --models t5-base t5-large --packing
   run 0 loop500g 420 python3 train_loop.py --shape t5-base --steps 500 --records 6000 --repeats 1 \
     --order packed-graphs packed-compiled) &
  run 1 large64card 330 python3 train_step.py --models t5-large --batch 64 --steps 10 --warmup 2 --repeats 3 \
    --variants ours-packed-compiled --json "$OUT/large64card.json" &
  ;;
memfit)
  run 0 memfit 150 python3 memory_fit.py --models t5-base t5-large --packing &
  run 1 large64b 330 python3 train_step.py --models t5-large --batch 64 --steps 10 --warmup 2 --repeats 3 --memory-gb 200 \
    --variants ours-compiled ours-packed-compiled --json "$OUT/large64b.json" &
  ;;
decoder)
  run 0 dec_padded 200 python3 decoder_step.py --models qwen-0.5b --batch 32 --steps 6 --warmup 2 --repeats 3 &
  run 1 dec_packed 200 python3 decoder_step.py --models qwen-0.5b --batch 32 --steps 6 --warmup 2 --repeats 3 --packing &
  ;;
fit)
  run 0 fit_eager 280 python3 memory_fit.py --packing --models t5-base t5-large qwen-1.5b --records worst half bench
  run 0 fit_c80 230 python3 memory_fit.py --packing --compile --models t5-large --records worst bench
  ;;
fitgraphs)
  run 0 pools 150 python3 memory_fit.py --packing --graphs --memory-gb 200 --models t5-large --records bench worst
  run 0 fit_g80 200 python3 memory_fit.py --packing --graphs --models t5-large t5-base --records worst bench half
  run 0 fit_cg80 240 python3 memory_fit.py --packing --compile --graphs --models t5-large --records worst bench
  ;;
plan)
  run 0 large64plan 320 python3 train_step.py --models t5-large --batch 64 --steps 10 --warmup 2 --repeats 3 \
    --variants ours-packed-compiled --json "$OUT/large64plan.json"
  run 0 large64ce 270 python3 train_step.py --models t5-large --batch 64 --steps 10 --warmup 2 --repeats 3 \
    --variants ours-packed-compiled-eager --json "$OUT/large64ce.json"
  ;;
loopce)
  run 0 loop_ce 240 python3 train_loop.py --shape t5-base --steps 500 --records 6000 --repeats 1 --order packed-compiled-eager
  ;;
lora8b)
  run 0 lora_padded 180 python3 decoder_step.py --models llama-8b --batch 16 --steps 6 --warmup 2 --repeats 3
  run 0 lora_packed 180 python3 decoder_step.py --models llama-8b --batch 16 --steps 6 --warmup 2 --repeats 3 --packing
  ;;
esac
wait
tail -n 12 "$OUT"/*.log
