"""Decoder-only students: the same tasks, trained and served end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillery_student.causal_decoding import StaticCausalGreedy
from distillery_student.contract import ModelInfo
from distillery_student.modeling import Predictor
from distillery_student.train import train

CONTRACT = Path(__file__).resolve().parents[2] / "testdata" / "contract"


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
    # the server's default decoder for this student is the static one, and it answers as HF generate does
    assert isinstance(p.static, StaticCausalGreedy)
    hf = Predictor(p.model, p.tok, p.info, "cpu", decoder="hf")
    assert hf.static is None and hf.predict(inputs, explain=True) == together


def test_students_with_greedy_changing_generation_config_decode_with_hf(causal_dir: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = ModelInfo.from_dict({**json.loads((CONTRACT / "distillery.json").read_text()), "architecture": "causal"})
    model, tok = AutoModelForCausalLM.from_pretrained(causal_dir), AutoTokenizer.from_pretrained(causal_dir)
    assert isinstance(Predictor(model, tok, info, decoder="auto").static, StaticCausalGreedy)
    model.generation_config.repetition_penalty = 1.3  # HF applies it even when greedy; the static decoder cannot
    assert Predictor(model, tok, info, decoder="auto").static is None
    with pytest.raises(ValueError, match="repetition_penalty=1.3"):
        Predictor(model, tok, info, decoder="static")
