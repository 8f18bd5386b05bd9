"""Model selection on the validation slice: when to score it, and the best weights so far on disk.

The trainer scores the validation slice every `training.evalEverySteps` steps (0: about 10 times per run) and
at the last step. When a score is at least the best so far, the weights go to checkpointDir/best/
(weights.pt and best.json {"step", "accuracy"}), written under a temporary name and renamed into place; at
the end those weights, not the last step's, are written to modelDir. Every rank can read them back, as it
reads a checkpoint on resume.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Sequence

import torch

from .contract import Record, normalize_label, write_atomic
from .modeling import Predictor

BEST_DIR = "best"
AUTO_EVALUATIONS = 10


def eval_interval(every: int, total: int) -> int:
    """training.evalEverySteps, or about AUTO_EVALUATIONS evaluations per run when it is 0."""
    return every if every > 0 else max(1, total // AUTO_EVALUATIONS)


def validation_due(step: int, total: int, interval: int) -> bool:
    return step % interval == 0 or step == total


def validation_accuracy(predictor: Predictor, records: Sequence[Record], batch_size: int) -> float:
    """Label accuracy against each record's label (gold, else the teacher's), after normalize_label."""
    preds = predictor.labels([r.input for r in records], batch_size)
    return sum(normalize_label(p) == normalize_label(r.label) for p, r in zip(preds, records)) / len(records)


def best_path(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, BEST_DIR)


def save_best(checkpoint_dir: str, step: int, accuracy: float, weights: dict[str, Any]) -> None:
    """Replaces checkpointDir/best with these weights (rank 0)."""
    final = best_path(checkpoint_dir)
    tmp, old = f"{final}.tmp-{os.getpid()}", f"{final}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "weights.pt"), "wb") as f:
        torch.save(weights, f)
        f.flush()
        os.fsync(f.fileno())
    write_atomic(os.path.join(tmp, "best.json"), json.dumps({"step": step, "accuracy": accuracy}) + "\n")
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def best_step(checkpoint_dir: str) -> int | None:
    """The step of the weights in checkpointDir/best, None when there are none."""
    try:
        with open(os.path.join(best_path(checkpoint_dir), "best.json"), encoding="utf-8") as f:
            return int(json.load(f)["step"])
    except (OSError, ValueError, KeyError):
        return None


def load_best(checkpoint_dir: str) -> dict[str, Any]:
    return torch.load(os.path.join(best_path(checkpoint_dir), "weights.pt"), map_location="cpu", weights_only=True)
