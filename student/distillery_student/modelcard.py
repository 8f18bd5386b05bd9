"""The model card: README.md in the model directory, Hugging Face style.

The YAML front matter is built with huggingface_hub's ModelCardData (a transformers dependency already), so
its `model-index` is the one the Hub reads; the body gives the provenance, the eval split's scores with the
teacher's beside the student's, the split's size and the intended use.
"""

from __future__ import annotations

import os
from typing import Any

from .contract import ARCH_SEQ2SEQ, TASK_CLASSIFICATION, TrainConfig

# (field of the evaluation, Hub metric type, words for a person)
_SCORES = (
    ("studentAccuracy", "accuracy", "Student accuracy"),
    ("teacherAccuracy", "accuracy", "Teacher accuracy"),
    ("agreement", "agreement", "Student-teacher agreement"),
    ("exactMatch", "exact_match", "Student exact match"),
    ("tokenF1", "f1", "Student token F1"),
)


def _hub_id(name: str) -> str | None:
    """The base model when it is a Hub id ("org/name"), not a local directory."""
    return None if os.path.isabs(name) or name.startswith(".") or name.count("/") > 1 else name


def _task_type(cfg: TrainConfig) -> str:
    if cfg.task.type == TASK_CLASSIFICATION:
        return "text-classification"
    return "text2text-generation" if cfg.student.architecture == ARCH_SEQ2SEQ else "text-generation"


def _scores(evaluation: dict[str, Any], teacher: str) -> list[tuple[str, str, float]]:
    out = []
    for key, kind, words in _SCORES:
        if evaluation.get(key) is not None:
            who = f" ({teacher})" if key == "teacherAccuracy" and teacher else ""
            out.append((kind, words + who, float(evaluation[key])))
    return out


def front_matter(cfg: TrainConfig, metrics: dict[str, Any]) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    dataset = cfg.data.evalPath or cfg.provenance.datasetPath or cfg.data.annotationsDir
    results = [EvalResult(task_type=_task_type(cfg), dataset_type="custom", dataset_name=dataset,
                          dataset_split="eval", metric_type=kind, metric_value=value, metric_name=name)
               for kind, name, value in _scores(metrics.get("evaluation", {}), cfg.provenance.teacherModel)]
    data = ModelCardData(
        model_name=cfg.job, base_model=_hub_id(cfg.student.baseModel), library_name="transformers",
        pipeline_tag="text2text-generation" if cfg.student.architecture == ARCH_SEQ2SEQ else "text-generation",
        tags=["distillery", "distilling-step-by-step", cfg.training.mode], eval_results=results or None,
    )
    return "---\n" + data.to_yaml() + "\n---\n"


def _split_words(cfg: TrainConfig) -> str:
    if cfg.data.evalPath:
        return f"the eval file `{cfg.data.evalPath}`"
    return ("the records whose id hashes below the eval fraction "
            f"({cfg.data.evalFraction:g}), drawn before any filtering, so the inputs the teacher failed on stay in it")


def _evaluation_section(cfg: TrainConfig, metrics: dict[str, Any]) -> list[str]:
    ev = metrics.get("evaluation", {})
    lines = ["## Evaluation", "",
             f"On {ev.get('examples', 0)} eval examples: {_split_words(cfg)}. The teacher was scored on the same inputs "
             "(an input it gave no usable answer for counts as wrong).", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {name} | {value:.4f} |" for _, name, value in _scores(ev, cfg.provenance.teacherModel)]
    if ev.get("metric") == "agreement":
        lines += ["", "The eval split has no gold labels, so only agreement with the teacher is known; it is not accuracy."]
    s = metrics.get("settings", {})
    lines += ["", f"Served weights: step {metrics.get('bestStep', metrics.get('steps'))} of {metrics.get('steps')}, "
              f"the best on {s.get('validationExamples', 0)} validation records; trained on "
              f"{s.get('trainExamples', 0)} records."]
    if metrics.get("perClass"):
        lines += ["", "| label | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {c['label']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
                  for c in metrics["perClass"]]
    return lines


def _intended_use(cfg: TrainConfig) -> list[str]:
    what = (f"classifies an input into one of {', '.join(cfg.task.labels)}" if cfg.task.type == TASK_CLASSIFICATION
            else "generates the answer to an input")
    return ["## Intended use", "",
            f"This student {what}, the task its teacher was prompted for; it answers with the label alone. The "
            "rationale is generated only on request (`explain: true`), at the cost of a second, longer generation. "
            "It learned from the teacher's answers and inherits its mistakes: compare the student with the "
            "teacher above before replacing the teacher, and do not use it outside this task and input distribution."]


def _provenance(cfg: TrainConfig, metrics: dict[str, Any]) -> list[str]:
    t, p = cfg.training, cfg.provenance
    rows = [("job", f"{cfg.job} (uid {cfg.jobUID})" if cfg.jobUID else cfg.job),
            ("base model", cfg.student.baseModel), ("architecture", cfg.student.architecture),
            ("teacher model", p.teacherModel), ("prompt hash", p.promptHash), ("dataset", p.datasetPath),
            ("training", f"mode {t.mode}, rationale weight {t.rationaleWeight:g}, {metrics.get('steps')} steps, "
                         f"data fraction {cfg.data.fraction:g}, seed {t.seed}")]
    return ["## Provenance", "", "| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows if v]


def model_card(cfg: TrainConfig, metrics: dict[str, Any]) -> str:
    """README.md for the model directory, from train.json and metrics.json."""
    title = [f"# {cfg.job}", "",
             f"A {cfg.student.architecture} student distilled with Distilling Step-by-Step by the Distillery job "
             f"`{cfg.job}` from the teacher `{cfg.provenance.teacherModel or 'unknown'}`.", ""]
    body = title + _evaluation_section(cfg, metrics) + [""] + _intended_use(cfg) + [""] + _provenance(cfg, metrics)
    return front_matter(cfg, metrics) + "\n" + "\n".join(body) + "\n"
