"""metrics.json (docs/workloads.md): the termination object plus perClass, confusion, curves and settings; and
the metrics that distillery.json carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .contract import TrainConfig, TrainResult
from .evaluation import EvalReport
from .history import History


@dataclass
class Sizes:
    train: int  # records trained on (after eval, validation and data.fraction)
    validation: int


def settings(cfg: TrainConfig, sizes: Sizes) -> dict[str, Any]:
    """What was trained: the settings a sweep varies, and how many records."""
    t, d = cfg.training, cfg.data
    return {"mode": t.mode, "rationaleWeight": t.rationaleWeight, "fraction": d.fraction, "seed": t.seed,
            "subsetSeed": d.subsetSeed, "baseModel": cfg.student.baseModel, "trainExamples": sizes.train,
            "validationExamples": sizes.validation}


def metrics_document(cfg: TrainConfig, result: TrainResult, scores: EvalReport, history: History,
                     last_parts: tuple[float, float, float], sizes: Sizes) -> dict[str, Any]:
    """metrics.json: absent scores (no gold labels: no perClass, no confusion) are left out, never 0."""
    doc = result.to_dict()
    doc.update(labelLoss=last_parts[1], rationaleLoss=last_parts[2])
    if scores.perClass is not None:
        doc["perClass"] = scores.perClass
    if scores.confusion is not None:
        doc["confusion"] = scores.confusion
    doc["curves"] = history.curves()
    doc["settings"] = settings(cfg, sizes)
    if cfg.point is not None:
        doc["point"] = asdict(cfg.point)
    return doc


def model_metrics(result: TrainResult) -> dict[str, Any]:
    """distillery.json's metrics."""
    d = result.to_dict()
    return {k: d[k] for k in ("evalAccuracy", "evalExamples", "steps", "trainLoss", "bestStep", "evaluation") if k in d}
