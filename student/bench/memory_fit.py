"""Does a default spec fit an 80 GB card? The trainer's Stepper with automatic micro-batches planned for 80 GiB,
on a batch of 64 records. The process may use only the planned memory of the card
(torch.cuda.set_per_process_memory_fraction), as on a card of that size: the allocator hands its cached blocks
back and retries before it runs out. Prints the micro-batches chosen, the estimate (static + the largest
micro-batch's activations) beside the measured peaks of 3 steps, and FAIL when a step runs out of memory.
(Under CUDA graphs the reserved peak may pass the plan: it counts cached blocks that a smaller card would
have handed back.)

Records (--records):
  worst  the worst batch a default spec allows: every input 512 tokens and every rationale 256
         (maxInputLength/maxTargetLength defaults);
  half   inputs of 272 tokens, just over half a packed row, so each takes a row of its own (packing's worst fill);
  bench  the benchmarks' variable-length records (bench/common.py), the batch whose estimate is largest.

    python3 bench/memory_fit.py --models t5-base t5-large qwen-1.5b
    python3 bench/memory_fit.py --packing                      # as train() runs on a GPU (--packing auto)
    python3 bench/memory_fit.py --packing --compile --graphs   # train --compile --cuda-graphs on
"""

from __future__ import annotations

import argparse

import torch

from common import T5_VOCAB, Tok, make_records
from decoder_step import new_decoder
from distillery_student.buckets import epoch_batches
from distillery_student.data import TASK_LABEL, TASK_RATIONALE
from distillery_student.microbatch import static_bytes
from distillery_student.modeling import Encoder, Row
from distillery_student.packing import PACK_LENGTH
from distillery_student.parallel import Dist
from distillery_student.step import StepOptions, Stepper
from train_step import new_t5

CUDA = torch.device("cuda")
BATCH = 64


def uniform_records(n: int, source: int) -> list[list[Row]]:
    src = [7] * (source - 1) + [1]
    return [[Row(src, [5, 6, 1], TASK_LABEL), Row(src, [9] * 255 + [1], TASK_RATIONALE)] for _ in range(n)]


def batch_of(kind: str, vocab: int, stepper: Stepper) -> list[list[Row]]:
    if kind == "worst":
        return uniform_records(BATCH, 512)
    if kind == "half":
        return uniform_records(BATCH, PACK_LENGTH // 2 + 16)
    records = make_records(BATCH * 40, seed=1, vocab=vocab)
    lengths = [sum(len(r.source) + (len(r.target) if r.task else 0) for r in rs) for rs in records]
    window = 1 if stepper.enc.pack_length else 50  # as train() draws them
    batches = [[records[j] for j in idx] for idx in epoch_batches(lengths, BATCH, seed=0, epoch=0, window=window)]
    return max(batches, key=stepper.memory_cost)


def fit(name: str, kind: str, a: argparse.Namespace) -> None:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    arch = "seq2seq" if name.startswith("t5") else "causal"
    model = new_t5(name, "eager") if arch == "seq2seq" else new_decoder(name, False)
    vocab = model.config.vocab_size if arch == "causal" else T5_VOCAB
    enc = Encoder(Tok(), arch, 10**6, 10**6, pad_multiple=16)
    stepper = Stepper(model, arch, enc, CUDA, Dist(), StepOptions(
        bf16=True, learning_rate=1e-5, memory_bytes=a.memory_gb * 2**30, activation_checkpointing=a.checkpointing,
        compile=a.compile, cuda_graphs=a.graphs, pack_length=PACK_LENGTH if a.packing else 0), lambda s: 1.0)
    records = batch_of(kind, vocab, stepper)
    norm = torch.tensor([sum(len(r.target) for rs in records for r in rs if r.task == t) for t in (0, 1)],
                        dtype=torch.float32, device=CUDA)
    chunks = stepper.micro_batches(records, 0)
    try:
        for _ in range(3):
            stepper.step(chunks, norm, 1.0)
        torch.cuda.synchronize()
        verdict = "fits"
    except torch.cuda.OutOfMemoryError:
        verdict = "FAIL (out of memory)"
    if stepper.graphs is not None and not stepper.graphs.enabled:  # GraphedSteps caught it and went on eagerly
        failed = "a capture ran out of memory or failed: graphs turned off, the steps ran eagerly"
        verdict = f"FAIL ({failed})" if verdict == "fits" else f"{verdict}; {failed}"
    static = static_bytes(stepper.trainable, stepper.frozen, 1, False) / 2**30
    acts = max(stepper.memory_cost(c) for c in chunks) / 2**30
    steady = torch.cuda.memory_allocated() / 2**30
    alloc = torch.cuda.max_memory_allocated() / 2**30
    reserved = torch.cuda.max_memory_reserved() / 2**30
    how = "".join(f" {w}" for w, on in (("packed", a.packing), ("compiled", a.compile), ("graphs", stepper.graphs))
                  if on)
    print(f"{name}{how}, {kind} records: {len(chunks)} micro-batches of <= {max(len(c) for c in chunks)} records; "
          f"estimated static {static:.1f} + activations {acts:.1f} GiB (budget {stepper.budget_bytes() / 2**30:.1f}); "
          f"measured steady {steady:.1f}, peak allocated {alloc:.1f} (activations {alloc - steady:.1f}), reserved "
          f"{reserved:.1f} GiB vs {a.memory_gb:.0f} GiB planned: {verdict}", flush=True)
    stepper.release_graphs()
    del stepper, model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["t5-base", "t5-large", "qwen-1.5b"])
    p.add_argument("--records", nargs="+", default=["worst"], choices=["worst", "half", "bench"])
    p.add_argument("--memory-gb", type=float, default=80.0)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--packing", action="store_true", help="packed micro-batches (train()'s default on a GPU)")
    p.add_argument("--compile", action="store_true", help="compiled blocks (train --compile)")
    p.add_argument("--graphs", action="store_true", help="CUDA graphs (train --cuda-graphs on; T5 only)")
    a = p.parse_args()
    card = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, a.memory_gb * 2**30 / card))
    for name in a.models:
        for kind in a.records:
            fit(name, kind, a)


if __name__ == "__main__":
    main()
