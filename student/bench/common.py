"""Shared parts of the training benchmarks: synthetic variable-length records, model shapes, MFU, timing.

MFU = model FLOPs of the useful (non-pad) tokens / time / 790 TFLOP/s (the bf16 dense matrix rate measured on
this H200 kind). T5: 6 x (encoder non-embedding params x encoder tokens + (decoder non-embedding + lm_head)
params x decoder tokens). Decoder-only: 6 x non-embedding params x all tokens + 6 x lm_head x target tokens
(the trainer runs the output layer on target tokens only); with LoRA the frozen weights get 4 instead of 6
(no weight gradient).
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillery_student.data import TASK_LABEL, TASK_RATIONALE  # noqa: E402
from distillery_student.modeling import Row  # noqa: E402

PEAK_TFLOPS = 790.0
T5_SHAPES = {
    "t5-base": dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
    "t5-large": dict(d_model=1024, d_kv=64, d_ff=4096, num_layers=24, num_heads=16),
}
T5_VOCAB = 32128
# Qwen2.5-0.5B, Qwen2.5-1.5B and Llama-3.1-8B shapes
DECODER_SHAPES = {
    "qwen-0.5b": dict(kind="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen-1.5b": dict(kind="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "llama-8b": dict(kind="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False),
}


class Tok:
    """The ids the Encoder needs (collation only: records are token ids already)."""

    pad_token_id, eos_token_id, bos_token_id = 0, 1, None


def make_records(n: int, seed: int, vocab: int, max_in: int = 512, max_rat: int = 256) -> list[list[Row]]:
    """Lengths like NLI/CQA with CoT rationales: log-normal inputs (median ~90 tokens, up to 512), rationales
    (median ~45, up to 256), labels 2-4 tokens. Each record: a label-task row and a rationale-task row."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        li = min(max_in, max(8, int(rng.lognormvariate(math.log(90), 0.6))))
        lr = min(max_rat, max(4, int(rng.lognormvariate(math.log(45), 0.5))))
        ll = rng.randint(2, 4)
        src = [rng.randrange(2, vocab) for _ in range(li)] + [1]
        out.append([Row(src, [rng.randrange(2, vocab) for _ in range(ll)] + [1], TASK_LABEL),
                    Row(src, [rng.randrange(2, vocab) for _ in range(lr)] + [1], TASK_RATIONALE)])
    return out


def useful_tokens(records: list[list[Row]]) -> tuple[int, int]:
    """(source tokens, target tokens) of every row: what any correct implementation must process."""
    return (sum(len(r.source) for rs in records for r in rs), sum(len(r.target) for rs in records for r in rs))


def t5_param_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(encoder non-embedding params, decoder non-embedding + lm_head params): the issue's MFU formula."""
    enc = sum(p.numel() for n, p in model.encoder.named_parameters() if "embed_tokens" not in n)
    dec = sum(p.numel() for n, p in model.decoder.named_parameters() if "embed_tokens" not in n)
    return enc, dec + model.lm_head.weight.numel()


def median_spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.0f} [{min(xs):,.0f}-{max(xs):,.0f}]"


def timed(fn: Callable[[int], None], warmup: int, steps: int) -> float:
    """Seconds for `steps` calls of fn(step) after `warmup` untimed ones (device synchronised around)."""
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        fn(i)
    torch.cuda.synchronize()
    return time.perf_counter() - t0
