"""The trainer learns: a few hundred CPU steps on a synthetic task reach clearly better-than-chance accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import comparison_records

from distillery_student.train import TrainOptions, train


@pytest.mark.parametrize("packing", ["off", "on"])
def test_step_by_step_learns_which_number_is_larger(make_config, packing) -> None:
    # one-digit pairs; the eval split is the hash-based holdout of records (data.evalFraction = 0.2). Packed
    # micro-batches (several examples to a row, packing.py) must learn as well as padded ones
    cfg = make_config(records=comparison_records(500, seed=1), maxSteps=300, batchSize=32, learningRate=3e-3)
    result = train(cfg, TrainOptions(packing=packing))
    assert result.evalExamples > 50
    assert result.evalAccuracy >= 0.85, result  # chance is 0.5; seen: 0.92-1.0
    ev = result.evaluation
    assert ev is not None and ev.studentAccuracy == result.evalAccuracy and ev.teacherAccuracy == 1.0
    assert ev.agreement == ev.studentAccuracy  # this teacher is always right
    metrics = json.loads(Path(cfg.output.metricsPath).read_text())
    assert metrics["evalAccuracy"] == result.evalAccuracy and metrics["evaluation"] == ev.to_dict()
    assert sum(map(sum, metrics["confusion"]["matrix"])) == result.evalExamples
    info = json.loads((Path(cfg.output.modelDir) / "distillery.json").read_text())
    assert info["metrics"]["evalAccuracy"] == result.evalAccuracy
