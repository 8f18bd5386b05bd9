"""The model card (README.md in the model directory), read back with huggingface_hub's own ModelCard parser."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import CONTRACT
from huggingface_hub import ModelCard

from distillery_student.contract import parse_train_config
from distillery_student.modelcard import model_card
from distillery_student.train import train


def _vectors():
    return parse_train_config(json.loads((CONTRACT / "train.json").read_text())), \
        json.loads((CONTRACT / "metrics.json").read_text())


def test_the_card_gives_metrics_with_the_teacher_baseline_split_and_use() -> None:
    cfg, metrics = _vectors()
    card = ModelCard(model_card(cfg, metrics))
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results == {"Student accuracy": 0.875, "Teacher accuracy (llama-3.1-70b-instruct)": 0.9,
                       "Student-teacher agreement": 0.91}
    assert {r.dataset_split for r in card.data.eval_results} == {"eval"}
    assert card.data.model_name == "anli-t5" and card.data.library_name == "transformers"
    assert card.data.base_model is None  # a local directory is not a Hub id
    assert "distilling-step-by-step" in card.data.tags
    text = card.text
    assert "On 400 eval examples: the eval file `/data/eval.jsonl`" in text
    assert "step 1200 of 1500, the best on 360 validation records; trained on 3240 records" in text
    assert "## Intended use" in text and "`explain: true`" in text
    assert "| teacher model | llama-3.1-70b-instruct |" in text and cfg.provenance.promptHash in text
    assert "| neutral | 0.855 | 0.800 | 0.826 | 125 |" in text


def test_without_gold_labels_the_card_says_agreement_not_accuracy() -> None:
    cfg, metrics = _vectors()
    cfg.data.evalPath, cfg.student.baseModel = "", "google/t5-v1_1-base"
    metrics["evaluation"] = {"metric": "agreement", "examples": 120, "agreement": 0.93}
    del metrics["perClass"], metrics["confusion"]
    card = ModelCard(model_card(cfg, metrics))
    assert [(r.metric_type, r.metric_value) for r in card.data.eval_results] == [("agreement", 0.93)]
    assert card.data.base_model == "google/t5-v1_1-base"
    assert "drawn before any filtering" in card.text and "it is not accuracy" in card.text
    assert "accuracy |" not in card.text


def test_the_trained_model_directory_has_the_card(make_config) -> None:
    cfg = make_config(maxSteps=2)
    result = train(cfg)
    card = ModelCard.load(Path(cfg.output.modelDir) / "README.md")
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert values["Student accuracy"] == result.evaluation.studentAccuracy
    assert values["Teacher accuracy (llama-3.1-70b-instruct)"] == result.evaluation.teacherAccuracy
    assert f"On {result.evalExamples} eval examples" in card.text
