"""The step-by-step vs standard benchmark harness (bench/sbs_sweep.py): its task, subsets, configs and report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import sbs_sweep  # noqa: E402
import sbs_task  # noqa: E402

from distillery_student.contract import parse_train_config, read_eval_records, read_records  # noqa: E402
from distillery_student.split import load_splits  # noqa: E402


@pytest.mark.parametrize("task", sorted(sbs_task.TASKS))
def test_samples_are_right_distinct_and_rationales_do_not_name_the_label(task: str) -> None:
    train, ev = sbs_task.make_samples(task, 600, 200, 3, seed=1)
    assert len(train) == 600 and len(ev) == 200
    assert not {s.input for s in train} & {s.input for s in ev}
    labels = sbs_task.TASKS[task][1]
    for s in train + ev:
        assert s.label in labels
        assert not any(lab in s.rationale for lab in labels)
        sums = [int(part.split("=")[1].split(",")[0]) for part in s.rationale.split(", ") if "=" in part]
        if task == "sum-parity":
            assert sums == [sum(map(int, s.input.split()))]
            assert s.label == ("even" if sums[0] % 2 == 0 else "odd")
        else:
            left, right = s.input.split(" | ")
            assert sums == [sum(map(int, left.split())), sum(map(int, right.split()))]
            assert s.label == ("left" if sums[0] > sums[1] else "right")
    assert 0.4 < sbs_task.majority_rate(train) < 0.6  # balanced: chance is about a half


def test_fractions_are_nested_and_leave_out_validation() -> None:
    train, _ = sbs_task.make_samples("sum-compare", 4000, 0, 3, seed=0)
    for seed in (0, 1):
        sets = [{s.id for s in sbs_task.subset(train, f, seed, 0.1)} for f in (0.125, 0.25, 0.5, 1.0)]
        assert sets[0] <= sets[1] <= sets[2] <= sets[3]
        assert not any(sbs_task.is_validation(i, 0.1) for i in sets[3])
        assert 0.85 * 4000 < len(sets[3]) < 0.95 * 4000
        assert 0.1 * len(sets[3]) < len(sets[0]) < 0.15 * len(sets[3])
    assert ({s.id for s in sbs_task.subset(train, 0.125, 0, 0.1)}
            != {s.id for s in sbs_task.subset(train, 0.125, 1, 0.1)})  # seeds draw different subsets


def test_rendered_point_is_a_valid_train_json_whose_split_is_the_subset(tmp_path: Path) -> None:
    s = sbs_sweep.Settings(train_records=400, eval_records=50, fractions=[0.25, 1.0], seeds=[3], subset="harness")
    info = sbs_sweep.prepare_data(tmp_path, s, eval_shards=False)
    points = sbs_sweep.grid(s)
    assert [(p.fraction, p.mode) for p in points] == [(0.25, "step-by-step"), (0.25, "standard"),
                                                      (1.0, "step-by-step"), (1.0, "standard")]
    p = points[1]
    raw = sbs_sweep.render_train_config(tmp_path, s, p, len(points))
    template = json.loads((Path(__file__).resolve().parents[2] / "testdata/contract/train.json").read_text())
    template["output"].pop("reportConfigMap")  # a sweep point has none (docs/workloads.md, "Sweeps")
    for section in ("student", "data", "task", "training", "output", "provenance"):
        assert set(template[section]) <= set(raw[section]), section
    assert "reportConfigMap" not in raw["output"]
    assert raw["point"] == {"index": 1, "total": 4} and raw["data"]["subsetSeed"] == 3
    cfg = parse_train_config(raw)
    assert cfg.training.mode == "standard" and cfg.training.maxSteps == s.steps
    splits = load_splits(cfg)
    train, ev = sbs_task.make_samples(s.task, 400, 50, s.digits, s.data_seed)
    assert {r.id for r in splits.train} == {x.id for x in sbs_task.subset(train, 0.25, 3, 0.1)}
    assert len(splits.train) == info["trainRecordsPerSubset"]["0.25/3"]
    assert [e.id for e in splits.eval] == [x.id for x in ev]


def test_trainer_mode_writes_all_records_and_the_eval_shard(tmp_path: Path) -> None:
    s = sbs_sweep.Settings(train_records=100, eval_records=20, seeds=[0], subset="trainer")
    sbs_sweep.prepare_data(tmp_path, s, eval_shards=True)
    raw = sbs_sweep.render_train_config(tmp_path, s, sbs_sweep.grid(s)[0], 8)
    assert raw["data"]["fraction"] == 0.125 and raw["data"]["validationFraction"] == 0.1
    files = sorted(p.name for p in Path(raw["data"]["annotationsDir"]).iterdir())
    assert files == [sbs_task.EVAL_SHARD, sbs_task.TRAIN_SHARD]
    records = list(read_records(raw["data"]["annotationsDir"]))  # the training shards only, never eval-shard-*
    teacher = list(read_eval_records(raw["data"]["annotationsDir"]))
    assert len(records) == 100 and len(teacher) == 20
    assert all(r.goldLabel == r.teacherLabel and r.status == "ok" for r in records + teacher)


def test_outcome_reads_both_termination_formats(tmp_path: Path) -> None:
    old, new, metrics = tmp_path / "old.json", tmp_path / "new.json", tmp_path / "metrics.json"
    old.write_text('{"stage":"train","steps":30,"trainLoss":1.0,"evalAccuracy":0.75,"evalExamples":100}\n')
    new.write_text(json.dumps({"stage": "train", "steps": 30, "bestStep": 20, "wallSeconds": 9.5, "evalAccuracy": 0.8,
                               "evaluation": {"metric": "accuracy", "examples": 100, "studentAccuracy": 0.8}}))
    metrics.write_text('{"settings": {"trainExamples": 42}}')
    assert sbs_sweep.read_outcome(old, tmp_path / "none")["accuracy"] == 0.75
    row = sbs_sweep.read_outcome(new, metrics)
    assert (row["accuracy"], row["bestStep"], row["trainerSeconds"], row["trainExamples"]) == (0.8, 20, 9.5, 42)
    assert "message" in sbs_sweep.read_outcome(tmp_path / "missing", metrics)


def test_log_gives_steps_per_second_and_label_loss() -> None:
    log = ("2026-11-30 06:37:50,000 INFO step 50/100 loss 2.0 label 0.5 rationale 1.5 lr 1e-3\n"
           "2026-11-30 06:37:52,500 INFO step 100/100 loss 1.0 label 0.25 rationale 0.75 lr 0\n")
    got = sbs_sweep.parse_log(log)
    assert got["stepsPerSecond"] == 20.0 and got["lastLabelLoss"] == 0.25 and got["lastLoggedStep"] == 100


def test_aggregate_takes_median_and_spread_over_seeds_and_counts_failures(tmp_path: Path) -> None:
    rows = [{"fraction": 0.5, "mode": "standard", "seed": i, "state": "Succeeded", "accuracy": a, "trainExamples": 10}
            for i, a in enumerate([0.6, 0.9, 0.7])]
    rows.append({"fraction": 0.5, "mode": "step-by-step", "seed": 0, "state": "Failed"})
    agg = sbs_sweep.aggregate(rows, [0.5], ["step-by-step", "standard"])
    std = next(a for a in agg if a["mode"] == "standard")
    assert (std["n"], std["median"], std["min"], std["max"]) == (3, 0.7, 0.6, 0.9)
    sbs = next(a for a in agg if a["mode"] == "step-by-step")
    assert sbs["median"] is None and sbs["failed"] == 1
    table = sbs_sweep.table_md(agg, ["step-by-step", "standard"], 0.5)
    assert "70.0 [60.0-90.0] (n=3)" in table and "no run succeeded (1 failed)" in table
    sbs_sweep.plot(agg, rows, 0.5, "t", tmp_path / "curve")
    assert (tmp_path / "curve.svg").read_text().lstrip().startswith("<?xml")
