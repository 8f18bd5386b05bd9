"""`python -m distillery_student train`: bad input fails with one line naming it and writes nothing final."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONTRACT, comparison_records

from distillery_student.contract import train_config_to_dict


def _run_train(cfg, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(train_config_to_dict(cfg)))
    term = tmp_path / "termination-log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    p = subprocess.run([sys.executable, "-m", "distillery_student", "train", "--config", str(path),
                        "--termination-log", str(term)], capture_output=True, text=True, env=env, timeout=300,
                       cwd=Path(__file__).resolve().parents[1])
    return p, json.loads(term.read_text())


def test_train_cli_writes_model_metrics_and_summary(make_config, tmp_path: Path) -> None:
    cfg = make_config(maxSteps=4)
    p, summary = _run_train(cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    assert summary["stage"] == "train" and summary["steps"] == 4 and summary["modelDir"] == cfg.output.modelDir
    assert set(summary) == {"stage", "steps", "trainLoss", "evalAccuracy", "evalExamples", "modelDir", "bestStep",
                            "wallSeconds", "evaluation"}
    assert summary["evaluation"]["metric"] == "accuracy" and summary["evalExamples"] == summary["evaluation"]["examples"]
    assert summary["evalAccuracy"] == summary["evaluation"]["studentAccuracy"] and 1 <= summary["bestStep"] <= 4
    model = Path(cfg.output.modelDir)
    assert (model / "distillery.json").exists() and (model / "config.json").exists() and (model / "README.md").exists()
    job_dir = Path(cfg.output.jobDir)
    assert (job_dir / "report.svg").read_text().startswith("<?xml")
    assert json.loads((job_dir / "report.json").read_text())["evaluation"] == summary["evaluation"]
    metrics = json.loads(Path(cfg.output.metricsPath).read_text())
    vector = json.loads((CONTRACT / "metrics.json").read_text())
    assert metrics["steps"] == 4 and set(metrics) == set(vector) and set(metrics["settings"]) == set(vector["settings"])
    assert set(metrics["curves"]) == set(vector["curves"]) and metrics["evaluation"] == summary["evaluation"]
    assert '"step": 4' in p.stderr or '"step":4' in p.stderr  # progress goes to the log outside a cluster
    assert not [n for n in os.listdir(model.parent) if ".tmp-" in n or ".old-" in n]


@pytest.mark.parametrize("case, message", [
    ("no-ok", "has no ok record"),
    ("bad-label", "label 'maybe' is not one of the task's labels"),
    ("missing-field", "missing field training.learningRate"),
    ("no-model", "student.baseModel"),
])
def test_bad_input_fails_with_one_line(make_config, tmp_path: Path, case: str, message: str) -> None:
    records = comparison_records(10)
    if case == "no-ok":
        for r in records:
            r["status"] = "unparseable"
            r["error"] = "no answer marker"
    if case == "bad-label":
        records[3]["goldLabel"] = "maybe"
    cfg = make_config(records=records, base=str(tmp_path / "no-such-model") if case == "no-model" else None)
    if case == "missing-field":
        raw = train_config_to_dict(cfg)
        del raw["training"]["learningRate"]
        path = tmp_path / "train.json"
        path.write_text(json.dumps(raw))
        term = tmp_path / "t.log"
        p = subprocess.run([sys.executable, "-m", "distillery_student", "train", "--config", str(path),
                            "--termination-log", str(term)], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parents[1])
        summary = json.loads(term.read_text())
    else:
        p, summary = _run_train(cfg, tmp_path)
    assert p.returncode == 3  # permanent: the operator does not retry bad input
    assert message in summary["error"] and summary["reason"] == "InvalidInput"
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in p.stderr
    assert not os.path.exists(cfg.output.modelDir) and not os.path.exists(cfg.output.metricsPath)
