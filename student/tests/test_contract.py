"""The Python half of the contract reads the shared vectors in testdata/contract."""

from __future__ import annotations

import json

import pytest
from conftest import CONTRACT

from distillery_student.contract import (
    InvalidInput,
    ModelInfo,
    Evaluation,
    TrainResult,
    claim_job_dir,
    eval_shard_file_name,
    load_report_config,
    parse_report_config,
    distillery_json,
    normalize_label,
    train_progress_key,
    parse_train_config,
    read_eval_records,
    read_records,
)
from distillery_student.data import build_examples
from distillery_student.split import holdout_fraction, load_splits


def _vector(name: str):
    return json.loads((CONTRACT / name).read_text())


def test_normalize_label_vector() -> None:
    for raw, want in _vector("normalize.json"):
        assert normalize_label(raw) == want, raw


def test_progress_keys_vector() -> None:
    for k in _vector("progress-keys.json"):
        assert train_progress_key(k["rank"], k.get("point")) == k["key"], k


def test_train_config_vector() -> None:
    cfg = parse_train_config(_vector("train.json"))
    assert cfg.training.mode == "step-by-step" and cfg.task.labels == ["entailment", "neutral", "contradiction"]
    job = _vector("job.json")
    assert cfg.jobUID == job["uid"] and cfg.output.jobDir == f"/workspace/jobs/{job['job']}-{job['uid']}"
    assert cfg.output.modelDir == cfg.output.jobDir + "/model" and cfg.data.evalPath == "/data/eval.jsonl"
    assert cfg.training.strategy == "DDP" and not cfg.training.activationCheckpointing
    d = cfg.data
    assert (d.validationFraction, d.fraction, d.subsetSeed, cfg.training.evalEverySteps) == (0.1, 1.0, 0, 0)
    assert cfg.output.reportConfigMap == "anli-t5-report"
    assert cfg.point is not None and (cfg.point.index, cfg.point.total) == (2, 8)
    lora = cfg.training.lora
    assert lora is not None and (lora.rank, lora.alpha, lora.dropout, lora.targetModules) == (16, 32.0, 0.05, ["q", "v"])


def test_unknown_keys_of_train_json_are_ignored() -> None:
    """A key the trainer does not know (a newer operator's field), at the top level, inside `training` or a
    section within it, parses to the same config as without it."""
    want = parse_train_config(_vector("train.json"))
    raw = _vector("train.json")
    raw["futureTopLevelKey"] = {"any": ["shape", 1]}
    raw["training"]["futureTrainingKey"] = 7
    raw["training"]["lora"]["futureLoraKey"] = "x"
    raw["data"]["futureDataKey"] = None
    got = parse_train_config(raw)
    assert got == want
    assert not hasattr(got, "futureTopLevelKey") and not hasattr(got.training, "futureTrainingKey")
    assert got.training.learningRate == 5e-05 and got.training.lora is not None and got.training.lora.rank == 16


@pytest.mark.parametrize("change, message", [
    ({"strategy": "ZeRO"}, r"training\.strategy 'ZeRO' is not DDP or FSDP"),
    ({"lora": {"rank": "8"}}, r"training\.lora\.rank must be of type int"),
    ({"lora": {"rank": 0}}, r"training\.lora needs rank > 0"),
    ({"strategy": "FSDP"}, r"training\.lora is supported with strategy DDP only"),
    ({"cudaGraphs": "Auto"}, r"training\.cudaGraphs 'Auto' is not auto or off"),
])
def test_bad_training_strategy_or_lora_is_named(change: dict, message: str) -> None:
    raw = _vector("train.json")
    raw["training"].update(change)
    with pytest.raises(InvalidInput, match=message):
        parse_train_config(raw)


def test_defaults_of_the_evaluation_fields() -> None:
    raw = _vector("train.json")
    for k in ("validationFraction", "fraction", "subsetSeed"):
        del raw["data"][k]
    del raw["training"]["evalEverySteps"], raw["output"]["reportConfigMap"], raw["point"]
    cfg = parse_train_config(raw)
    assert (cfg.data.validationFraction, cfg.data.fraction, cfg.data.subsetSeed) == (0.1, 1.0, 0)
    assert cfg.training.evalEverySteps == 0 and cfg.output.reportConfigMap == "" and cfg.point is None


@pytest.mark.parametrize("section, change, message", [
    ("data", {"fraction": 0}, r"data\.fraction must be in \(0, 1\]"),
    ("data", {"fraction": 1.5}, r"data\.fraction must be in \(0, 1\]"),
    ("data", {"validationFraction": 1}, r"data\.validationFraction must be in \[0, 1\)"),
    ("data", {"subsetSeed": "7"}, r"data\.subsetSeed must be of type int"),
    ("training", {"evalEverySteps": -1}, r"training\.evalEverySteps must not be negative"),
    ("point", {"index": 8}, r"point\.index 8 is not in \[0, point\.total 8\)"),
    ("point", {"total": None}, r"point\.total must be of type int"),
])
def test_bad_evaluation_fields_are_named(section: str, change: dict, message: str) -> None:
    raw = _vector("train.json")
    raw[section].update(change)
    with pytest.raises(InvalidInput, match=message):
        parse_train_config(raw)


def test_report_config_vector(tmp_path) -> None:
    cfg = load_report_config(str(CONTRACT / "report-config.json"))
    assert cfg.servedIndex == 1 and cfg.reportConfigMap == "anli-t5-report"
    assert [(p.index, p.mode, p.fraction) for p in cfg.points] == [(0, "step-by-step", 0.5), (1, "step-by-step", 1.0),
                                                                    (3, "standard", 1.0)]
    assert cfg.points[0].metricsPath == cfg.jobDir + "/points/0/metrics.json"
    raw = _vector("report-config.json")
    raw["servedIndex"] = 2
    with pytest.raises(InvalidInput, match="servedIndex 2 is not the index of one of the points"):
        parse_report_config(raw)
    del raw["points"][1]["metricsPath"]
    with pytest.raises(InvalidInput, match=r"report\.json: missing field points\[1\]\.metricsPath"):
        parse_report_config(raw)


def test_training_without_lora_or_strategy_is_full_fine_tuning_under_ddp() -> None:
    raw = _vector("train.json")
    for k in ("lora", "strategy", "activationCheckpointing", "cudaGraphs", "compile"):
        del raw["training"][k]
    t = parse_train_config(raw).training
    assert t.lora is None and t.strategy == "DDP" and t.activationCheckpointing is False and t.cudaGraphs == "auto"
    assert t.compile is False


def test_claim_job_dir_writes_the_vector_and_refuses_another_uid(tmp_path) -> None:
    job = _vector("job.json")
    d = str(tmp_path / "jobs" / f"{job['job']}-{job['uid']}")
    claim_job_dir(d, job["job"], job["uid"])
    assert json.loads((tmp_path / "jobs" / f"{job['job']}-{job['uid']}" / "job.json").read_text()) == job
    claim_job_dir(d, job["job"], job["uid"])  # a retried pod of the same run resumes
    with pytest.raises(InvalidInput, match=f"belongs to job {job['job']} \\(uid {job['uid']}\\).*uid other"):
        claim_job_dir(d, job["job"], "other")


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
    # absent numbers are omitted (a reader takes null the same way)
    want["evaluation"] = {k: v for k, v in want["evaluation"].items() if v is not None}
    line = TrainResult(**{**want, "evaluation": Evaluation(**want["evaluation"])}).to_json()
    assert json.loads(line) == want and "\n" not in line
    assert want["evalAccuracy"] == want["evaluation"]["studentAccuracy"]  # the primary metric, for one release
    assert want["evalExamples"] == want["evaluation"]["examples"]
    failed = json.loads(TrainResult(steps=6, error="stopped by SIGTERM").to_json())
    assert "evaluation" not in failed and "bestStep" not in failed
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


def test_eval_shard_files_are_never_trained_on(tmp_path) -> None:
    assert eval_shard_file_name(3, 8) == "eval-shard-00003-of-00008.jsonl"
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "shard-00000-of-00001.jsonl").write_text((CONTRACT / "records.jsonl").read_text())
    (tmp_path / "ann" / eval_shard_file_name(0, 1)).write_text(
        '{"id":"e1","input":"x","teacherLabel":"neutral","rationale":"r","status":"ok"}\n')
    assert "e1" not in [r.id for r in read_records(str(tmp_path / "ann"))]
    assert [r.id for r in read_eval_records(str(tmp_path / "ann"))] == ["e1"]


def test_hash_holdout_is_the_documented_formula() -> None:
    import hashlib

    for rid in ["1", "abc", "r42"]:
        assert holdout_fraction(rid) == int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16) / 2**32
