"""The splits: the eval split depends on record ids alone (not on the teacher's answers or the filters), keeps
the inputs the teacher failed on, and is never trained on; validation is carved from the training records;
data fractions are nested."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTRACT, comparison_records

from distillery_student.contract import InvalidInput, eval_shard_file_name
from distillery_student.evaluation import evaluate, teacher_accuracy
from distillery_student.split import holdout_fraction, load_splits, read_eval_file, subset_key, unit_hash, validation_key

STATUSES = ("unparseable", "label_mismatch", "teacher_error")


def _teacher_wrong(rid: str) -> bool:
    """The fake teacher fails on a known 20% of the inputs (by a hash independent of the splits')."""
    return unit_hash("teacher-wrong:" + rid) < 0.2


def _annotated(records: list[dict[str, Any]], failing: str = "label_mismatch") -> list[dict[str, Any]]:
    """What the annotator writes when the teacher fails on _teacher_wrong inputs: the wrong label filtered as
    `failing` (label_mismatch keeps the teacher's label, the other statuses have none)."""
    out = []
    for r in records:
        r = dict(r)
        if _teacher_wrong(r["id"]):
            wrong = "second" if r["goldLabel"] == "first" else "first"
            r.update(status=failing, error="the fake teacher was wrong")
            if failing == "label_mismatch":
                r["teacherLabel"] = wrong
            else:
                del r["teacherLabel"], r["rationale"]
        out.append(r)
    return out


def _splits(make_config, records: list[dict[str, Any]], **data: Any):
    return load_splits(make_config(records=records, data={"evalFraction": 0.2, **data}))


def test_the_eval_split_depends_on_ids_only(make_config) -> None:
    records = comparison_records(600)
    clean = _splits(make_config, records)
    want = {r["id"] for r in records if holdout_fraction(r["id"]) < 0.2}
    assert {e.id for e in clean.eval} == want
    for failing in STATUSES:  # the same inputs, the teacher failing on some, filtered in each way
        assert {e.id for e in _splits(make_config, _annotated(records, failing)).eval} == want
    shuffled = list(reversed(records))  # shard order does not matter either
    assert {e.id for e in _splits(make_config, shuffled).eval} == want


def test_a_teacher_wrong_on_20_percent_scores_about_0_8_and_those_inputs_stay_in_eval(make_config) -> None:
    records = comparison_records(2000)
    splits = _splits(make_config, _annotated(records))
    wrong = {e.id for e in splits.eval if _teacher_wrong(e.id)}
    assert len(wrong) > 40 and all(any(e.id == w for e in splits.eval) for w in wrong)
    assert not wrong & {r.id for r in splits.train + splits.validation}
    acc = teacher_accuracy(splits.eval)
    assert acc == pytest.approx(1 - len(wrong) / len(splits.eval)) and acc == pytest.approx(0.8, abs=0.04)
    # the student that answers like the gold labels: accuracy 1; its agreement with the wrong teacher, acc
    scores = evaluate(splits.eval, [e.gold for e in splits.eval], "classification", ["first", "second"], True)
    assert scores.summary.studentAccuracy == 1.0 and scores.summary.teacherAccuracy == pytest.approx(acc)
    assert scores.summary.agreement == pytest.approx(acc)  # label_mismatch records keep the teacher's label


def test_no_eval_record_is_trained_on_and_validation_comes_from_training_records(make_config) -> None:
    records = _annotated(comparison_records(1000), "unparseable")
    splits = _splits(make_config, records, validationFraction=0.1)
    ev, val, train = ({e.id for e in splits.eval}, {r.id for r in splits.validation}, {r.id for r in splits.train})
    assert not ev & val and not ev & train and not val & train
    ok = {r["id"] for r in records if r["status"] == "ok"}
    assert val | train == ok - ev
    assert val == {i for i in ok - ev if validation_key(i) < 0.1}
    assert len(val) == pytest.approx(0.1 * len(ok - ev), rel=0.3)
    assert not _splits(make_config, records, validationFraction=0.0).validation


def test_data_fractions_are_nested_and_seeded(make_config) -> None:
    records = comparison_records(1200)
    full = {r.id for r in _splits(make_config, records).train}
    quarter, half = ({r.id for r in _splits(make_config, records, fraction=f, subsetSeed=7).train} for f in (0.25, 0.5))
    assert quarter < half < full
    assert len(quarter) == pytest.approx(0.25 * len(full), rel=0.15)
    assert len(half) == pytest.approx(0.5 * len(full), rel=0.1)
    assert half == {i for i in full if subset_key(7, i) < 0.5}
    other = {r.id for r in _splits(make_config, records, fraction=0.5, subsetSeed=8).train}
    assert other != half and len(other & half) < 0.75 * len(half)  # another seed draws another subset
    # the teacher failing elsewhere removes only its own records: the subset of the others is unchanged
    filtered = {r.id for r in _splits(make_config, _annotated(records), fraction=0.5, subsetSeed=7).train}
    assert filtered == {i for i in half if not _teacher_wrong(i)}


def test_too_small_a_fraction_is_named(make_config) -> None:
    with pytest.raises(InvalidInput, match=r"no ok record is left for training .* data\.fraction 0\.001"):
        _splits(make_config, comparison_records(50), fraction=0.001)


def _eval_file(tmp_path: Path, lines: list[dict[str, Any]]) -> str:
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return str(path)


def test_an_eval_file_takes_the_teachers_answers_from_the_eval_shards(make_config, tmp_path: Path) -> None:
    ev = _eval_file(tmp_path, [{"id": "e1", "input": "1 2", "label": "second"},
                               {"input": "5 3", "label": "first"},  # no id: its line number, as the annotator gives it
                               {"id": "e3", "input": "7 8", "label": "second"}])
    cfg = make_config(data={"evalPath": ev})
    ann = Path(cfg.data.annotationsDir)
    teacher = [{"id": "e1", "input": "1 2", "goldLabel": "second", "teacherLabel": "second", "rationale": "r",
                "status": "ok"},
               {"id": "2", "input": "5 3", "goldLabel": "first", "teacherLabel": "second", "rationale": "r",
                "status": "label_mismatch", "error": "differs"}]  # e3: the teacher never answered
    (ann / eval_shard_file_name(0, 1)).write_text("\n".join(json.dumps(t) for t in teacher) + "\n")
    splits = load_splits(cfg)
    assert [(e.id, e.gold, e.teacher, e.teacherOk) for e in splits.eval] == [
        ("e1", "second", "second", True), ("2", "first", "second", False), ("e3", "second", "", False)]
    assert splits.teacher_known and len(splits.train) + len(splits.validation) == 64  # every ok record trains
    assert teacher_accuracy(splits.eval) == pytest.approx(1 / 3)


def test_without_eval_shards_the_teacher_is_not_scored(make_config, tmp_path: Path) -> None:
    cfg = make_config(data={"evalPath": _eval_file(tmp_path, [{"id": "e1", "input": "1 2", "label": "second"}])})
    splits = load_splits(cfg)
    assert not splits.teacher_known
    summary = evaluate(splits.eval, ["second"], "classification", ["first", "second"], splits.teacher_known).summary
    assert summary.teacherAccuracy is None and summary.agreement is None and summary.studentAccuracy == 1.0


def test_records_without_gold_labels_give_agreement(make_config) -> None:
    records = comparison_records(300)
    for r in records:
        del r["goldLabel"]
    splits = _splits(make_config, records)
    assert splits.eval and not any(e.gold for e in splits.eval)
    summary = evaluate(splits.eval, [e.teacher for e in splits.eval], "classification", ["first", "second"],
                       True).summary
    assert summary.to_dict() == {"metric": "agreement", "examples": len(splits.eval), "agreement": 1.0}


def test_bad_gold_label_in_the_eval_split_is_named(make_config) -> None:
    records = comparison_records(200)
    held = next(r for r in records if holdout_fraction(r["id"]) < 0.2)
    held.update(goldLabel="maybe", status="unparseable", error="x")
    with pytest.raises(InvalidInput, match=f"annotation record {held['id']} .*label 'maybe' is not one of"):
        _splits(make_config, records)


def test_eval_ids_are_the_annotators(make_config) -> None:
    """The shared vector testdata/contract/dataset-ids.jsonl: each line's id as the annotator gives it
    (internal/annotator/dataset's TestIDsAsTheTrainerReadsThem reads the same files), so the teacher's answer
    to an eval line is found by id: numbers as written (1e3 stays "1e3"), no usable id: the line number."""
    want = json.loads((CONTRACT / "dataset-ids.json").read_text())
    cfg = make_config(data={"evalPath": str(CONTRACT / "dataset-ids.jsonl"), "inputField": "text"})
    assert [e.id for e in read_eval_file(cfg)] == want
