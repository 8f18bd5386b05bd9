"""The Python half of the contract reads the shared vectors in testdata/contract."""

from __future__ import annotations

import json

import pytest
from conftest import CONTRACT

from distillery_student.contract import (
    InvalidInput,
    ModelInfo,
    TrainResult,
    distillery_json,
    normalize_label,
    parse_train_config,
    read_records,
)
from distillery_student.data import build_examples, holdout_fraction, load_splits


def _vector(name: str):
    return json.loads((CONTRACT / name).read_text())


def test_normalize_label_vector() -> None:
    for raw, want in _vector("normalize.json"):
        assert normalize_label(raw) == want, raw


def test_train_config_vector() -> None:
    cfg = parse_train_config(_vector("train.json"))
    assert cfg.training.mode == "step-by-step" and cfg.task.labels == ["entailment", "neutral", "contradiction"]
    assert cfg.output.modelDir == "/workspace/model" and cfg.data.evalPath == "/data/eval.jsonl"


@pytest.mark.parametrize("path", ["job", "student", "training.batchSize", "output.modelDir", "task.labelPrefix"])
def test_missing_config_field_is_named(path: str) -> None:
    raw = _vector("train.json")
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    del node[leaf]
    with pytest.raises(InvalidInput, match=path.replace(".", r"\.")):
        parse_train_config(raw)


def test_wrong_type_is_named() -> None:
    raw = _vector("train.json")
    raw["training"]["batchSize"] = "64"
    with pytest.raises(InvalidInput, match=r"training\.batchSize"):
        parse_train_config(raw)


def test_distillery_json_vector() -> None:
    want = _vector("distillery.json")
    cfg = parse_train_config(_vector("train.json"))
    got = distillery_json(cfg, want["metrics"])
    assert got == want
    info = ModelInfo.from_dict(want)
    assert info.labelPrefix == "[label] " and info.architecture == "seq2seq"


def test_termination_train_vector() -> None:
    want = _vector("termination-train.json")
    line = TrainResult(**want).to_json()
    assert json.loads(line) == want and "\n" not in line
    long = TrainResult(error="x" * 10000, reason="InvalidInput").to_json()
    assert len(long.encode()) <= 4096 and json.loads(long)["reason"] == "InvalidInput"


def test_records_vector_ok_records_and_labels(tmp_path) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "shard-00000-of-00001.jsonl").write_text((CONTRACT / "records.jsonl").read_text())
    records = list(read_records(str(tmp_path / "ann")))
    assert [r.status for r in records].count("ok") == 3
    raw = _vector("train.json")
    raw["data"].update(annotationsDir=str(tmp_path / "ann"), evalPath="", evalFraction=0.0)
    cfg = parse_train_config(raw)
    splits = load_splits(cfg)
    assert [r.id for r in splits.train] == ["1", "2", "6"]
    # gold label where there is one, else the teacher's (record 6 has no gold label)
    examples = build_examples(splits.train, cfg)
    assert [exs[0].target for exs in examples] == ["entailment", "contradiction", "entailment"]
    assert examples[0][1].source == "[rationale] " + records[0].input
    assert examples[0][1].target == "Reading a book is reading."


def test_the_trainer_trains_on_every_ok_record_the_sample_is_the_annotators(tmp_path) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "shard-00000-of-00001.jsonl").write_text((CONTRACT / "records.jsonl").read_text())
    raw = _vector("train.json")
    # An older operator rendered data.maxExamples into train.json; the annotator's sample already applied it.
    raw["data"].update(annotationsDir=str(tmp_path / "ann"), evalPath="", evalFraction=0.0, maxExamples=1)
    assert [r.id for r in load_splits(parse_train_config(raw)).train] == ["1", "2", "6"]


def test_hash_holdout_is_the_documented_formula() -> None:
    import hashlib

    for rid in ["1", "abc", "r42"]:
        assert holdout_fraction(rid) == int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16) / 2**32
