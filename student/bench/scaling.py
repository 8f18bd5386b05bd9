"""Data-parallel scaling of the trainer's Stepper: run alone (1 GPU) or under torchrun (N GPUs), DDP or FSDP,
at the same global batch and seed. Dropout is 0, so every run sees the same loss curve up to bf16 rounding;
rank 0 prints tokens/s (useful tokens of all ranks) and writes the per-step losses.

    python3 bench/scaling.py --json 1gpu.json
    torchrun --nproc-per-node 2 bench/scaling.py --strategy FSDP --json fsdp.json
    python3 bench/scaling.py --compare 1gpu.json fsdp.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from common import T5_SHAPES, T5_VOCAB, Tok, make_records, useful_tokens
from distillery_student.buckets import epoch_batches
from distillery_student.modeling import Encoder
from distillery_student.parallel import init_distributed
from distillery_student.step import StepOptions, Stepper


def new_model(shape: str) -> torch.nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=T5_VOCAB, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   dropout_rate=0.0, tie_word_embeddings=False, **T5_SHAPES[shape])
    return T5ForConditionalGeneration(cfg).train()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="t5-base")
    p.add_argument("--batch", type=int, default=64, help="global records per step")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--strategy", default="DDP")
    p.add_argument("--json", default="")
    p.add_argument("--compare", nargs=2, default=None, help="two JSON files: the largest loss difference")
    a = p.parse_args()
    if a.compare:
        x, y = (json.load(open(f)) for f in a.compare)
        diffs = [abs(u - v) / abs(u) for u, v in zip(x["losses"], y["losses"])]
        print(f"{a.compare[1]} vs {a.compare[0]}: {len(diffs)} steps, loss max relative difference "
              f"{max(diffs):.2e}, last loss {x['losses'][-1]:.4f} vs {y['losses'][-1]:.4f}")
        return
    dd = init_distributed("cuda")
    device = torch.device(f"cuda:{dd.local_rank}")
    torch.cuda.set_device(device)
    torch.backends.cuda.matmul.allow_tf32 = True
    records = make_records(a.batch * 20, seed=1, vocab=T5_VOCAB)
    enc = Encoder(Tok(), "seq2seq", 10**6, 10**6, pad_multiple=16)
    stepper = Stepper(new_model(a.shape), "seq2seq", enc, device, dd, StepOptions(
        strategy=a.strategy, bf16=True, learning_rate=1e-4,
        memory_bytes=float(torch.cuda.get_device_properties(device).total_memory)), lambda s: 1.0)
    lengths = [sum(len(r.source) + (len(r.target) if r.task else 0) for r in rs) for rs in records]
    batches = epoch_batches(lengths, a.batch, seed=0, epoch=0, min_batch=dd.world)
    losses: list[float] = []
    seen: list[int] = []
    t0 = 0.0
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            torch.cuda.synchronize()
            dd.barrier()
            t0 = time.perf_counter()
        idx = batches[i % len(batches)]
        mine = [records[j] for j in idx[dd.rank :: dd.world]]
        norm = torch.tensor([sum(len(r.target) for rs in mine for r in rs if r.task == t) for t in (0, 1)],
                            dtype=torch.float32, device=device)
        dd.all_sum(norm)
        parts = dd.all_sum(stepper.step(stepper.micro_batches(mine, 0), norm, 1.0))
        losses.append(float(parts[0]))
        if i >= a.warmup:
            seen.extend(idx)
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    te, td = useful_tokens([records[j] for j in seen])
    peak = torch.tensor([torch.cuda.max_memory_allocated(device) / 2**30], device=device)
    dd.all_max(peak)
    if dd.rank == 0:
        out = {"world": dd.world, "strategy": a.strategy if dd.world > 1 else "1 GPU", "tok_s": (te + td) / secs,
               "ms_per_step": secs / a.steps * 1e3, "peak_gib": float(peak), "losses": losses}
        print(f"{out['strategy']:6s} x{dd.world}: {out['ms_per_step']:.1f} ms/step {out['tok_s']:.0f} useful tok/s "
              f"peak {out['peak_gib']:.1f} GiB/GPU, loss {losses[0]:.4f} -> {losses[-1]:.4f}", flush=True)
        if a.json:
            json.dump(out, open(a.json, "w"))
    if dd.enabled:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
