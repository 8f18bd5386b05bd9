"""Scores on the eval split (docs/workloads.md): the student against gold labels and against the teacher, and
the teacher against gold labels, on the same inputs.

- With gold labels (every eval example has one), classification: studentAccuracy, teacherAccuracy (a record
  whose status is not ok, or that has no teacher answer, counts as wrong for the teacher), agreement (over
  the examples with a teacher label), per-class precision/recall/F1 and the confusion matrix (rows gold,
  columns predicted; labels in task order, then "other" for predictions outside the labels).
- Generation: exactMatch and tokenF1 (SQuAD-style F1 of the bags of whitespace tokens) instead of accuracy.
- Without gold labels: agreement only, under that name; it is never called accuracy.
Labels are compared after normalize_label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from .contract import (
    METRIC_ACCURACY,
    METRIC_AGREEMENT,
    METRIC_EXACT_MATCH,
    TASK_CLASSIFICATION,
    Evaluation,
    normalize_label,
)
from .data import canonical_label
from .split import EvalExample

OTHER = "other"


@dataclass
class EvalReport:
    """The termination's Evaluation and the detail that goes only into metrics.json and the report."""

    summary: Evaluation
    perClass: list[dict[str, Any]] | None = None
    confusion: dict[str, Any] | None = None


def same(a: str, b: str) -> bool:
    return normalize_label(a) == normalize_label(b)


def mean(flags: Sequence[bool | float]) -> float | None:
    """The mean, or None for no values (an absent score, never 0)."""
    return sum(flags) / len(flags) if flags else None


def teacher_accuracy(examples: Sequence[EvalExample]) -> float | None:
    return mean([ex.teacherOk and same(ex.teacher, ex.gold) for ex in examples])


def agreement(examples: Sequence[EvalExample], predictions: Sequence[str]) -> float | None:
    """Student == teacher, over the examples the teacher gave a label for."""
    return mean([same(p, ex.teacher) for ex, p in zip(examples, predictions) if ex.teacher])


def token_f1(prediction: str, gold: str) -> float:
    """F1 of the bags of whitespace tokens of the normalised strings (1.0 when both are empty)."""
    p, g = normalize_label(prediction).split(), normalize_label(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def confusion_matrix(golds: Sequence[str], predictions: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """{"labels": task labels + ["other"], "matrix": rows gold, columns predicted}."""
    names = list(labels) + [OTHER]
    where = {name: i for i, name in enumerate(names)}
    matrix = [[0] * len(names) for _ in names]
    for g, p in zip(golds, predictions):
        row = where[canonical_label(g, labels) or OTHER]
        matrix[row][where[canonical_label(p, labels) or OTHER]] += 1
    return {"labels": names, "matrix": matrix}


def per_class(confusion: dict[str, Any]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of each task label (0 where a denominator is 0)."""
    names, m = confusion["labels"], confusion["matrix"]
    out = []
    for i, name in enumerate(names[:-1]):  # "other" is never a gold label
        tp, predicted, support = m[i][i], sum(row[i] for row in m), sum(m[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append({"label": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return out


def evaluate(examples: Sequence[EvalExample], predictions: Sequence[str], task_type: str, labels: Sequence[str],
             teacher_known: bool) -> EvalReport:
    """The scores of the student's predictions (one per example, in order) on the eval split."""
    classification = task_type == TASK_CLASSIFICATION
    n = len(examples)
    agree = agreement(examples, predictions) if teacher_known else None
    if not n or not all(ex.gold for ex in examples):
        metric = METRIC_AGREEMENT if n else (METRIC_ACCURACY if classification else METRIC_EXACT_MATCH)
        return EvalReport(Evaluation(metric, n, agreement=agree))
    teacher = teacher_accuracy(examples) if teacher_known else None
    hits = mean([same(p, ex.gold) for ex, p in zip(examples, predictions)])
    if not classification:
        f1 = mean([token_f1(p, ex.gold) for ex, p in zip(examples, predictions)])
        return EvalReport(Evaluation(METRIC_EXACT_MATCH, n, teacherAccuracy=teacher, agreement=agree,
                                     exactMatch=hits, tokenF1=f1))
    confusion = confusion_matrix([ex.gold for ex in examples], predictions, labels)
    return EvalReport(Evaluation(METRIC_ACCURACY, n, studentAccuracy=hits, teacherAccuracy=teacher, agreement=agree),
                      per_class(confusion), confusion)
