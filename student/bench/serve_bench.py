"""Serving benchmark, all figures from one run (docs/benchmarks.md, "Serving").

Phases (--phases, run in the order given):
- decoders: in-process, no HTTP. Hugging Face `generate` (dynamic cache), our static decoder eager, and the
  static decoder replayed as CUDA graphs: the floor (StaticT5Greedy for T5, StaticCausalGreedy for decoders).
  Batch 1 and 64; median and spread of --reps runs; share of outputs identical to HF generate's.
- new: the server as `python -m distillery_student serve` (a separate process) under --clients keep-alive
  clients, each posting one input at a time, for --seconds, --reps times; req/s, p50, p99, and the server's
  CPU time per request. ms/token at 1 client = p50 latency / usage.completion_tokens (through
  /v1/completions), against the floor's ms/token at batch 1 (its whole call: encoder or prompt, plus decode
  steps, / tokens).
- legacy: the same load against the previous server (the stdlib http.server, HF generate), given as a file with
  --legacy-serve (e.g. `git show c89fb9d:student/distillery_student/serve.py > /tmp/legacy_serve.py`), at
  --legacy-clients.
- host-only: the new server with a model that answers at once (the label's ids, no forward pass): what the
  HTTP, batching and tokenising path alone sustains on this machine's CPU, at --host-only-clients.
- hf-static: HF `generate` with its static cache (torch.compile on CUDA; minutes per new shape).

GPU-seconds per 1,000 queries = 1,000 / (req/s) on the one GPU the server holds.

    python student/bench/serve_bench.py --shape t5-base --device cuda --legacy-serve /tmp/legacy_serve.py
    python student/bench/serve_bench.py --shape decoder-0.5b --device cuda --phases decoders new --clients 1
    python student/bench/serve_bench.py --shape tiny --device cpu --clients 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # after PYTHONPATH: a run can point at another checkout of the package

SHAPES: dict[str, dict[str, Any]] = {
    "t5-base": dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
    # the make-dev student (hack/dev/tiny_model.py)
    "tiny": dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
                 feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    # Qwen2.5-0.5B's dimensions (494M parameters, 136M of them the tied 151,936-row embedding/output layer) in
    # the Llama layout (Qwen2 adds q/k/v biases): transformers 5's AutoTokenizer loads a Qwen2Tokenizer for a
    # model_type qwen2 directory even when it holds ByT5's tokenizer files, and this bench has only ByT5's
    "decoder-0.5b": dict(causal=True, vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                      rope_theta=1000000.0, tie_word_embeddings=True),
    "tiny-causal": dict(causal=True, vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096),
}
# "contradiction" is 13 bytes: 14 label tokens with EOS, a budget of 16 (Predictor.label_tokens)
LABELS = {"t5-base": ["entailment", "neutral", "contradiction"], "tiny": ["first", "second"]}
WORDS = "the a man woman dog cat plays reads runs sleeps in on park book music stage ball happy quickly".split()
RESULTS: dict[str, Any] = {}
JSON_NAME = ["serve_bench.json"]


def emit(key: str, value: Any) -> None:
    """Prints a result and keeps every result so far in $OUT/<--json> (a cut-off run keeps them)."""
    RESULTS[key] = value
    print(f"{key}: {json.dumps(value)}", flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out, JSON_NAME[0]).write_text(json.dumps(RESULTS, indent=1))


def text(rng: random.Random) -> str:
    s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
    return f"Premise: {s}.\nHypothesis: {s[:20]}."


def make_model(d: Path, shape: str) -> None:
    """A random-weight student of the shape, the ByT5 tokenizer, and a distillery.json (no downloads)."""
    import torch
    from transformers import ByT5Tokenizer

    torch.manual_seed(0)
    dims = dict(SHAPES[shape])
    causal = dims.pop("causal", False)
    if causal:
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(pad_token_id=0, eos_token_id=1, bos_token_id=None, **dims)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # a 0.5B init is slow on a CPU
            model = LlamaForCausalLM(cfg).to(torch.bfloat16 if torch.cuda.is_available() else torch.float32)
        with torch.no_grad():
            # Only byte ids (3-258) may win: every token decodes with the ByT5 tokenizer, and a random model never
            # ends early (no EOS), like the T5 shapes. All 151,936 rows are still computed: the cost is Qwen's.
            head = model.get_output_embeddings().weight
            head[:3].zero_()
            head[259:].zero_()
    else:
        from transformers import T5Config, T5ForConditionalGeneration

        cfg = T5Config(vocab_size=384, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0,
                       **dims)
        model = T5ForConditionalGeneration(cfg)
    model.save_pretrained(d)
    ByT5Tokenizer().save_pretrained(d)
    info = json.loads((HERE.parents[1] / "testdata/contract/distillery.json").read_text())
    info.update(labels=LABELS.get(shape, LABELS["t5-base"]), maxInputLength=512, maxTargetLength=128,
                architecture="causal" if causal else "seq2seq")
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


def lazy_generate(make: Callable[[], Any], steps: int) -> Callable[[Any, Any], Any]:
    """generate(ids, mask) of a decoder made at the first call (when its turn comes, not when the runs are listed)."""
    made: list[Any] = []

    def generate(ids: Any, mask: Any) -> Any:
        if not made:
            made.append(make())
        return made[0].generate(ids, mask, steps, 1, 0)

    return generate


def decoders(model_dir: Path, device: str, batches: list[int], reps: int, only_hf_static: bool = False) -> dict[str, Any]:
    import torch

    from distillery_student.causal_decoding import StaticCausalGreedy
    from distillery_student.contract import ARCH_CAUSAL, ModelInfo
    from distillery_student.decoding import StaticT5Greedy
    from distillery_student.modeling import Predictor

    info = ModelInfo.from_dict(json.loads((model_dir / "distillery.json").read_text()))
    p = Predictor.from_dir(str(model_dir), info, device, decoder="hf")
    static = StaticCausalGreedy if info.architecture == ARCH_CAUSAL else StaticT5Greedy
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rng = random.Random(1)
    floor: dict[str, Any] = {}
    for b in batches:
        # a different batch of the server's inputs at each call (the first is the warm-up), the same sequence for
        # every decoder: the longest input of a batch sets its source bucket, so one batch is not typical
        pool = [p._batch(p.enc.sources_ids([info.labelPrefix + text(rng) for _ in range(b)])) for _ in range(reps + 1)]
        n = p.label_tokens

        def cycling(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> Callable[[], Any]:
            calls = iter(range(10**9))
            return lambda: fn(*pool[next(calls) % len(pool)])

        runs: dict[str, Callable[[], Any]] = {"hf-generate": cycling(lambda i, m: p._generate_ids(i, m, n))}
        if not only_hf_static:
            runs["static-eager"] = cycling(lambda i, m, d=static(p.model, use_cuda_graphs=False): d.generate(i, m, n, 1, 0))
        if device == "cuda" and not only_hf_static:
            runs["static-cuda-graphs"] = cycling(lambda i, m, d=static(p.model): d.generate(i, m, n, 1, 0))
            if info.architecture != ARCH_CAUSAL:  # on a copy: it compiles the encoder's blocks in place
                runs["static-compiled-graphs"] = cycling(lazy_generate(
                    lambda: static(copy.deepcopy(p.model), compile_layers=True), n))
        if device == "cuda" and only_hf_static:  # last in the run: its compile can take minutes
            def hf_static(ids: torch.Tensor, mask: torch.Tensor) -> Any:
                out = p.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, do_sample=False,
                                       num_beams=1, pad_token_id=0, eos_token_id=1, cache_implementation="static")
                return out[:, ids.shape[1]:] if info.architecture == ARCH_CAUSAL else out[:, 1:]
            runs["hf-static-cache-compiled"] = cycling(hf_static)
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
                   "same_tokens_as_hf": sum(a == w for a, w in zip(rows, want)) / len(rows),
                   "prompt_tokens": int(sum(float(m.sum(1).float().mean()) for _, m in pool) / len(pool)),
                   "longest_input": [int(m.sum(1).max()) for _, m in pool]}
            if not (only_hf_static and name == "hf-generate"):
                emit(f"decoder {name} batch {b}", res)
            per_token = statistics.median(times) / steps
            if b == 1 and name.startswith("static") and per_token < floor.get("ms_per_token", math.inf):
                floor = {"decoder": name, "ms_per_token": per_token, "steps": steps}  # the fastest at batch 1
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
    """The server process, once /healthz says ready; its log goes to a file (a pipe nobody reads can fill and
    block it), whose end is raised if it exits or reports that loading failed."""
    log = tempfile.NamedTemporaryFile("w+", prefix="serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)

    def tail() -> str:
        return Path(log.name).read_text()[-3000:]

    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                if r.status == 200:
                    return proc
        except urllib.error.HTTPError as e:
            if b"failed" in e.read():
                proc.kill()
                raise RuntimeError(f"server failed to load: {tail()}") from None
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError("server not ready in 900 s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


BATCH_STATS = ("mean_batch", "ms_per_batch", "model_busy")


def _batch_totals(port: int) -> dict[str, float]:
    """The server's batch counters from its /metrics ({} for a server without them, as the previous one)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text_ = r.read().decode()
    except OSError:
        return {}
    return {s.name: s.value for f in text_string_to_metric_families(text_) for s in f.samples
            if s.name.startswith(("distillery_student_batch_size_", "distillery_student_batch_duration_seconds_"))}


def _batch_stats(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Over one load run: inputs per generate pass, ms per pass, and the share of the run the model was busy."""
    need = ("distillery_student_batch_size_count", "distillery_student_batch_size_sum",
            "distillery_student_batch_duration_seconds_sum")
    if not all(k in after for k in need):  # the previous server has no batch_duration_seconds
        return {}
    d = {k: after[k] - before.get(k, 0.0) for k in need}
    n = max(1.0, d["distillery_student_batch_size_count"])
    return {"mean_batch": d["distillery_student_batch_size_sum"] / n,
            "ms_per_batch": d["distillery_student_batch_duration_seconds_sum"] / n * 1000,
            "model_busy": d["distillery_student_batch_duration_seconds_sum"] / seconds}


def measure_server(name: str, proc_cmd: list[str], port: int, a: argparse.Namespace, paths: list[str],
                   clients: list[int]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(x for x in (os.environ.get("PYTHONPATH"), str(HERE.parent)) if x)}
    t = time.monotonic()
    proc = start(proc_cmd, port, env)
    emit(f"{name} ready after s", round(time.monotonic() - t, 1))
    try:
        for path in paths:
            for c in clients:
                load(port, c, min(1.0, a.seconds), path)  # warm-up: graph buckets, connections
                runs = []
                for _ in range(a.reps):
                    cpu, batches = _cpu_seconds(proc.pid), _batch_totals(port)
                    r = load(port, c, a.seconds, path)
                    r["cpu_ms_per_request"] = (_cpu_seconds(proc.pid) - cpu) * 1000 / max(1, r["requests"])
                    r.update(_batch_stats(batches, _batch_totals(port), a.seconds))
                    runs.append(r)
                emit(f"http {name} {path} clients {c}", {
                    "rps": summary([r["rps"] for r in runs]), "p50_ms": summary([r["p50_ms"] for r in runs]),
                    "p99_ms": summary([r["p99_ms"] for r in runs]), "errors": sum(r["errors"] for r in runs),
                    "completion_tokens": runs[0]["completion_tokens"],
                    "server_cpu_ms_per_request": summary([r["cpu_ms_per_request"] for r in runs]),
                    **{k: summary([r[k] for r in runs]) for k in BATCH_STATS if k in runs[0]},
                    "gpu_s_per_1000": 1000 / statistics.median(r["rps"] for r in runs)})
    finally:
        proc.terminate()
        proc.wait(60)


# ---- the previous server, and the new one without a model, as processes ----


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


def run_host_only(model_dir: str, port: int, max_batch: int, model_ms: tuple[float, float, int] = (0.0, 0.0, 5),
                  lanes: int = 1) -> None:
    """The real server (HTTP, batching, tokenising, detokenising) over a model that answers at once: every
    input gets the first label's ids. model_ms (fixed ms, ms per input, waits) makes the model take that long
    instead, in `waits` sleeps that release the GIL as the static decoders' waits for the GPU do (5 for 16
    tokens: every 4 steps and the result): the batching of a GPU server, on a CPU. With lanes > 1 the sleeps of
    different lanes overlap fully, as batches on a GPU would if they did not compete for it: an upper bound."""
    import torch

    from distillery_student.contract import ModelInfo
    from distillery_student.modeling import Predictor
    from distillery_student.serve import ServerConfig, StudentServer, uvicorn_server

    info = ModelInfo.from_dict(json.loads(Path(model_dir, "distillery.json").read_text()))

    def loader() -> Predictor:
        p = Predictor.from_dir(model_dir, info, "cpu", decoder="hf")
        label = p.enc.target_ids(info.labels[0])
        def generate(ids: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
            waits = int(model_ms[2]) if model_ms[0] or model_ms[1] else 0
            for _ in range(waits):
                time.sleep((model_ms[0] + model_ms[1] * ids.shape[0]) / waits / 1000)
            return torch.tensor([label + [0] * (n - len(label))] * ids.shape[0])

        p._generate_ids = generate
        return p

    cfg = ServerConfig(model_dir=model_dir, model_name="bench", host="127.0.0.1", port=port,
                       max_batch_size=max_batch, max_queue=100000, device="cpu", lanes=lanes)
    server = StudentServer(cfg, loader=loader)
    threading.Thread(target=server.load, daemon=True).start()
    uvicorn_server(server).run()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="t5-base", choices=sorted(SHAPES))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--phases", nargs="+", default=["decoders", "new", "legacy", "hf-static"],
                    choices=["decoders", "new", "legacy", "host-only", "hf-static"])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--legacy-clients", type=int, nargs="+", default=[])
    ap.add_argument("--host-only-clients", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--host-only-model-ms", default="0,0",
                    help="host-only: the model takes FIXED + PER_INPUT ms per batch in WAITS GIL-free waits (FIXED,PER_INPUT[,WAITS]; "
                         "25,0.41 is the t5-base floor; WAITS defaults to 5)")
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--legacy-serve", default="", help="the previous serve.py, measured the same way")
    ap.add_argument("--model-dir", default="", help="the model to use; made (random weights) when missing")
    ap.add_argument("--lanes", type=int, nargs="+", default=[1],
                    help="new and host-only: the server's --lanes, each measured in turn")
    ap.add_argument("--serve-flags", default="", help="more flags for the new server, e.g. '--threads 2'")
    ap.add_argument("--json", default="serve_bench.json", help="file under $OUT that collects the results")
    ap.add_argument("--run-legacy", default="", help=argparse.SUPPRESS)
    ap.add_argument("--run-host-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_legacy:
        return run_legacy(a.run_legacy, a.model, a.port, a.device, a.max_batch_size)
    if a.run_host_only:
        fixed, per, *waits = a.host_only_model_ms.split(",")
        return run_host_only(a.model, a.port, a.max_batch_size, (float(fixed), float(per), int(waits[0]) if waits else 5),
                             a.lanes[0])
    JSON_NAME[0] = a.json
    d = Path(a.model_dir) if a.model_dir else Path(tempfile.mkdtemp()) / "model"
    if not (d / "distillery.json").exists():
        t = time.monotonic()
        make_model(d, a.shape)
        emit("model made in s", round(time.monotonic() - t, 1))
    emit("setup", {"shape": a.shape, "device": a.device, "phases": a.phases, "clients": a.clients,
                   "seconds": a.seconds, "reps": a.reps, "max_batch_size": a.max_batch_size, **versions()})
    batches = [1, 64] if a.device == "cuda" else [1, 8]
    floor: dict[str, Any] = {}
    for phase in a.phases:
        try:
            floor = run_phase(phase, a, d, batches, floor)
        except Exception as e:  # noqa: BLE001 - the next phases still run; the JSON says what failed
            emit(f"phase {phase} failed", f"{type(e).__name__}: {e}"[-3000:])


def versions() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    out: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    for name in ("torch", "transformers", "starlette", "uvicorn", "httptools", "uvloop"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


def run_phase(phase: str, a: argparse.Namespace, d: Path, batches: list[int], floor: dict[str, Any]) -> dict[str, Any]:
    serve = [sys.executable, "-m", "distillery_student", "serve", "--model", str(d), "--host", "127.0.0.1",
             "--device", a.device, "--served-model-name", "bench", "--max-batch-size", str(a.max_batch_size),
             "--max-queue", "100000", *a.serve_flags.split(), "--port"]
    me = [sys.executable, str(Path(__file__).resolve()), "--model", str(d), "--max-batch-size", str(a.max_batch_size)]
    if phase == "decoders":
        floor = decoders(d, a.device, batches, a.reps)
        emit("floor", floor)
    elif phase == "new":
        for lanes in a.lanes:
            name = "new" if a.lanes == [1] else f"new lanes {lanes}"
            measure_server(name, serve[:-1] + ["--lanes", str(lanes), "--port", "18081"], 18081, a,
                           ["/v1/completions"], a.clients)
        first = "new" if a.lanes == [1] else f"new lanes {a.lanes[0]}"
        one = RESULTS.get(f"http {first} /v1/completions clients 1")
        if one and floor:
            per_token = one["p50_ms"]["median"] / one["completion_tokens"]
            emit("http ms/token at 1 client vs floor", {
                "http_ms_per_token": per_token, "floor_ms_per_token": floor["ms_per_token"],
                "ratio": per_token / floor["ms_per_token"]})
    elif phase == "legacy" and a.legacy_serve:
        legacy = me + ["--run-legacy", a.legacy_serve, "--device", a.device, "--port", "18082"]
        measure_server("legacy", legacy, 18082, a, ["/v1/predict"], a.legacy_clients or a.clients)
    elif phase == "host-only":
        for lanes in a.lanes:
            name = "host-only" if a.lanes == [1] else f"host-only lanes {lanes}"
            measure_server(name, me + ["--run-host-only", "--host-only-model-ms", a.host_only_model_ms, "--lanes",
                                       str(lanes), "--port", "18083"], 18083, a, ["/v1/completions"], a.host_only_clients)
    elif phase == "hf-static" and a.device == "cuda":
        decoders(d, a.device, batches, a.reps, only_hf_static=True)
    return floor


if __name__ == "__main__":
    main()
