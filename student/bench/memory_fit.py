"""Does a default spec fit an 80 GB card? The trainer's Stepper with automatic micro-batches planned for 80 GiB,
on the worst batch a default spec allows: batchSize 64, every input 512 tokens and every rationale 256
(maxInputLength/maxTargetLength defaults). Prints the micro-batches chosen and the peak memory (allocated
and reserved) of 3 steps; FAIL if the reserved peak passes 80 GiB.

    python3 bench/memory_fit.py --models t5-base t5-large qwen-1.5b
    python3 bench/memory_fit.py --models t5-base t5-large --packing   # T5 as train() runs it on a GPU
"""

from __future__ import annotations

import argparse

import torch

from common import T5_VOCAB, Tok
from decoder_step import new_decoder
from distillery_student.data import TASK_LABEL, TASK_RATIONALE
from distillery_student.modeling import Encoder, Row
from distillery_student.packing import PACK_LENGTH
from distillery_student.parallel import Dist
from distillery_student.step import StepOptions, Stepper
from train_step import new_t5

CUDA = torch.device("cuda")


def worst_records(n: int, vocab: int) -> list[list[Row]]:
    src = [7] * 511 + [1]
    return [[Row(src, [5, 6, 1], TASK_LABEL), Row(src, [9] * 255 + [1], TASK_RATIONALE)] for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["t5-base", "t5-large", "qwen-1.5b"])
    p.add_argument("--memory-gb", type=float, default=80.0)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--packing", action="store_true", help="T5: packed micro-batches (train()'s default on a GPU)")
    a = p.parse_args()
    for name in a.models:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        arch = "seq2seq" if name.startswith("t5") else "causal"
        model = new_t5(name, "eager") if arch == "seq2seq" else new_decoder(name, False)
        vocab = model.config.vocab_size if arch == "causal" else T5_VOCAB
        enc = Encoder(Tok(), arch, 10**6, 10**6, pad_multiple=16)
        stepper = Stepper(model, arch, enc, CUDA, Dist(), StepOptions(
            bf16=True, learning_rate=1e-5, memory_bytes=a.memory_gb * 2**30,
            activation_checkpointing=a.checkpointing, pack_length=PACK_LENGTH if a.packing else 0), lambda s: 1.0)
        records = worst_records(64, vocab)
        norm = torch.tensor([64 * 3, 64 * 256], dtype=torch.float32, device=CUDA)
        chunks = stepper.micro_batches(records, 0)
        for _ in range(3):
            stepper.step(chunks, norm, 1.0)
        torch.cuda.synchronize()
        alloc = torch.cuda.max_memory_allocated() / 2**30
        reserved = torch.cuda.max_memory_reserved() / 2**30
        verdict = "fits" if reserved <= a.memory_gb else "FAIL"
        print(f"{name}{' packed' if enc.pack_length else ''}: {len(chunks)} micro-batches of <= {max(len(c) for c in chunks)} records; peak allocated "
              f"{alloc:.1f} GiB, reserved {reserved:.1f} GiB vs {a.memory_gb:.0f} GiB planned: {verdict}", flush=True)
        del stepper, model


if __name__ == "__main__":
    main()
