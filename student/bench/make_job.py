"""A small real training job for the CLI (kill-and-resume run): a T5-small-shaped student with random weights
and the ByT5 tokenizer (no downloads), synthetic "which number is larger" annotations, and train.json.

    python3 bench/make_job.py /tmp/job --strategy FSDP --steps 60 --checkpoint-every 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--strategy", default="DDP")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--checkpoint-every", type=int, default=10)
    a = p.parse_args()
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    root = Path(a.dir)
    model_dir = root / "base"
    if not model_dir.exists():
        cfg = T5Config(vocab_size=384, d_model=512, d_kv=64, d_ff=1024, num_layers=6, num_heads=8, dropout_rate=0.0,
                       decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        T5ForConditionalGeneration(cfg).save_pretrained(model_dir)
        ByT5Tokenizer().save_pretrained(model_dir)
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    with open(ann / "shard-00000-of-00001.jsonl", "w") as f:
        for i in range(2000):
            x, y = rng.sample(range(1000), 2)
            label = "first" if x > y else "second"
            f.write(json.dumps({"id": f"r{i}", "input": f"First: {x}\nSecond: {y}", "status": "ok",
                                "goldLabel": label, "teacherLabel": label,
                                "rationale": f"The first number is {x} and the second is {y}."}) + "\n")
    run = root / a.strategy.lower()
    cfg = {"job": "bench", "student": {"baseModel": str(model_dir), "architecture": "seq2seq"},
           "data": {"annotationsDir": str(ann), "evalFraction": 0.05},
           "task": {"type": "classification", "labels": ["first", "second"], "labelPrefix": "[label] ",
                    "rationalePrefix": "[rationale] "},
           "training": {"mode": "step-by-step", "rationaleWeight": 1.0, "epochs": 0, "maxSteps": a.steps,
                        "batchSize": 64, "learningRate": 1e-3, "maxInputLength": 64, "maxTargetLength": 64,
                        "precision": "bf16", "seed": 0, "checkpointEverySteps": a.checkpoint_every,
                        "strategy": a.strategy},
           "output": {"checkpointDir": str(run / "checkpoints"), "modelDir": str(run / "model"),
                      "metricsPath": str(run / "metrics.json")}}
    os.makedirs(run, exist_ok=True)
    (run / "train.json").write_text(json.dumps(cfg, indent=1))
    print(run / "train.json")


if __name__ == "__main__":
    main()
