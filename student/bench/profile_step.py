"""Where a T5 step spends GPU time (random weights, fp32 weights under autocast, as the trainer's earlier
default): top CUDA kernels by torch.profiler, and the step time with eager vs SDPA attention.

    python student/bench/profile_step.py --shape t5-base --batch 64
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from common import T5_VOCAB, Tok, make_records  # type: ignore
from train_step import new_t5  # type: ignore
from distillery_student.buckets import epoch_batches
from distillery_student.modeling import Encoder, TaskLosses, combine_losses, to_device


def steps(model, enc, records, batches, n, opt):
    losses = TaskLosses(model, "seq2seq")
    for i in range(n):
        rows = [r for j in batches[i % len(batches)] for r in records[j]]
        bs = [to_device(b, torch.device("cuda")) for b in enc.collate_tasks(rows, True)]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            sums = losses(bs)
        combine_losses(sums, 1.0).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="t5-base")
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    records = make_records(a.batch * 50, seed=1, vocab=T5_VOCAB)
    lengths = [sum(len(r.source) + (len(r.target) if r.task else 0) for r in rs) for rs in records]
    batches = epoch_batches(lengths, a.batch, seed=0, epoch=0)
    enc = Encoder(Tok(), "seq2seq", 10**6, 10**6, pad_multiple=16)
    for attn in ("sdpa", "eager"):
        model = new_t5(a.shape, attn)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        steps(model, enc, records, batches, 3, opt)
        torch.cuda.synchronize()
        t = time.perf_counter()
        steps(model, enc, records, batches, 10, opt)
        torch.cuda.synchronize()
        print(f"{a.shape} attn={attn}: {(time.perf_counter() - t) / 10 * 1000:.1f} ms/step", flush=True)
        if attn == "sdpa":
            with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
                steps(model, enc, records, batches, 3, opt)
                torch.cuda.synchronize()
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))
        del model, opt
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
