"""Training step: the trainer against the fair competitor, T5-base and T5-large shapes, one script, one run.

Random weights, the same variable-length records (common.make_records) for every variant; each variant
counts the same useful (non-pad) tokens of the steps it timed. Variants, interleaved, each `--repeats` times
(a fresh model each time; median and [min-max] printed):

  hf-fair    the competitor: plain Hugging Face done well, as the reference step-by-step code trains. Records in
             HF Trainer's group_by_length order (transformers' own get_length_grouped_indices, on input
             length), one forward per task with model(labels=...).loss and the two losses summed, each task's
             batch padded to its longest row, bf16 weights, fused AdamW, eager attention, grad-norm clip 1.0
             (Trainer's default).
  naive      (only with --naive; labelled as such) random order, fp32 weights under autocast, HF's default SDPA
             attention, foreach AdamW, two forwards. Nobody competent trains like this.
  ours       the trainer's Stepper exactly as train() builds it on one GPU: bf16 weights with fp32 master
             weights and fp32 AdamW state, length-bucketed batches (epoch_batches), lengths padded to 16, the
             output layer on target tokens only, eager attention, grad-norm clip 1.0, each batch shape's
             forward+backward replayed as a CUDA graph (graphs.py), one forward per task.
  ours-eager      the same without CUDA graphs, both tasks in one forward (the trainer's previous default).
  ours-eager-sep  without CUDA graphs, one forward per task (less decoder padding, twice the launches).
  ours-graphs-concat   CUDA graphs, both tasks in one forward.
  ours-autocast   ours-eager with fp32 weights under bf16 autocast (the default before bf16 master weights).
  ours-compiled   ours with every transformer block under torch.compile(dynamic=True) (step.compile_blocks).
  ours-compiled-eager   ours-eager with the blocks compiled.
  ours-packed     ours with each micro-batch packed (packing.py: several examples to a row of ~512 source tokens,
                  masks keep them apart; both tasks in one forward) and batches drawn at random, as train()
                  does when it packs.
  ours-packed-compiled  ours-packed with the blocks compiled.
  ours-packed-eager     ours-packed without CUDA graphs (what train() runs on a GPU by default).
  ours-packed-compiled-eager  ours-packed-eager with the blocks compiled (train --compile --cuda-graphs off:
                  the micro-batches may use the whole budget, not half of it as under graphs).
  ours-packed-eager-ckpt  ours-packed-eager with activation checkpointing (training.activationCheckpointing:
                  each block's activations recomputed in the backward; the micro-batches planned for it).
  ours-flex       ours with T5's attention through FlexAttention (StepOptions.flex_attention, flex_t5.py):
                  flex_attention compiled on its own, the rest eager, CUDA graphs. Attention-probability
                  dropout is skipped under flex (the residual and feed-forward dropouts stay).
  ours-compiled-flex        ours-compiled with FlexAttention (traced into the compiled blocks).
  ours-compiled-eager-flex  ours-compiled-eager with FlexAttention (no CUDA graphs: isolates the graphs).
  (The flex variants run only when named in --variants.)

Each variant first runs the timed steps' batches twice (untimed for the ratio, reported as `first pass`: for
ours and ours-graphs-concat the second time captures each shape), then runs the same steps again, timed.

    python3 bench/train_step.py --models t5-base t5-large --batch 64 32 --steps 15 --repeats 3
    python3 bench/train_step.py --models t5-base --batch 64 --steps 20 --check-flex  # flex's losses = eager's?
    python3 bench/train_step.py --models t5-base --batch 64 --steps 20 --check-packing  # packed = padded?
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
from typing import Any, Callable

import torch

from common import PEAK_TFLOPS, T5_SHAPES, T5_VOCAB, Tok, make_records, median_spread, t5_param_counts, timed, \
    useful_tokens
from distillery_student.buckets import epoch_batches
from distillery_student.data import TASK_LABEL, TASK_RATIONALE
from distillery_student.modeling import Encoder, to_device
from distillery_student.packing import PACK_LENGTH
from distillery_student.parallel import Dist
from distillery_student.step import BF16_AUTOCAST, BF16_MASTER, StepOptions, Stepper

CUDA = torch.device("cuda")
MEMORY_GB = 0.0  # --memory-gb: the memory the Stepper's micro-batches plan for; 0: the card's


def new_t5(shape: str, attn: str, dtype: torch.dtype = torch.float32, dropout: float = 0.1) -> torch.nn.Module:
    """A random-weight T5 built on the GPU; attn as from_pretrained(attn_implementation=...) sets it."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=T5_VOCAB, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   dropout_rate=dropout, tie_word_embeddings=False, **T5_SHAPES[shape])
    with CUDA:
        model = T5ForConditionalGeneration(cfg).to(dtype)
    if attn:
        for m in model.modules():
            if hasattr(m, "config"):
                m.config._attn_implementation = attn
    return model.train()


def hf_step_fn(model: torch.nn.Module, records: list, order: list[int], batch: int, clip: bool,
               fused: bool) -> Callable[[int], list[int]]:
    """One HF-style step: per task, a batch padded to its longest row and model(labels=...).loss; summed."""
    enc = Encoder(Tok(), "seq2seq", 10**6, 10**6)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused, foreach=None if fused else True)
    n = len(order) // batch

    def step(i: int) -> list[int]:
        idx = order[(i % n) * batch :][:batch]
        loss = 0.0
        for task in (TASK_LABEL, TASK_RATIONALE):
            b = to_device(enc.collate([records[j][task] for j in idx]), CUDA)
            loss = loss + model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return idx

    return step


def hf_fair(shape: str, records: list, batch: int) -> tuple[torch.nn.Module, Callable[[int], list[int]]]:
    from transformers.trainer_pt_utils import get_length_grouped_indices

    model = new_t5(shape, "eager", torch.bfloat16)
    lengths = [len(rs[0].source) for rs in records]
    order = get_length_grouped_indices(lengths, batch, generator=torch.Generator().manual_seed(0))
    return model, hf_step_fn(model, records, order, batch, clip=True, fused=True)


def naive(shape: str, records: list, batch: int) -> tuple[torch.nn.Module, Callable[[int], list[int]]]:
    model = new_t5(shape, "")
    order = list(range(len(records)))
    random.Random(0).shuffle(order)
    fn = hf_step_fn(model, records, order, batch, clip=False, fused=False)

    def step(i: int) -> list[int]:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return fn(i)

    return model, step


def ours(shape: str, records: list, batch: int, impl: str = BF16_MASTER, concat: bool | None = True,
         compile_: bool = False, graphs: bool = False, dropout: float = 0.1,
         flex: bool = False, pack: bool = False, window: int = 0,
         ckpt: bool = False) -> tuple[torch.nn.Module, Callable[[int], list[int]]]:
    model = new_t5(shape, "eager", dropout=dropout)
    enc = Encoder(Tok(), "seq2seq", 10**6, 10**6, pad_multiple=16)
    stepper = Stepper(model, "seq2seq", enc, CUDA, Dist(), StepOptions(
        bf16=True, bf16_impl=impl, learning_rate=1e-4, concat_tasks=concat, compile=compile_, cuda_graphs=graphs,
        memory_bytes=MEMORY_GB * 2**30 or float(torch.cuda.get_device_properties(0).total_memory), flex_attention=flex,
        pack_length=PACK_LENGTH if pack else 0, activation_checkpointing=ckpt), lambda s: 1.0)
    lengths = [sum(len(r.source) + (len(r.target) if r.task else 0) for r in rs) for rs in records]
    batches = epoch_batches(lengths, batch, seed=0, epoch=0, window=window or (1 if pack else 50))  # as train()

    def step(i: int) -> list[int]:
        idx = batches[i % len(batches)]
        mine = [records[j] for j in idx]
        norm = torch.tensor([sum(len(r.target) for rs in mine for r in rs if r.task == t) for t in (0, 1)],
                            dtype=torch.float32, device=CUDA)
        chunks = stepper.micro_batches(mine, 0)
        step.micro = max(step.micro, len(chunks))  # type: ignore[attr-defined]
        losses.append(stepper.step(chunks, norm, 1.0))
        return idx

    losses: list[torch.Tensor] = []
    step.losses = losses  # type: ignore[attr-defined]
    step.stepper = stepper  # type: ignore[attr-defined]
    step.micro = 0  # type: ignore[attr-defined]
    return model, step


def measure(name: str, build: Callable[[], tuple[torch.nn.Module, Callable[[int], list[int]]]], records: list,
            steps: int, warmup: int, counts: tuple[int, int]) -> dict[str, Any]:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model, fn = build()
    first = timed(fn, warmup, steps)  # `warmup` steps, then the timed batches once
    first += timed(lambda i: fn(warmup + i), 0, steps)  # and again (graphs capture a shape when it comes back)
    seen: list[int] = []
    secs = timed(lambda i: seen.extend(fn(warmup + i)), 0, steps)  # the same batches again
    te, td = useful_tokens([records[j] for j in seen])
    stepper = getattr(fn, "stepper", None)
    graphs = stepper.graphs.captures if stepper is not None and stepper.graphs is not None else 0
    out = {"variant": name, "seconds": secs, "ms_per_step": secs / steps * 1e3, "tok_s": (te + td) / secs,
           "first_pass_s": first, "graphs": graphs, "micro_batches": getattr(fn, "micro", 1),
           "mfu": 6.0 * (counts[0] * te + counts[1] * td) / secs / (PEAK_TFLOPS * 1e12),
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    del model, fn, stepper  # the Stepper holds its graphs' memory pool
    gc.collect()
    return out


def compare_losses(label: str, shape: str, batch: int, steps: int, runs: dict[str, dict[str, Any]],
                   pick: Callable[[int], int] = lambda i: i) -> None:
    """The same steps (dropout 0, same seed) under each of `runs` (name: keyword arguments of `ours`); prints
    the loss curves and the largest relative difference between the first two."""
    records = make_records(batch * 40, seed=1, vocab=T5_VOCAB)
    curves = []
    for kw in runs.values():
        _, fn = ours(shape, records, batch, concat=None, dropout=0.0, **kw)
        for i in range(steps):
            fn(pick(i))
        curves.append([float(x[0]) for x in fn.losses])  # type: ignore[attr-defined]
        del fn
        gc.collect()
    worst = max(abs(a - b) / abs(a) for a, b in zip(*curves[:2]))
    lines = "\n".join(f"      {name:6s} {[round(x, 4) for x in c]}" for name, c in zip(runs, curves))
    print(f"{label} {shape}:\n{lines}\n      max relative difference {worst:.2e}", flush=True)


def check_graphs(shape: str, batch: int, steps: int) -> None:
    """Eagerly and as CUDA graphs, on shapes seen before (replays) and new ones (captures): losses must agree."""
    compare_losses("check", shape, batch, steps, {"eager": {"graphs": False}, "graphs": {"graphs": True}},
                   pick=lambda i: i % 3 if i < 6 else i)


def check_flex(shape: str, batch: int, steps: int) -> None:
    """Eager attention and FlexAttention (compiled blocks, no CUDA graphs): losses must agree up to bf16."""
    compare_losses("check-flex", shape, batch, steps,
                   {"eager": {"compile_": True, "flex": False}, "flex": {"compile_": True, "flex": True}})


def check_packing(shape: str, batch: int, steps: int) -> None:
    """The same batches padded and packed (eagerly, dropout 0): losses must agree up to bf16."""
    compare_losses("check-packing", shape, batch, steps,
                   {"padded": {"graphs": False}, "packed": {"graphs": False, "pack": True, "window": 50}})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["t5-base", "t5-large"])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 32], help="records per step, one per model")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--naive", action="store_true")
    p.add_argument("--variants", nargs="*", default=None, help="only these variants")
    p.add_argument("--json", default="")
    p.add_argument("--memory-gb", type=float, default=0.0,
                   help="the memory the trainer's micro-batches plan for (as train --memory-gb); 0: the card's")
    p.add_argument("--check", action="store_true", help="only compare ours and ours-graphs losses (dropout 0)")
    p.add_argument("--check-flex", action="store_true", help="only compare eager and flex attention losses (dropout 0)")
    p.add_argument("--check-packing", action="store_true", help="only compare padded and packed losses (dropout 0)")
    a = p.parse_args()
    global MEMORY_GB
    MEMORY_GB = a.memory_gb
    if a.check:
        check_graphs(a.models[0], a.batch[0], a.steps)
        return
    if a.check_flex:
        check_flex(a.models[0], a.batch[0], a.steps)
        return
    if a.check_packing:
        check_packing(a.models[0], a.batch[0], a.steps)
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}; {a.steps} timed steps after {a.warmup}, "
          f"{a.repeats} repeats; MFU against {PEAK_TFLOPS} TFLOP/s", flush=True)
    results: list[dict[str, Any]] = []
    for shape, batch in zip(a.models, a.batch * len(a.models)):
        records = make_records(batch * 40, seed=1, vocab=T5_VOCAB)
        counts = t5_param_counts(new_t5(shape, "eager"))
        torch.cuda.empty_cache()
        variants: list[tuple[str, Callable[[], Any]]] = [
            ("hf-fair", lambda: hf_fair(shape, records, batch)),
            ("ours", lambda: ours(shape, records, batch, concat=None, graphs=True)),
            ("ours-eager", lambda: ours(shape, records, batch)),
            ("ours-compiled", lambda: ours(shape, records, batch, concat=None, graphs=True, compile_=True)),
            ("ours-compiled-eager", lambda: ours(shape, records, batch, compile_=True)),
            ("ours-packed", lambda: ours(shape, records, batch, graphs=True, pack=True)),
            ("ours-packed-compiled", lambda: ours(shape, records, batch, graphs=True, compile_=True, pack=True)),
            ("ours-packed-eager", lambda: ours(shape, records, batch, pack=True)),
            ("ours-packed-compiled-eager", lambda: ours(shape, records, batch, compile_=True, pack=True)),
            ("ours-packed-eager-ckpt", lambda: ours(shape, records, batch, pack=True, ckpt=True)),
            ("ours-eager-sep", lambda: ours(shape, records, batch, concat=False)),
            ("ours-graphs-concat", lambda: ours(shape, records, batch, graphs=True)),
            ("ours-autocast", lambda: ours(shape, records, batch, impl=BF16_AUTOCAST)),
            ("ours-flex", lambda: ours(shape, records, batch, concat=None, graphs=True, flex=True)),
            ("ours-compiled-flex", lambda: ours(shape, records, batch, concat=None, graphs=True, compile_=True,
                                                flex=True)),
            ("ours-compiled-eager-flex", lambda: ours(shape, records, batch, compile_=True, flex=True)),
        ]
        if a.naive:
            variants.append(("naive", lambda: naive(shape, records, batch)))
        if a.variants:
            variants = [v for v in variants if v[0] in a.variants]
        else:
            variants = [v for v in variants if not v[0].endswith("-flex")]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
        for rep in range(a.repeats):
            for name, build in variants:
                r = measure(name, build, records, a.steps, a.warmup, counts)
                runs[name].append(r)
                print(f"  {shape} {name:18s} rep {rep}: {r['ms_per_step']:7.1f} ms/step {r['tok_s']:9.0f} tok/s "
                      f"MFU {r['mfu'] * 100:4.1f}% peak {r['peak_gib']:5.1f} GiB first pass {r['first_pass_s']:.2f} s "
                      f"graphs {r['graphs']} micro-batches {r['micro_batches']}", flush=True)
        base = statistics.median(x["tok_s"] for x in runs["hf-fair"]) if "hf-fair" in runs else None
        print(f"\n{shape}, batch {batch} records | useful tok/s median [min-max] | MFU % | peak GiB | vs hf-fair")
        for name, rs in runs.items():
            tok = [x["tok_s"] for x in rs]
            ratio = f"{statistics.median(tok) / base:.2f}x" if base else "-"
            print(f"  {name:18s} | {median_spread(tok)} | {statistics.median(x['mfu'] for x in rs) * 100:.1f} "
                  f"[{min(x['mfu'] for x in rs) * 100:.1f}-{max(x['mfu'] for x in rs) * 100:.1f}] | "
                  f"{max(x['peak_gib'] for x in rs):.1f} | {ratio}", flush=True)
            results.append({"shape": shape, "batch": batch, "variant": name, "runs": rs})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
