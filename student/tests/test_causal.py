"""Decoder-only students: the same tasks, trained and served end to end."""

from __future__ import annotations

import json
from pathlib import Path

from distillery_student.contract import ModelInfo
from distillery_student.modeling import Predictor
from distillery_student.train import train


def test_causal_student_trains_saves_and_predicts(make_config, causal_dir: str) -> None:
    cfg = make_config(base=causal_dir, arch="causal", maxSteps=30, learningRate=3e-3)
    result = train(cfg)
    assert result.steps == 30 and result.evalExamples > 0
    info_raw = json.loads((Path(cfg.output.modelDir) / "distillery.json").read_text())
    assert info_raw["architecture"] == "causal"
    p = Predictor.from_dir(cfg.output.modelDir, ModelInfo.from_dict(info_raw), "cpu")
    inputs = ["3 7", "9 1", "12 5 and a longer one", "0 4"]
    together = p.predict(inputs, explain=True)
    assert together == [p.predict([x], explain=True)[0] for x in inputs]  # left padding changes nothing
    assert all(set(x) == {"label", "rationale"} for x in together)
