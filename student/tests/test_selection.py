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


@pytest.mark.parametrize("variant", ["lora", "bf16-master"])
def test_best_weights_round_trip_through_the_stepper(make_config, variant: str) -> None:
    """weights() then load_weights() restores the model the export writes: LoRA adapters alone, or the fp32
    master weights of a bf16 model (the GPU path, run here on the CPU)."""
    from distillery_student.modeling import Encoder
    from distillery_student.parallel import Dist
    from distillery_student.step import StepOptions, Stepper
    from distillery_student.train import _load

    cfg = make_config(lora={"rank": 4, "alpha": 8, "dropout": 0.0, "targetModules": ["q", "v"]}) \
        if variant == "lora" else make_config()
    model, tok = _load(cfg, False)
    enc = Encoder(tok, "seq2seq", 32, 32)
    stepper = Stepper(model, "seq2seq", enc, torch.device("cpu"), Dist(),
                      StepOptions(bf16=variant == "bf16-master"), lambda s: 1.0)
    best = stepper.weights()
    assert best is not None
    if variant == "lora":
        assert best and all("lora_" in k for k in best)
    else:
        assert all(best[n].dtype == torch.float32 for n in stepper.master.names)
    with torch.no_grad():
        for p in stepper.params:
            p.add_(1.0)
        if stepper.master:
            stepper.master.master_to_model()
    stepper.load_weights(best)
    after = stepper.weights()
    for k, v in best.items():
        torch.testing.assert_close(after[k], v, atol=0, rtol=0, msg=k)
    exported = dict(stepper.export(lambda: _load(cfg, False)[0]).named_parameters())
    if variant == "bf16-master":  # the export writes the restored fp32 masters
        for n in stepper.master.names:
            torch.testing.assert_close(exported[n].float(), best[n], atol=0, rtol=0, msg=n)
