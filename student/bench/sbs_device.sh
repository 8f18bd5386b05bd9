#!/usr/bin/env bash
# The step-by-step vs standard sweep on the device machine (one H200), results packed into $OUT.
#   bash student/bench/sbs_device.sh full     # the 24-point sweep (docs/benchmarks.md, "Step-by-step vs standard")
#   bash student/bench/sbs_device.sh probe    # the learnability probe: 12.5% and 100%, one seed, three set-ups
#   (locally: OUT=/tmp/o LIMIT=900 bash student/bench/sbs_device.sh probe --quick --train-records 200 --steps 5 --deadline 0)
# Extra arguments after the first go to every sbs_sweep.py call (e.g. --steps 1500).
set -uo pipefail
WHAT=${1:-full}
shift || true
OUT="${OUT:-/tmp/sbs-out}"
W=/tmp/sbs-work
mkdir -p "$OUT" "$W"
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1  # the trainers' host work is Python; a GPU needs no CPU threads
rm -rf "$W"
mkdir -p "$W"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c 'import torch, transformers, matplotlib; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'

pack() {  # at most 8 files come back: tables, results, the full run's curve; the rest (logs, configs, metrics) in a tgz
  for d in "$W"/*/; do
    n=$(basename "$d")
    for f in table.md results.json; do [[ -f $d/$f ]] && cp "$d/$f" "$OUT/$n-$f"; done
  done
  [[ -d $W/full ]] && cp "$W"/full/curve.* "$OUT"/ 2>/dev/null
  tar czf "$OUT/logs.tgz" -C "$W" --exclude=base-model --exclude=data --exclude=annotations --exclude=subsets \
    --exclude=model --exclude=checkpoints .
}

case "$WHAT" in
  full)  # 24 points, 12 at a time: about 4.5 minutes (docs/benchmarks.md); points still running at 330 s are cut off
    timeout "${LIMIT:-345}" python3 sbs_sweep.py --out "$W/full" --parallel 12 --deadline 330 "$@" 2>&1 | tee "$W/full.log"
    ;;
  full2)  # the same 24 points on a 2-GPU machine (nvidia-h200-x2), all at once, 12 per GPU
    timeout "${LIMIT:-345}" python3 sbs_sweep.py --out "$W/full" --parallel 24 --gpus 2 --deadline 330 "$@" 2>&1 | tee "$W/full.log"
    ;;
  probe)  # three set-ups at once (12 processes): batch size and model size, and the speed under 12-way load
    common=(--task sum-compare --digits 3 --fractions 0.125 1 --seeds 0 --parallel 4 --deadline 120)
    setups=("mini-b64:--shape mini --batch-size 64 --learning-rate 1e-3 --steps 600"
            "mini-b256:--shape mini --batch-size 256 --learning-rate 2e-3 --steps 300"
            "small-b64:--shape small --batch-size 64 --learning-rate 1e-3 --steps 400")
    for s in "${setups[@]}"; do
      # shellcheck disable=SC2086
      timeout "${LIMIT:-140}" python3 sbs_sweep.py --out "$W/${s%%:*}" "${common[@]}" ${s#*:} "$@" >"$W/${s%%:*}.log" 2>&1 &
    done
    wait
    tail -n 12 "$W"/*.log
    ;;
  *) echo "usage: $0 full|full2|probe [sbs_sweep.py args]"; exit 2 ;;
esac
pack
ls -la "$OUT"
