"""From annotation records to the training examples of the mode (the splits are split.py's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .contract import (
    MODE_SINGLE_TASK,
    MODE_STANDARD,
    MODE_STEP_BY_STEP,
    SINGLE_TASK_MARKER,
    TASK_CLASSIFICATION,
    InvalidInput,
    Record,
    TrainConfig,
    normalize_label,
)

TASK_LABEL = 0
TASK_RATIONALE = 1


@dataclass(frozen=True)
class Example:
    """One (source, target) pair of one task; a record gives one or two of them."""

    source: str
    target: str
    task: int


def single_task_target(rationale: str, label: str) -> str:
    return f"{rationale.strip()} {SINGLE_TASK_MARKER} {label}."


def split_single_task_output(text: str) -> tuple[str, str]:
    """(rationale, label) of a single-task output "<rationale> So the answer is <label>."."""
    i = text.lower().rfind(SINGLE_TASK_MARKER.lower())
    if i < 0:
        return text.strip(), text.strip()
    return text[:i].strip(), text[i + len(SINGLE_TASK_MARKER) :].strip()


def canonical_label(label: str, labels: Sequence[str]) -> str | None:
    """The task label that label normalises to, or None."""
    n = normalize_label(label)
    for lab in labels:
        if normalize_label(lab) == n:
            return lab
    return None


def build_examples(records: Sequence[Record], cfg: TrainConfig) -> list[list[Example]]:
    """The examples of each record for the config's mode: [label, rationale], [label] or [single target]."""
    task, mode = cfg.task, cfg.training.mode
    out: list[list[Example]] = []
    for r in records:
        label = r.label
        if task.type == TASK_CLASSIFICATION:
            label = canonical_label(label, task.labels) or label
        if mode == MODE_STEP_BY_STEP:
            out.append(
                [
                    Example(task.labelPrefix + r.input, label, TASK_LABEL),
                    Example(task.rationalePrefix + r.input, r.rationale, TASK_RATIONALE),
                ]
            )
        elif mode == MODE_STANDARD:
            out.append([Example(task.labelPrefix + r.input, label, TASK_LABEL)])
        elif mode == MODE_SINGLE_TASK:
            out.append([Example(task.labelPrefix + r.input, single_task_target(r.rationale, label), TASK_LABEL)])
        else:  # validated in contract
            raise InvalidInput(f"train.json: training.mode {mode!r} is unknown")
    return out
