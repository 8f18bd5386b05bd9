"""The T5 static decoder's step under torch.compile: what fusing the step's kernels would give the floor.

The server's floor (`StaticT5Greedy` replayed as CUDA graphs) is bound by the GPU, not the host: ~1,000 small
kernels per token. This times one greedy call of 16 tokens (t5-base shape, random weights, bf16) as the server
runs it, and again with the decode step compiled by `torch.compile(dynamic=False)` and then captured in the
same graphs, and checks both give the same tokens. A probe for the next lever, not what the server does: each
new bucket shape compiles for about 45 s.

    python3 bench/decode_compile.py --batches 64 1 --reps 5
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile

from serve_bench import make_model, text  # type: ignore
from distillery_student.contract import ModelInfo
from distillery_student.decoding import StaticT5Greedy
from distillery_student.modeling import Predictor


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t) * 1000)
    return out


def kernel_ms(fn: Callable[[], Any]) -> float:
    """GPU time of the kernels one call runs (the rest of its wall time is the GPU waiting for the host)."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(e.device_time_total for e in prof.key_averages()) / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 1])
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp()) / "t5"
    d.mkdir()
    make_model(d, "t5-base")
    info = ModelInfo.from_dict(json.loads((d / "distillery.json").read_text()))
    p = Predictor.from_dir(str(d), info, "cuda", decoder="static")
    rng = random.Random(1)
    for b in a.batches:
        ids, mask = p._batch(p.enc.sources_ids([info.labelPrefix + text(rng) for _ in range(b)]))
        n = p.label_tokens
        with torch.no_grad():
            plain = StaticT5Greedy(p.model)
            fused = StaticT5Greedy(p.model)
            fused._step = torch.compile(fused._step, dynamic=False)  # type: ignore[method-assign]
            t = time.perf_counter()
            fused.generate(ids, mask, n, 1, 0)
            compile_s = time.perf_counter() - t
            res = {}
            for name, dec in (("graphs", plain), ("compiled step + graphs", fused)):
                ms = timed(lambda: dec.generate(ids, mask, n, 1, 0), a.reps)
                res[name] = statistics.median(ms)
                print(f"batch {b} ({tuple(ids.shape)}, {n} tokens) {name}: {statistics.median(ms):.1f} ms "
                      f"[{min(ms):.1f}-{max(ms):.1f}], kernels {kernel_ms(lambda: dec.generate(ids, mask, n, 1, 0)):.1f} ms",
                      flush=True)
            same = int((plain.generate(ids, mask, n, 1, 0) == fused.generate(ids, mask, n, 1, 0)).all(1).sum())
            print(f"batch {b}: {res['graphs'] / res['compiled step + graphs']:.2f}x, same tokens {same}/{b}, "
                  f"first compiled call {compile_s:.1f} s", flush=True)
            torch._dynamo.reset()


if __name__ == "__main__":
    main()
