#!/usr/bin/env bash
# The 2-GPU run: scaling and loss curves (bench/scaling.py) under DDP and FSDP against 1 GPU at the same
# global batch, then a real `distillery_student train` under torchrun with one rank killed (SIGKILL) mid-run
# and the job started again, which must resume from its newest checkpoint. Run from student/; OUT is where
# the JSON and logs go.
set -uo pipefail
OUT="${OUT:-/tmp/multi-gpu}"
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 OMP_NUM_THREADS=4
STEPS="${STEPS:-30}"
cd "$(dirname "$0")"
if [[ -z "${SKIP_SCALING:-}" ]]; then
python3 scaling.py --steps "$STEPS" --json "$OUT/scale-1gpu.json"
for s in DDP FSDP; do
  torchrun --standalone --nproc-per-node 2 scaling.py --steps "$STEPS" --strategy "$s" --json "$OUT/scale-$s.json"
  python3 scaling.py --compare "$OUT/scale-1gpu.json" "$OUT/scale-$s.json"
done
python3 - "$OUT" <<'PY'
import json, sys
d = sys.argv[1]
one = json.load(open(f"{d}/scale-1gpu.json"))
for s in ("DDP", "FSDP"):
    x = json.load(open(f"{d}/scale-{s}.json"))
    print(f"scaling {s}: {x['tok_s']:.0f} tok/s on 2 GPUs vs {one['tok_s']:.0f} on 1: efficiency "
          f"{x['tok_s'] / (2 * one['tok_s']) * 100:.0f}%, peak {x['peak_gib']:.1f} vs {one['peak_gib']:.1f} GiB/GPU")
PY
fi

cd ..
# A rank dies (SIGKILL, as when its GPU fails); the other is killed too, as Kubernetes does to the pod, rather
# than waiting out torchrun's 30 s grace period; the restarted job must resume from its newest checkpoint.
for s in ${KILL_STRATEGIES:-DDP FSDP}; do
  cfg=$(python3 bench/make_job.py /tmp/killjob --strategy "$s" --steps 60 --checkpoint-every 10)
  ckdir="$(dirname "$cfg")/checkpoints"
  torchrun --standalone --nproc-per-node 2 -m distillery_student train --config "$cfg" --termination-log /tmp/term-$s \
    >"$OUT/kill-$s-first.log" 2>&1 &
  tp=$!
  for _ in $(seq 1 600); do [[ -d "$ckdir/step-00000020" ]] && break; sleep 0.2; done
  killed=""
  for p in $(pgrep -P "$tp"); do
    if tr '\0' '\n' </proc/$p/environ | grep -qx 'RANK=1'; then kill -9 "$p"; killed=$p; fi
  done
  sleep 1
  kill -9 $(pgrep -P "$tp") "$tp" 2>/dev/null
  wait "$tp"
  echo "$s: killed rank 1 (pid ${killed:-none}) with checkpoints $(ls "$ckdir" | tr '\n' ' ')"
  torchrun --standalone --nproc-per-node 2 -m distillery_student train --config "$cfg" --termination-log /tmp/term-$s \
    >"$OUT/kill-$s-second.log" 2>&1
  echo "$s: restart exited $?: $(grep -ho 'resumed from .*' "$OUT/kill-$s-second.log" | head -1); summary $(cat /tmp/term-$s)"
done
