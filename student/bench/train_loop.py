"""The trainer's whole loop, as `python -m distillery_student train` runs it on one GPU, with and without CUDA
graphs: a job's wall time and its steady steps/s. train_step.py times the Stepper alone; this one adds
everything around it (tokenising, batching, progress, loss bookkeeping, the per-step host syncs, the final
export and evaluation).

Random-weight T5 of a real shape with the ByT5 tokenizer (bytes, no downloads); synthetic annotations of
variable length: inputs of log-normal word counts (median ~90 bytes), rationales ~45 bytes, 3 labels.

    python3 bench/train_loop.py --shape t5-base --steps 200 --repeats 3
    python3 bench/train_loop.py --shape t5-base --steps 500 --records 6000 --order graphs --cprofile 40
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import T5_SHAPES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillery_student.contract import load_train_config  # noqa: E402
from distillery_student.train import TrainOptions, train  # noqa: E402

WORDS = "the a of and to in is was for on that by with as at from it an be this are or which".split()


def text(rng: random.Random, median_bytes: int) -> str:
    n = max(2, int(rng.lognormvariate(math.log(median_bytes / 4.5), 0.6)))
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_job(root: Path, shape: str, records: int, steps: int, batch: int) -> Path:
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    base = root / "base"
    T5ForConditionalGeneration(T5Config(vocab_size=384, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                                        tie_word_embeddings=False, **T5_SHAPES[shape])).save_pretrained(base)
    ByT5Tokenizer().save_pretrained(base)
    rng = random.Random(0)
    (root / "ann").mkdir()
    with open(root / "ann" / "shard-00000-of-00001.jsonl", "w") as f:
        for i in range(records):
            label = rng.choice(["yes", "no", "maybe"])
            f.write(json.dumps({"id": f"r{i}", "input": text(rng, 90), "status": "ok", "goldLabel": label,
                                "teacherLabel": label, "rationale": text(rng, 45)}) + "\n")
    cfg = {"job": "bench", "student": {"baseModel": str(base), "architecture": "seq2seq"},
           "data": {"annotationsDir": str(root / "ann"), "evalFraction": 0.01, "validationFraction": 0.0},
           "task": {"type": "classification", "labels": ["yes", "no", "maybe"], "labelPrefix": "[label] ",
                    "rationalePrefix": "[rationale] "},
           "training": {"mode": "step-by-step", "rationaleWeight": 1.0, "epochs": 0, "maxSteps": steps,
                        "batchSize": batch, "learningRate": 1e-4, "maxInputLength": 512, "maxTargetLength": 256,
                        "precision": "bf16", "seed": 0, "checkpointEverySteps": 0},
           "output": {"checkpointDir": str(root / "ckpt"), "modelDir": str(root / "model"),
                      "metricsPath": str(root / "metrics.json")}}
    path = root / "train.json"
    path.write_text(json.dumps(cfg))
    return path


MODES = {"graphs": TrainOptions(cuda_graphs="on", packing="off"), "eager": TrainOptions(cuda_graphs="off", packing="off"),
         "compiled": TrainOptions(cuda_graphs="on", compile=True, packing="off"),
         "packed": TrainOptions(cuda_graphs="off", packing="on"),  # the default on a GPU (auto)
         "packed-graphs": TrainOptions(cuda_graphs="on", packing="on"),
         "packed-compiled": TrainOptions(cuda_graphs="on", compile=True, packing="on"),
         "packed-compiled-eager": TrainOptions(cuda_graphs="off", compile=True, packing="on")}


def run(config: Path, mode: str, steps: int) -> dict[str, float]:
    import shutil

    cfg = load_train_config(str(config))
    shutil.rmtree(cfg.output.checkpointDir, ignore_errors=True)
    stamps: list[float] = []
    started = time.perf_counter()
    opts = dataclasses.replace(MODES[mode], on_step=lambda step, model: stamps.append(time.perf_counter()))
    result = train(cfg, opts)
    wall = time.perf_counter() - started
    assert not result.error, result.error
    half = steps // 2
    return {"wall_s": wall, "train_s": stamps[-1] - started,
            "steady_steps_s": (steps - half) / (stamps[-1] - stamps[half - 1])}


def profile(config: Path, mode: str, steps: int, top: int) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    r = run(config, mode, steps)
    prof.disable()
    print(f"{mode}: job {r['wall_s']:.1f} s under cProfile, steady {r['steady_steps_s']:.2f} steps/s", flush=True)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="t5-base", choices=sorted(T5_SHAPES))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--records", type=int, default=4000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--order", nargs="+", default=["graphs", "eager"], choices=sorted(MODES))
    p.add_argument("--cprofile", type=int, default=0, metavar="N",
                   help="instead: one job of the first mode under cProfile, the N functions of most cumulative time "
                        "(where the loop's host time goes; cProfile slows Python calls, so compare shares, not seconds)")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root = Path(tempfile.mkdtemp())
    config = make_job(root, a.shape, a.records, a.steps, a.batch)
    if a.cprofile:
        profile(config, a.order[0], a.steps, a.cprofile)
        return
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in a.order}
    for rep in range(a.repeats):
        for name in runs:
            r = run(config, name, a.steps)
            runs[name].append(r)
            print(f"  {a.shape} {name:6s} rep {rep}: job {r['wall_s']:.1f} s, to the last step {r['train_s']:.1f} s, "
                  f"steady {r['steady_steps_s']:.2f} steps/s", flush=True)
    print(f"\n{a.shape}, {a.steps} steps of {a.batch} records | job s | to the last step s | steady steps/s")
    for name, rs in runs.items():
        cols = [[r[k] for r in rs] for k in ("wall_s", "train_s", "steady_steps_s")]
        print(f"  {name:6s} | " + " | ".join(f"{statistics.median(c):.2f} [{min(c):.2f}-{max(c):.2f}]" for c in cols),
              flush=True)


if __name__ == "__main__":
    main()
