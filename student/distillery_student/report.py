"""The report (docs/workloads.md): report.json and report.svg, written into the job (or point) folder and,
inside a cluster, patched into ConfigMap `output.reportConfigMap` (`<job>-report`) with the same
ConfigMapPatcher the progress reports use.

- A single run: the trainer at its end, from its metrics.json (publish_run): report.json = {"job",
  "evaluation", "perClass", "confusion", "curves", "settings", "points": [its row]}; report.svg = its loss
  curves and confusion matrix.
- A sweep: `python -m distillery_student report --config report.json` after its last point (sweep_report):
  every point's row, the served point's detail, and the data-efficiency curve.
"evaluation" is the termination object's evaluation, the numbers the operator puts in status.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

from .contract import JOB_FILE_NAME, PRIMARY_FIELD, InvalidInput, ReportConfig, TrainConfig, write_atomic

log = logging.getLogger("distillery_student")

REPORT_JSON = "report.json"
REPORT_SVG = "report.svg"
MAX_CONFIGMAP_BYTES = 1_000_000  # the API server refuses a ConfigMap over 1 MiB
_ROW_KEYS = ("steps", "bestStep", "wallSeconds")
_DETAIL_KEYS = ("perClass", "confusion", "curves", "settings")
_SCORE_NAMES = {"accuracy": "student accuracy", "agreement": "agreement with the teacher", "exactMatch": "exact match"}

Patch = Callable[[dict[str, str]], None]


def point_row(metrics: dict[str, Any], index: int, served: bool) -> dict[str, Any]:
    """One row of the points table: settings, run figures and the evaluation's numbers."""
    row: dict[str, Any] = {"index": index, "served": served, "state": "Succeeded", **metrics.get("settings", {})}
    row.update({k: metrics[k] for k in _ROW_KEYS if k in metrics})
    row.update(metrics.get("evaluation", {}))
    return row


def detail(job: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The served run's part of report.json."""
    return {"job": job, "evaluation": metrics.get("evaluation", {}),
            **{k: metrics[k] for k in _DETAIL_KEYS if k in metrics}}


def run_report(job: str, metrics: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """report.json and report.svg of a single run."""
    from .plots import run_figure

    index = metrics.get("point", {}).get("index", 0)
    return {**detail(job, metrics), "points": [point_row(metrics, index, True)]}, run_figure(metrics)


def sweep_report(job: str, by_index: dict[int, dict[str, Any]], served: int) -> tuple[dict[str, Any], str]:
    """report.json and report.svg of a sweep, from each point's metrics.json (by index)."""
    from .plots import sweep_figure

    rows = [point_row(m, i, i == served) for i, m in sorted(by_index.items())]
    ev = by_index[served].get("evaluation", {})
    metric = ev.get("metric", "accuracy")
    svg = sweep_figure(rows, PRIMARY_FIELD[metric], _SCORE_NAMES[metric], ev.get("teacherAccuracy"))
    return {**detail(job, by_index[served]), "points": rows, "servedIndex": served}, svg


def write_files(directory: str, report: dict[str, Any], svg: str) -> None:
    write_atomic(os.path.join(directory, REPORT_JSON), json.dumps(report, indent=1) + "\n")
    write_atomic(os.path.join(directory, REPORT_SVG), svg)


def configmap_data(report: dict[str, Any], svg: str) -> dict[str, str]:
    """The ConfigMap's keys; the SVG is left out (and said so) when both would not fit in a ConfigMap."""
    text = json.dumps(report, separators=(",", ":"))
    if len(text.encode()) + len(svg.encode()) > MAX_CONFIGMAP_BYTES:
        log.warning("report: report.svg (%d bytes) does not fit in the ConfigMap; it is only in the job folder",
                    len(svg.encode()))
        return {REPORT_JSON: text}
    return {REPORT_JSON: text, REPORT_SVG: svg}


def in_cluster_patch(configmap: str) -> Patch | None:
    """ConfigMapPatcher(configmap).patch_data inside a cluster, else None (files only)."""
    from .progress import ConfigMapPatcher, in_cluster

    return ConfigMapPatcher(configmap).patch_data if configmap and in_cluster() else None


def publish_run(cfg: TrainConfig, metrics: dict[str, Any], patch: Patch | None = None) -> None:
    """The trainer's report: files next to metrics.json, and the ConfigMap when output.reportConfigMap is
    set inside a cluster. A failure is logged; the trained model stands."""
    try:
        report, svg = run_report(cfg.job, metrics)
        write_files(os.path.dirname(os.path.abspath(cfg.output.metricsPath)), report, svg)
        patch = patch or in_cluster_patch(cfg.output.reportConfigMap)
        if patch is not None:
            patch(configmap_data(report, svg))
    except Exception as e:  # noqa: BLE001 - the report never fails a trained run
        log.warning("report: %s: %s", type(e).__name__, e)


def _job_name(job_dir: str) -> str:
    """The job's name from the folder's job.json, else the folder's name."""
    try:
        with open(os.path.join(job_dir, JOB_FILE_NAME), encoding="utf-8") as f:
            return str(json.load(f)["job"])
    except (OSError, ValueError, KeyError):
        return os.path.basename(os.path.normpath(job_dir))


def _read_metrics(path: str, index: int) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InvalidInput(f"report.json: points index {index}: metrics file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(f"report.json: points index {index}: metrics file {path} is not valid JSON: {e}") from None


def run_sweep_report(config: ReportConfig, patch: Patch | None = None) -> dict[str, Any]:
    """Reads every point's metrics.json, writes report.json and report.svg into jobDir and patches the
    ConfigMap (inside a cluster); a failed patch raises, so the report Job fails and says why."""
    by_index = {p.index: _read_metrics(p.metricsPath, p.index) for p in config.points}
    for p in config.points:  # what the trainer wrote it trained on wins; the config fills what is missing
        given = {"mode": p.mode, "rationaleWeight": p.rationaleWeight, "fraction": p.fraction, "seed": p.seed,
                 "baseModel": p.baseModel}
        by_index[p.index]["settings"] = {**given, **by_index[p.index].get("settings", {})}
    report, svg = sweep_report(_job_name(config.jobDir), by_index, config.servedIndex)
    write_files(config.jobDir, report, svg)
    patch = patch or in_cluster_patch(config.reportConfigMap)
    if patch is not None:
        patch(configmap_data(report, svg))
    return report
