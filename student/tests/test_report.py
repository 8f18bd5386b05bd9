"""The report: report.json carries the termination object's numbers (what the operator puts in status) and
report.svg the figures; a single run's trainer and a sweep's `report` command write both into the job folder
and patch ConfigMap <job>-report through the in-cluster API."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTRACT
from test_progress import _fake_api, _sa

from distillery_student import report
from distillery_student.progress import ConfigMapPatcher
from distillery_student.train import train

SVG = "{http://www.w3.org/2000/svg}svg"


def _metrics() -> dict[str, Any]:
    return json.loads((CONTRACT / "metrics.json").read_text())


def _svg_text(svg: str) -> str:
    root = ET.fromstring(svg)
    assert root.tag == SVG
    return " ".join(t for t in root.itertext())


def test_a_run_report_holds_the_termination_numbers_and_its_figures() -> None:
    m = _metrics()
    doc, svg = report.run_report("anli-t5", m)
    term = json.loads((CONTRACT / "termination-train.json").read_text())
    want = {k: v for k, v in term["evaluation"].items() if v is not None}
    assert doc["evaluation"] == want == m["evaluation"]
    assert doc["job"] == "anli-t5" and doc["confusion"] == m["confusion"] and doc["curves"] == m["curves"]
    assert doc["perClass"] == m["perClass"] and doc["settings"] == m["settings"]
    [row] = doc["points"]
    assert row["served"] and row["studentAccuracy"] == 0.875 and row["teacherAccuracy"] == 0.9
    assert (row["bestStep"], row["steps"], row["wallSeconds"], row["fraction"]) == (1200, 1500, 812.5, 1.0)
    text = _svg_text(svg)
    for words in ("Confusion matrix", "validation accuracy", "rationale loss", "served step 1200", "other", "135"):
        assert words in text, words


def test_without_gold_labels_the_figure_has_no_confusion_matrix() -> None:
    m = _metrics()
    for k in ("perClass", "confusion"):
        del m[k]
    m["evaluation"] = {"metric": "agreement", "examples": 400, "agreement": 0.91}
    doc, svg = report.run_report("j", m)
    assert "confusion" not in doc and "Confusion" not in _svg_text(svg)
    assert doc["points"][0]["agreement"] == 0.91 and "studentAccuracy" not in doc["points"][0]


def test_the_trainers_report_equals_its_termination_object(make_config) -> None:
    cfg = make_config(maxSteps=3)
    result = train(cfg)
    job_dir = Path(cfg.output.jobDir)
    doc = json.loads((job_dir / "report.json").read_text())
    term = json.loads(result.to_json())
    assert doc["evaluation"] == term["evaluation"]
    row = doc["points"][0]
    for k in ("steps", "bestStep", "wallSeconds"):
        assert row[k] == term[k], k
    assert {k: row[k] for k in term["evaluation"]} == term["evaluation"]
    assert doc["curves"]["step"] == [1, 2, 3] and _svg_text((job_dir / "report.svg").read_text())


def test_a_sweep_point_writes_its_report_into_its_own_folder(make_config) -> None:
    from distillery_student.contract import Point

    cfg = make_config(maxSteps=1)
    point_dir = Path(cfg.output.jobDir) / "points" / "2"
    cfg.point, cfg.output.reportConfigMap = Point(index=2, total=8), ""
    cfg.output.metricsPath, cfg.output.modelDir = str(point_dir / "metrics.json"), str(point_dir / "model")
    cfg.output.checkpointDir = str(point_dir / "checkpoints")
    train(cfg)
    assert json.loads((point_dir / "metrics.json").read_text())["point"] == {"index": 2, "total": 8}
    assert json.loads((point_dir / "report.json").read_text())["points"][0]["index"] == 2
    assert not (Path(cfg.output.jobDir) / "report.json").exists()


def test_publish_patches_both_keys_of_the_report_configmap(tmp_path: Path, make_config) -> None:
    httpd, seen = _fake_api()
    try:
        patcher = ConfigMapPatcher("anli-t5-report", api_base=f"http://127.0.0.1:{httpd.server_address[1]}",
                                   sa_dir=_sa(tmp_path))
        cfg = make_config(maxSteps=1)
        report.publish_run(cfg, _metrics(), patcher.patch_data)
    finally:
        httpd.shutdown()
    [req] = seen
    assert req["path"] == "/api/v1/namespaces/team-a/configmaps/anli-t5-report"
    assert req["ctype"] == "application/merge-patch+json"
    data = req["body"]["data"]
    assert set(data) == {"report.json", "report.svg"}
    assert json.loads(data["report.json"]) == json.loads((Path(cfg.output.jobDir) / "report.json").read_text())
    assert data["report.svg"] == (Path(cfg.output.jobDir) / "report.svg").read_text()


def test_a_failed_patch_never_fails_the_run(tmp_path: Path, make_config) -> None:
    dead = ConfigMapPatcher("j-report", api_base="http://127.0.0.1:9", sa_dir=_sa(tmp_path), timeout=1)
    cfg = make_config(maxSteps=1)
    report.publish_run(cfg, _metrics(), dead.patch_data)  # connection refused: logged
    assert (Path(cfg.output.jobDir) / "report.svg").exists()


def _sweep(tmp_path: Path) -> Path:
    """A sweep's job folder: 2 modes x 2 fractions x 2 seeds, and report.json naming them (index 5 served)."""
    job_dir = tmp_path / "jobs" / "anli-t5-uid"
    (job_dir).mkdir(parents=True)
    (job_dir / "job.json").write_text('{"job":"anli-t5","uid":"uid"}\n')
    points, index = [], 0
    for mode, base in (("step-by-step", 0.8), ("standard", 0.7)):
        for fraction in (0.25, 1.0):
            for seed in (0, 1):
                m = copy.deepcopy(_metrics())
                acc = base + 0.1 * fraction + 0.01 * seed
                m["evaluation"]["studentAccuracy"] = m["evalAccuracy"] = acc
                m["settings"].update(mode=mode, fraction=fraction, seed=seed)
                path = job_dir / "points" / str(index) / "metrics.json"
                path.parent.mkdir(parents=True)
                path.write_text(json.dumps(m))
                points.append({"index": index, "metricsPath": str(path), "mode": mode, "rationaleWeight": 1.0,
                               "fraction": fraction, "seed": seed, "baseModel": "/models/t5"})
                index += 1
    (tmp_path / "report.json").write_text(json.dumps({"jobDir": str(job_dir), "points": points, "servedIndex": 3,
                                                      "reportConfigMap": "anli-t5-report"}))
    return job_dir


def _report_cli(config: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    env = {**os.environ}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    term = tmp_path / "term"
    p = subprocess.run([sys.executable, "-m", "distillery_student", "report", "--config", str(config),
                        "--termination-log", str(term)], capture_output=True, text=True, env=env, timeout=120,
                       cwd=Path(__file__).resolve().parents[1])
    return p, json.loads(term.read_text())


def test_the_sweep_report_cli(tmp_path: Path) -> None:
    job_dir = _sweep(tmp_path)
    p, term = _report_cli(tmp_path / "report.json", tmp_path)
    assert p.returncode == 0, p.stderr
    assert term == {"stage": "report", "points": 8, "servedIndex": 3}
    doc = json.loads((job_dir / "report.json").read_text())
    assert doc["job"] == "anli-t5" and doc["servedIndex"] == 3
    assert [r["index"] for r in doc["points"]] == list(range(8)) and [r["served"] for r in doc["points"]].count(True) == 1
    served = json.loads((job_dir / "points" / "3" / "metrics.json").read_text())
    assert doc["evaluation"] == served["evaluation"] and doc["curves"] == served["curves"]
    assert doc["points"][3]["studentAccuracy"] == pytest.approx(0.91)
    text = _svg_text((job_dir / "report.svg").read_text())
    for words in ("step-by-step", "standard", "teacher (0.900)", "25%", "100%", "student accuracy"):
        assert words in text, words


def test_the_sweep_figure_has_error_bars_over_seeds(tmp_path: Path) -> None:
    from distillery_student import plots

    rows = [{"mode": "standard", "fraction": f, "seed": s, "studentAccuracy": a}
            for f, s, a in ((0.5, 0, 0.6), (0.5, 1, 0.8), (1.0, 0, 0.9), (1.0, 1, 0.9))]
    svg = plots.sweep_figure(rows, "studentAccuracy", "student accuracy", None)
    root = ET.fromstring(svg)
    caps = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if (g.get("id") or "").startswith("LineCollection")]
    assert caps and "teacher" not in _svg_text(svg)  # the error bars; no teacher line without its accuracy


def test_a_missing_metrics_file_is_named(tmp_path: Path) -> None:
    job_dir = _sweep(tmp_path)
    os.remove(job_dir / "points" / "6" / "metrics.json")
    p, term = _report_cli(tmp_path / "report.json", tmp_path)
    assert p.returncode == 3 and term["reason"] == "InvalidInput"
    assert "points index 6: metrics file" in term["error"] and "does not exist" in term["error"]
    assert not (job_dir / "report.json").exists()


def test_the_sweep_report_patches_the_configmap(tmp_path: Path) -> None:
    from distillery_student.contract import load_report_config

    _sweep(tmp_path)
    (tmp_path / "sa").mkdir()
    httpd, seen = _fake_api()
    try:
        patcher = ConfigMapPatcher("anli-t5-report", api_base=f"http://127.0.0.1:{httpd.server_address[1]}",
                                   sa_dir=_sa(tmp_path / "sa"))
        doc = report.run_sweep_report(load_report_config(str(tmp_path / "report.json")), patcher.patch_data)
    finally:
        httpd.shutdown()
    [req] = seen
    assert json.loads(req["body"]["data"]["report.json"]) == doc and "<svg" in req["body"]["data"]["report.svg"]


def test_a_failed_sweep_patch_fails_the_report(tmp_path: Path) -> None:
    from distillery_student.contract import load_report_config

    _sweep(tmp_path)
    (tmp_path / "sa").mkdir()
    dead = ConfigMapPatcher("anli-t5-report", api_base="http://127.0.0.1:9", sa_dir=_sa(tmp_path / "sa"), timeout=1)
    with pytest.raises(OSError):
        report.run_sweep_report(load_report_config(str(tmp_path / "report.json")), dead.patch_data)


def test_an_svg_too_large_for_a_configmap_is_left_out() -> None:
    data = report.configmap_data({"a": 1}, "x" * (report.MAX_CONFIGMAP_BYTES + 1))
    assert set(data) == {"report.json"}
