"""Server throughput: requests/s at 1, 8 and 64 concurrent clients, dynamic batching vs one at a time.

A T5-base-shaped student with random weights (ByT5 byte tokenizer, no files) is saved like a trained model
and served in-process by StudentServer; client threads post single-input /v1/predict requests for a fixed
time. "one-at-a-time" is the same server with --max-batch-size 1 (each request its own generate pass).

    python student/bench/serve_throughput.py --seconds 8
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillery_student.serve import StudentServer  # noqa: E402

WORDS = "the a man woman dog cat plays reads runs sleeps in on park book music stage ball happy quickly".split()


def make_model(d: Path, shape: str) -> None:
    import torch
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    from train_step import SHAPES  # type: ignore

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=384, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **SHAPES[shape])
    T5ForConditionalGeneration(cfg).save_pretrained(d)
    ByT5Tokenizer().save_pretrained(d)
    info = json.loads((Path(__file__).resolve().parents[2] / "testdata/contract/distillery.json").read_text())
    info.update(maxInputLength=512, maxTargetLength=128)
    (d / "distillery.json").write_text(json.dumps(info))


def load_test(port: int, clients: int, seconds: float) -> tuple[float, float]:
    done, lat = [0] * clients, []
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(i)
        while time.monotonic() < stop:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
            body = json.dumps({"inputs": [f"Premise: {text}.\nHypothesis: {text[:20]}."]}).encode()
            t = time.monotonic()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=120) as r:
                r.read()
            lat.append(time.monotonic() - t)
            done[i] += 1

    ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat.sort()
    return sum(done) / (time.monotonic() - t0), lat[len(lat) // 2] if lat else 0.0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="t5-base")
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--max-wait-ms", type=float, default=5)
    a = p.parse_args()
    d = Path(tempfile.mkdtemp()) / "model"
    make_model(d, a.shape)
    for name, mbs in (("one-at-a-time", 1), (f"batched(max {a.max_batch_size})", a.max_batch_size)):
        s = StudentServer(str(d), "127.0.0.1", 0, max_batch_size=mbs, max_wait_ms=a.max_wait_ms).start()
        while s.batcher is None:
            time.sleep(0.1)
        load_test(s.port, 4, 2)  # warm-up
        for c in a.clients:
            rps, p50 = load_test(s.port, c, a.seconds)
            print(f"{a.shape} {name:18s} clients {c:3d}: {rps:8.1f} req/s  p50 {p50 * 1000:7.1f} ms", flush=True)
        s.stop()


if __name__ == "__main__":
    main()
