"""Model selection: the validation slice is scored every evalEverySteps steps, and the best checkpoint, not the
last, is what modelDir holds (and is scored on the eval split)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from distillery_student import selection
from distillery_student.train import TrainOptions, train


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(model_dir).state_dict()


def _scripted(monkeypatch: pytest.MonkeyPatch, scores: list[float]) -> list[int]:
    """validation_accuracy returns these scores in turn (a later step made worse on purpose); returns the
    sizes of the slices it was asked to score."""
    asked: list[int] = []

    def fake(predictor: Any, records: list, batch_size: int) -> float:
        asked.append(len(records))
        return scores[len(asked) - 1]

    monkeypatch.setattr(selection, "validation_accuracy", fake)
    return asked


def test_the_best_checkpoint_is_the_one_served(make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(maxSteps=6, evalEverySteps=2, learningRate=1e-2, data={"validationFraction": 0.2})
    asked = _scripted(monkeypatch, [0.5, 0.9, 0.3])  # steps 2, 4, 6: step 4 is the best
    seen: dict[int, dict[str, torch.Tensor]] = {}
    result = train(cfg, TrainOptions(on_step=lambda s, m: seen.__setitem__(s, {k: v.clone() for k, v in
                                                                              m.state_dict().items()})))
    assert len(asked) == 3 and asked[0] > 0
    assert result.bestStep == 4 and result.steps == 6
    served = _weights(cfg.output.modelDir)
    for k, v in served.items():
        torch.testing.assert_close(v, seen[4][k], atol=0, rtol=0, msg=k)
    assert any(not torch.equal(served[k], seen[6][k]) for k in served)  # the last step's weights differ
    metrics = json.loads(Path(cfg.output.metricsPath).read_text())
    assert metrics["bestStep"] == 4 and metrics["curves"]["validationAccuracy"] == [[2, 0.5], [4, 0.9], [6, 0.3]]
    info = json.loads(Path(cfg.output.modelDir, "distillery.json").read_text())
    assert info["metrics"]["bestStep"] == 4 and info["metrics"]["evaluation"] == result.evaluation.to_dict()


def test_a_tie_goes_to_the_later_step(make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(maxSteps=4, evalEverySteps=1, data={"validationFraction": 0.2})
    _scripted(monkeypatch, [0.2, 0.7, 0.7, 0.1])
    assert train(cfg).bestStep == 3
    assert selection.best_step(cfg.output.checkpointDir) == 3


def test_auto_interval_scores_about_ten_times_and_at_the_end(make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(maxSteps=25, data={"validationFraction": 0.2})
    asked = _scripted(monkeypatch, [0.1] * 25)
    result = train(cfg)
    steps = [s for s, _ in json.loads(Path(cfg.output.metricsPath).read_text())["curves"]["validationAccuracy"]]
    assert steps == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 25] and len(asked) == 13
    assert result.bestStep == 25


def test_without_a_validation_slice_the_last_step_is_served(make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(maxSteps=3, data={"validationFraction": 0.0})
    asked = _scripted(monkeypatch, [])
    result = train(cfg)
    assert result.bestStep == 3 and asked == []
    assert not os.path.exists(selection.best_path(cfg.output.checkpointDir))


@pytest.mark.parametrize("every, total, want", [(0, 1, 1), (0, 25, 2), (0, 1000, 100), (7, 1000, 7)])
def test_eval_interval(every: int, total: int, want: int) -> None:
    assert selection.eval_interval(every, total) == want
