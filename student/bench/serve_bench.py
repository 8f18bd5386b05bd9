"""Serving benchmark, all figures from one run (docs/benchmarks.md, "Serving").

1. Decoders, in-process, no HTTP: Hugging Face `generate` (dynamic cache), HF `generate` with its static
   cache (which torch.compiles the step on CUDA), our StaticT5Greedy eager, and StaticT5Greedy replayed as
   CUDA graphs: the floor. Batch 1 and 64; median and spread of --reps runs; share of outputs identical to
   HF generate's.
2. HTTP: the server as `python -m distillery_student serve` (a separate process) under 1, 8, 64, 256
   keep-alive clients, each posting one input at a time, for --seconds, --reps times; req/s, p50, p99.
   ms/token at 1 client = p50 latency / usage.completion_tokens (through /v1/completions), against the
   floor's ms/token at batch 1 (its whole request: encoder plus decode steps, / tokens).
3. The same load against the previous server (the stdlib http.server, HF generate), given as a file with
   --legacy-serve (e.g. `git show c89fb9d:student/distillery_student/serve.py > /tmp/legacy_serve.py`).

GPU-seconds per 1,000 queries = 1,000 / (req/s) on the one GPU the server holds.

    python student/bench/serve_bench.py --shape t5-base --device cuda --legacy-serve /tmp/legacy_serve.py
    python student/bench/serve_bench.py --shape tiny --device cpu --clients 1 8 --skip-hf-static
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SHAPES = {
    "t5-base": dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
    # the make-dev student (hack/dev/tiny_model.py)
    "tiny": dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
                 feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}
# "contradiction" is 13 bytes: 14 label tokens with EOS, a budget of 16 (Predictor.label_tokens)
LABELS = {"t5-base": ["entailment", "neutral", "contradiction"], "tiny": ["first", "second"]}
WORDS = "the a man woman dog cat plays reads runs sleeps in on park book music stage ball happy quickly".split()
RESULTS: dict[str, Any] = {}


def emit(key: str, value: Any) -> None:
    """Prints a result and keeps every result so far in $OUT/serve_bench.json (a cut-off run keeps them)."""
    RESULTS[key] = value
    print(f"{key}: {json.dumps(value)}", flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out, "serve_bench.json").write_text(json.dumps(RESULTS, indent=1))


def text(rng: random.Random) -> str:
    s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
    return f"Premise: {s}.\nHypothesis: {s[:20]}."


def make_model(d: Path, shape: str) -> None:
    import torch
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=384, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0,
                   **SHAPES[shape])
    T5ForConditionalGeneration(cfg).save_pretrained(d)
    ByT5Tokenizer().save_pretrained(d)
    info = json.loads((HERE.parents[1] / "testdata/contract/distillery.json").read_text())
    info.update(labels=LABELS[shape], maxInputLength=512, maxTargetLength=128, architecture="seq2seq")
    (d / "distillery.json").write_text(json.dumps(info))


def summary(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


# ---- 1. decoders ----


def _timed(fn: Callable[[], Any], reps: int, sync: Callable[[], None]) -> tuple[list[float], Any]:
    out = fn()  # warm-up (graph capture, compile)
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return times, out


def _until_eos(rows: list[list[int]]) -> list[list[int]]:
    return [r[: r.index(1) + 1] if 1 in r else r for r in rows]


def decoders(model_dir: Path, device: str, batches: list[int], reps: int, only_hf_static: bool = False) -> dict[str, Any]:
    import torch

    from distillery_student.contract import ModelInfo
    from distillery_student.decoding import StaticT5Greedy
    from distillery_student.modeling import Predictor

    info = ModelInfo.from_dict(json.loads((model_dir / "distillery.json").read_text()))
    p = Predictor.from_dir(str(model_dir), info, device, decoder="hf")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rng = random.Random(1)
    floor: dict[str, Any] = {}
    for b in batches:
        ids, mask = p._batch([p.enc.source_ids(info.labelPrefix + text(rng)) for _ in range(b)])
        n = p.label_tokens
        runs: dict[str, Callable[[], Any]] = {"hf-generate": lambda: p._generate_ids(ids, mask, n)}
        if not only_hf_static:
            runs["static-eager"] = lambda d=StaticT5Greedy(p.model, use_cuda_graphs=False): d.generate(ids, mask, n, 1, 0)
        if device == "cuda" and not only_hf_static:
            runs["static-cuda-graphs"] = lambda d=StaticT5Greedy(p.model): d.generate(ids, mask, n, 1, 0)
        if device == "cuda" and only_hf_static:  # last in the run: its compile can take minutes
            runs["hf-static-cache-compiled"] = lambda: p.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=n, do_sample=False, num_beams=1,
                pad_token_id=0, eos_token_id=1, cache_implementation="static")[:, 1:]
        want = None
        for name, fn in runs.items():
            try:
                times, out = _timed(fn, reps, sync)
            except Exception as e:  # noqa: BLE001 - a decoder that fails here is reported, not fatal
                emit(f"decoder {name} batch {b}", {"error": f"{type(e).__name__}: {e}"[:300]})
                continue
            rows = _until_eos(out.tolist())
            want = want or rows
            steps = out.shape[1]
            res = {"ms_per_call": summary(times), "steps": steps, "ms_per_step": statistics.median(times) / steps,
                   "same_tokens_as_hf": sum(a == w for a, w in zip(rows, want)) / len(rows)}
            if not (only_hf_static and name == "hf-generate"):
                emit(f"decoder {name} batch {b}", res)
            if b == 1 and name in ("static-cuda-graphs", "static-eager"):
                floor = {"decoder": name, "ms_per_token": statistics.median(times) / steps, "steps": steps}
    del p
    if device == "cuda":
        torch.cuda.empty_cache()
    return floor


# ---- 2. HTTP load ----


async def _client(port: int, path: str, body: Callable[[random.Random], bytes], stop_at: float, seed: int,
                  lat: list[float], usage: list[int], errors: list[int]) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at:
            data = body(rng)
            head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n").encode()
            t = time.perf_counter()
            writer.write(head + data)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode().partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            payload = await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            if status != 200:
                errors.append(status)
            elif path == "/v1/completions":
                usage.append(json.loads(payload)["usage"]["completion_tokens"])
    finally:
        writer.close()


def load(port: int, clients: int, seconds: float, path: str) -> dict[str, Any]:
    def body(rng: random.Random) -> bytes:
        x = text(rng)
        req = {"model": "bench", "prompt": x} if path == "/v1/completions" else {"inputs": [x]}
        return json.dumps(req).encode()

    async def run() -> tuple[list[float], list[int], list[int], float]:
        lat: list[float] = []
        usage: list[int] = []
        errors: list[int] = []
        t = time.monotonic()
        await asyncio.gather(*[_client(port, path, body, t + seconds, i, lat, usage, errors) for i in range(clients)])
        return lat, usage, errors, time.monotonic() - t

    lat, usage, errors, elapsed = asyncio.run(run())
    lat.sort()
    return {"rps": len(lat) / elapsed, "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, "requests": len(lat),
            "errors": len(errors), "completion_tokens": statistics.median(usage) if usage else None}


def start(cmd: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in 900 s")


def measure_server(name: str, proc_cmd: list[str], port: int, a: argparse.Namespace, paths: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t = time.monotonic()
    proc = start(proc_cmd, port, env)
    emit(f"{name} ready after s", round(time.monotonic() - t, 1))
    try:
        for path in paths:
            for c in a.clients:
                load(port, c, min(2.0, a.seconds), path)  # warm-up: graph buckets, connections
                runs = [load(port, c, a.seconds, path) for _ in range(a.reps)]
                emit(f"http {name} {path} clients {c}", {
                    "rps": summary([r["rps"] for r in runs]), "p50_ms": summary([r["p50_ms"] for r in runs]),
                    "p99_ms": summary([r["p99_ms"] for r in runs]), "errors": sum(r["errors"] for r in runs),
                    "completion_tokens": runs[0]["completion_tokens"],
                    "gpu_s_per_1000": 1000 / statistics.median(r["rps"] for r in runs)})
    finally:
        proc.terminate()
        proc.wait(60)


# ---- the previous server, as a process ----


def run_legacy(path: str, model_dir: str, port: int, device: str, max_batch: int) -> None:
    import importlib.util

    from distillery_student.contract import ModelInfo
    from distillery_student.modeling import Predictor

    spec = importlib.util.spec_from_file_location("distillery_student.legacy_serve", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    info = ModelInfo.from_dict(json.loads(Path(model_dir, "distillery.json").read_text()))
    server = mod.StudentServer(model_dir, "127.0.0.1", port, max_batch_size=max_batch, max_wait_ms=5.0,
                               loader=lambda: Predictor.from_dir(model_dir, info, device, decoder="hf"))
    server.start()
    while True:
        time.sleep(3600)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="t5-base", choices=sorted(SHAPES))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--legacy-serve", default="", help="the previous serve.py, measured the same way")
    ap.add_argument("--skip-hf-static", action="store_true", help="skip HF's static cache + torch.compile")
    ap.add_argument("--run-legacy", default="", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_legacy:
        return run_legacy(a.run_legacy, a.model, a.port, a.device, a.max_batch_size)
    d = Path(tempfile.mkdtemp()) / "model"
    make_model(d, a.shape)
    emit("setup", {"shape": a.shape, "device": a.device, "clients": a.clients, "seconds": a.seconds, "reps": a.reps,
                   "max_batch_size": a.max_batch_size})
    batches = [1, 64] if a.device == "cuda" else [1, 8]
    floor = decoders(d, a.device, batches, a.reps)
    emit("floor", floor)
    serve = [sys.executable, "-m", "distillery_student", "serve", "--model", str(d), "--host", "127.0.0.1",
             "--device", a.device, "--served-model-name", "bench", "--max-batch-size", str(a.max_batch_size),
             "--max-queue", "100000", "--port"]
    measure_server("new", serve + ["18081"], 18081, a, ["/v1/completions"])
    one = RESULTS.get("http new /v1/completions clients 1")
    if one and floor:
        per_token = one["p50_ms"]["median"] / one["completion_tokens"]
        emit("http ms/token at 1 client vs floor", {"http_ms_per_token": per_token, "floor_ms_per_token":
                                                     floor["ms_per_token"], "ratio": per_token / floor["ms_per_token"]})
    if a.legacy_serve:
        legacy = [sys.executable, str(Path(__file__).resolve()), "--run-legacy", a.legacy_serve, "--model", str(d),
                  "--device", a.device, "--max-batch-size", str(a.max_batch_size), "--port", "18082"]
        measure_server("legacy", legacy, 18082, a, ["/v1/predict"])
        a.clients = [c for c in a.clients if c == 64] or a.clients[-1:]
        measure_server("new", serve + ["18083"], 18083, a, ["/v1/predict"])
    if a.device == "cuda" and not a.skip_hf_static:
        decoders(d, a.device, batches, a.reps, only_hf_static=True)


if __name__ == "__main__":
    main()
