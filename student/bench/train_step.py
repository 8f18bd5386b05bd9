"""Training-step benchmark: the trainer's step vs a naive Hugging Face step, T5-base and T5-large shapes.

Random weights, bf16 autocast, realistic variable-length records (input, short label, rationale). Both runs
see the same records and count the same useful (non-pad) tokens; tokens/s and MFU (model FLOPs of the
useful tokens, 6 x non-embedding params x tokens, lm_head included, against PEAK_TFLOPS) are printed.

naive: plain T5ForConditionalGeneration, records in random order, two forward passes per step (label task,
rationale task), each padded to the batch maximum, torch AdamW (foreach).
ours:  the trainer's code path (Encoder.collate_tasks + TaskLosses): length-bucketed batches (epoch_batches),
token-mean loss per task, fused AdamW; "ours" runs both tasks in one forward pass (the trainer's default),
lengths padded to a multiple of 16 and eager attention as the trainer does on a GPU ("ours-sdpa" keeps
Hugging Face's default SDPA attention); optionally torch.compile.

    python student/bench/train_step.py --models t5-base t5-large --steps 20 --batch 64 32
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillery_student.data import TASK_LABEL, TASK_RATIONALE, epoch_batches  # noqa: E402
from distillery_student.modeling import Encoder, Row, TaskLosses, combine_losses, to_device  # noqa: E402

PEAK_TFLOPS = 790.0
SHAPES = {
    "t5-base": dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
    "t5-large": dict(d_model=1024, d_kv=64, d_ff=4096, num_layers=24, num_heads=16),
}
VOCAB = 32128


class _Tok:
    pad_token_id, eos_token_id, bos_token_id = 0, 1, None


def make_records(n: int, seed: int, max_in: int, max_rat: int) -> list[list[Row]]:
    """Lengths like NLI/CQA with CoT rationales: log-normal inputs (median ~90 tokens), rationales ~45."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        li = min(max_in, max(8, int(rng.lognormvariate(math.log(90), 0.6))))
        lr = min(max_rat, max(4, int(rng.lognormvariate(math.log(45), 0.5))))
        ll = rng.randint(2, 4)
        src = [rng.randrange(2, VOCAB) for _ in range(li)] + [1]
        out.append([Row(src, [rng.randrange(2, VOCAB) for _ in range(ll)] + [1], TASK_LABEL),
                    Row(src, [rng.randrange(2, VOCAB) for _ in range(lr)] + [1], TASK_RATIONALE)])
    return out


def flops_per_token(model: torch.nn.Module) -> tuple[float, float]:
    enc = sum(p.numel() for n, p in model.encoder.named_parameters() if "embed_tokens" not in n)
    dec = sum(p.numel() for n, p in model.decoder.named_parameters() if "embed_tokens" not in n)
    head = model.lm_head.weight.numel()
    return 6.0 * enc, 6.0 * (dec + head)


def useful_tokens(records: list[list[Row]]) -> tuple[int, int]:
    enc = sum(len(r.source) for rs in records for r in rs)
    dec = sum(len(r.target) for rs in records for r in rs)
    return enc, dec


def new_model(shape: str, seed: int = 0, attn: str = "") -> torch.nn.Module:
    """attn "" keeps Hugging Face's default (SDPA); the trainer loads seq2seq students with "eager"."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=VOCAB, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.1,
                   **SHAPES[shape])
    model = T5ForConditionalGeneration(cfg)
    if attn:  # as from_pretrained(attn_implementation=...) does: every sub-config
        for m in model.modules():
            if hasattr(m, "config"):
                m.config._attn_implementation = attn
    return model.cuda()


def run_naive(shape: str, records, batch: int, steps: int, warmup: int) -> tuple[float, list]:
    model = new_model(shape)
    model.train()
    enc = Encoder(_Tok(), "seq2seq", 10**6, 10**6)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    order = list(range(len(records)))
    random.Random(0).shuffle(order)
    t0, counted = 0.0, []
    for step in range(warmup + steps):
        if step == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        idx = order[(step % (len(records) // batch)) * batch :][:batch]
        if step >= warmup:
            counted.extend(idx)
        loss = 0.0
        for task in (TASK_LABEL, TASK_RATIONALE):
            b = to_device(enc.collate([records[i][task] for i in idx]), torch.device("cuda"))
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = loss + model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                    labels=b["labels"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return time.perf_counter() - t0, [records[i] for i in counted]


def run_ours(shape: str, records, batch: int, steps: int, warmup: int, compile_model: bool, concat: bool,
             pad_multiple: int = 16, attn: str = "eager") -> tuple[float, list]:
    model = new_model(shape, attn=attn)
    model.train()
    enc = Encoder(_Tok(), "seq2seq", 10**6, 10**6, pad_multiple=pad_multiple)
    losses = TaskLosses(model, "seq2seq")
    fwd = torch.compile(losses, dynamic=True) if compile_model else losses
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    lengths = [sum(len(r.source) + (len(r.target) if r.task else 0) for r in rs) for rs in records]
    batches = epoch_batches(lengths, batch, seed=0, epoch=0)
    t0, counted = 0.0, []
    for step in range(warmup + steps):
        if step == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        rows = [r for i in batches[step % len(batches)] for r in records[i]]
        if step >= warmup:
            counted.extend(batches[step % len(batches)])
        bs = [to_device(b, torch.device("cuda")) for b in enc.collate_tasks(rows, concat)]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            sums = fwd(bs)
        combine_losses(sums, 1.0).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return time.perf_counter() - t0, [records[i] for i in counted]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["t5-base", "t5-large"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, nargs="+", default=[64, 32], help="records per step, one per model")
    p.add_argument("--compile", action="store_true", help="also time ours with torch.compile")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}; batch {a.batch} records, "
          f"{a.steps} timed steps after {a.warmup}; peak {PEAK_TFLOPS} TFLOP/s")
    x = torch.zeros(16, device="cuda")
    for _ in range(100):
        x.add_(1)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(2000):
        x.add_(1)
    torch.cuda.synchronize()
    print(f"launch overhead: {(time.perf_counter() - t) / 2000 * 1e6:.1f} us per tiny kernel")
    for shape, batch in zip(a.models, a.batch * len(a.models)):
        # a pool of records: each timed step of either run takes `batch` of them; the same pool for both
        pool = make_records(batch * 50, seed=1, max_in=512, max_rat=256)
        model = new_model(shape)
        fe, fd = flops_per_token(model)
        del model
        torch.cuda.empty_cache()
        variants = [("naive", lambda: run_naive(shape, pool, batch, a.steps, a.warmup)),
                    ("ours-sdpa", lambda: run_ours(shape, pool, batch, a.steps, a.warmup, False, True, 16, "")),
                    ("ours", lambda: run_ours(shape, pool, batch, a.steps, a.warmup, False, True))]
        if a.compile:
            variants.append(("ours+compile", lambda: run_ours(shape, pool, batch, a.steps, a.warmup, True, True)))
        base = None
        for name, fn in variants:
            torch.cuda.reset_peak_memory_stats()
            secs, seen = fn()
            te, td = useful_tokens(seen)  # the non-pad tokens of the timed steps
            tok_s = (te + td) / secs
            flops = fe * te + fd * td
            mfu = flops / secs / (PEAK_TFLOPS * 1e12)
            base = base or tok_s
            print(f"{shape:9s} {name:13s} {secs / a.steps * 1000:8.1f} ms/step {tok_s:10.0f} useful tok/s "
                  f"MFU {mfu * 100:5.1f}%  x{tok_s / base:.2f}  batch {batch}  peak mem "
                  f"{torch.cuda.max_memory_allocated() / 2**30:.0f} GiB", flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
