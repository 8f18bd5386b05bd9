"""Decoder-only students at practical sizes on one GPU, through the trainer's Stepper: Qwen2.5-0.5B and -1.5B
shapes with full fine-tuning, a Llama-3.1-8B shape with LoRA (PEFT, rank 16 on q/k/v/o and the MLP).
Random weights, the records of common.make_records (source, newline-free, then target), SDPA attention,
micro-batches picked by the trainer's memory estimate. MFU as in common.py.

    python3 bench/decoder_step.py --models qwen-0.5b qwen-1.5b llama-8b --batch 32 32 16 --steps 10 --repeats 3
    python3 bench/decoder_step.py --models qwen-0.5b --batch 32 --packing   # packed rows (packing.py), random batches
    python3 bench/decoder_step.py --models qwen-1.5b --batch 64 --packing --checkpointing both  # with and without
                                                 # activation checkpointing, interleaved within each repeat
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
from typing import Any

import torch

from common import DECODER_SHAPES, PEAK_TFLOPS, Tok, make_records, median_spread, timed
from distillery_student import lora
from distillery_student.buckets import epoch_batches
from distillery_student.modeling import Encoder
from distillery_student.packing import PACK_LENGTH
from distillery_student.parallel import Dist
from distillery_student.step import StepOptions, Stepper

CUDA = torch.device("cuda")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def new_decoder(name: str, use_lora: bool) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    shape = dict(DECODER_SHAPES[name])
    kind = shape.pop("kind")
    cfg_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if kind == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    cfg = cfg_cls(pad_token_id=0, eos_token_id=1, bos_token_id=None, max_position_embeddings=4096, **shape)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if use_lora else torch.float32  # a LoRA base is loaded in bf16, as the trainer does
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with CUDA:
            model = model_cls(cfg)
    finally:
        torch.set_default_dtype(old)
    if use_lora:
        model = lora.apply(model, rank=16, alpha=32, dropout=0.0, target_modules=LORA_TARGETS)
    return model.train()


def counts(model: torch.nn.Module) -> tuple[int, int, int]:
    """(trainable non-embedding params, frozen non-embedding params, lm_head params)."""
    head = model.get_output_embeddings().weight
    emb = model.get_input_embeddings().weight
    train = frozen = 0
    for p in model.parameters():
        if p is head or p is emb:
            continue
        if p.requires_grad:
            train += p.numel()
        else:
            frozen += p.numel()
    return train, frozen, head.numel()


def run(name: str, batch: int, steps: int, warmup: int, memory_gb: float, pack: bool = False,
        ckpt: bool = False) -> dict[str, Any]:
    use_lora = name == "llama-8b"
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = new_decoder(name, use_lora)
    train_p, frozen_p, head_p = counts(model)
    vocab = model.config.vocab_size
    records = make_records(batch * 20, seed=1, vocab=vocab)
    enc = Encoder(Tok(), "causal", 10**6, 10**6, pad_multiple=16)
    stepper = Stepper(model, "causal", enc, CUDA, Dist(), StepOptions(
        bf16=True, learning_rate=1e-5, memory_bytes=memory_gb * 2**30, pack_length=PACK_LENGTH if pack else 0,
        activation_checkpointing=ckpt),
        lambda s: 1.0)
    lengths = [sum(len(r.source) + (len(r.target) if r.task else 0) for r in rs) for rs in records]
    batches = epoch_batches(lengths, batch, seed=0, epoch=0, window=1 if pack else 50)  # as train() draws them
    seen: list[int] = []
    micro: list[int] = []

    def step(i: int) -> None:
        idx = batches[i % len(batches)]
        mine = [records[j] for j in idx]
        norm = torch.tensor([sum(len(r.target) for rs in mine for r in rs if r.task == t) for t in (0, 1)],
                            dtype=torch.float32, device=CUDA)
        chunks = stepper.micro_batches(mine, 0)
        stepper.step(chunks, norm, 1.0)
        if i >= warmup:
            seen.extend(idx)
            micro.append(len(chunks))

    secs = timed(step, warmup, steps)
    rows = [r for j in seen for r in records[j]]
    all_tok = sum(len(r.source) + len(r.target) for r in rows)
    tgt = sum(len(r.target) for r in rows)
    frozen_factor = 4.0 if use_lora else 6.0
    flops = 6.0 * train_p * all_tok + frozen_factor * frozen_p * all_tok + 6.0 * head_p * tgt
    out = {"model": name, "lora": use_lora, "checkpointing": ckpt, "batch": batch, "ms_per_step": secs / steps * 1e3,
           "tok_s": all_tok / secs, "mfu": flops / secs / (PEAK_TFLOPS * 1e12),
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "micro_batches": statistics.median(micro),
           "params_b": (train_p + frozen_p + head_p) / 1e9}
    del stepper, model
    gc.collect()  # a LoRA model and its PEFT wrapper refer to each other
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["qwen-0.5b", "qwen-1.5b", "llama-8b"])
    p.add_argument("--batch", type=int, nargs="+", default=[32, 32, 16])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory-gb", type=float, default=80.0, help="plan micro-batches for an 80 GB card")
    p.add_argument("--packing", action="store_true", help="packed micro-batches (train --packing on)")
    p.add_argument("--checkpointing", choices=["off", "on", "both"], default="off",
                   help="activation checkpointing (training.activationCheckpointing); both: each repeat runs both")
    p.add_argument("--json", default="")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    results = []
    ckpts = {"off": [False], "on": [True], "both": [False, True]}[a.checkpointing]
    for name, batch in zip(a.models, a.batch * len(a.models)):
        runs: dict[bool, list[dict[str, Any]]] = {c: [] for c in ckpts}
        for rep in range(a.repeats):
            for c in ckpts:
                r = run(name, batch, a.steps, a.warmup, a.memory_gb, a.packing, c)
                runs[c].append(r)
                print(f"  {name}{' ckpt' if c else ''} rep {rep}: {r['ms_per_step']:.0f} ms/step {r['tok_s']:.0f} "
                      f"tok/s MFU {r['mfu'] * 100:.1f}% peak {r['peak_gib']:.1f} GiB micro {r['micro_batches']}",
                      flush=True)
        for c, rs in runs.items():
            results.append({"model": name, "checkpointing": c, "runs": rs})
            print(f"{name} ({rs[0]['params_b']:.2f}B{' LoRA r16' if rs[0]['lora'] else ' full FT'}, batch {batch}"
                  f"{', packed' if a.packing else ''}{', checkpointing' if c else ''}) | "
                  f"tok/s {median_spread([x['tok_s'] for x in rs])} | MFU "
                  f"{statistics.median(x['mfu'] for x in rs) * 100:.1f}% | peak "
                  f"{max(x['peak_gib'] for x in rs):.1f} GiB | micro-batches "
                  f"{statistics.median(x['micro_batches'] for x in rs):g}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
