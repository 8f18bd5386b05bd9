"""From annotation records to training examples, the eval split and length-bucketed batches."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Sequence

from .contract import (
    MODE_SINGLE_TASK,
    MODE_STANDARD,
    MODE_STEP_BY_STEP,
    SINGLE_TASK_MARKER,
    STATUS_OK,
    TASK_CLASSIFICATION,
    InvalidInput,
    Record,
    TrainConfig,
    normalize_label,
    read_records,
)

TASK_LABEL = 0
TASK_RATIONALE = 1


@dataclass(frozen=True)
class Example:
    """One (source, target) pair of one task; a record gives one or two of them."""

    source: str
    target: str
    task: int


@dataclass(frozen=True)
class EvalExample:
    id: str
    input: str
    label: str


@dataclass
class Splits:
    train: list[Record]
    eval: list[EvalExample]


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


def holdout_fraction(record_id: str) -> float:
    """int(sha256(id)[:8], 16) / 2**32: the record's place in [0, 1) for the hash-based eval split."""
    return int(hashlib.sha256(record_id.encode()).hexdigest()[:8], 16) / 2**32


def _check_label(label: str, cfg: TrainConfig, where: str) -> None:
    if cfg.task.type != TASK_CLASSIFICATION:
        return
    if canonical_label(label, cfg.task.labels) is None:
        raise InvalidInput(f"{where}: label {label!r} is not one of the task's labels {cfg.task.labels}")


def read_eval_file(cfg: TrainConfig) -> list[EvalExample]:
    d = cfg.data
    out: list[EvalExample] = []
    try:
        f = open(d.evalPath, encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"eval file {d.evalPath} (data.evalPath) does not exist") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"eval file {d.evalPath}:{lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInput(f"{where} is not valid JSON: {e}") from None
            for fld in (d.inputField, d.labelField):
                if not isinstance(raw, dict) or fld not in raw:
                    raise InvalidInput(f"{where} has no field {fld!r}")
            label = str(raw[d.labelField])
            _check_label(label, cfg, where)
            out.append(EvalExample(str(raw.get(d.idField, lineno)), str(raw[d.inputField]), label))
    if not out:
        raise InvalidInput(f"eval file {d.evalPath} (data.evalPath) has no examples")
    return out


def load_splits(cfg: TrainConfig) -> Splits:
    """The ok records to train on and the eval examples (docs/workloads.md, train.json data.evalPath)."""
    ok: list[Record] = []
    for r in read_records(cfg.data.annotationsDir):
        if r.status != STATUS_OK:
            continue
        where = f"annotation record {r.id} ({r.source})"
        if not r.label:
            raise InvalidInput(f"{where}: no gold or teacher label")
        if cfg.training.mode != MODE_STANDARD and not r.rationale.strip():
            raise InvalidInput(f"{where}: no rationale")
        _check_label(r.label, cfg, where)
        ok.append(r)
    if not ok:
        raise InvalidInput(f"annotations folder {cfg.data.annotationsDir} has no ok record")
    if cfg.data.evalPath:
        train, ev = ok, read_eval_file(cfg)
    else:
        train, ev = [], []
        for r in ok:
            if holdout_fraction(r.id) < cfg.data.evalFraction:
                ev.append(EvalExample(r.id, r.input, r.goldLabel or r.teacherLabel))
            else:
                train.append(r)
    if not train:
        raise InvalidInput(
            f"annotations folder {cfg.data.annotationsDir}: no ok record is left for training after the eval split"
        )
    return Splits(train=train, eval=ev)


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, min_batch: int = 1,
                  window: int = 50) -> list[list[int]]:
    """Record indices of one epoch, in length-bucketed batches: a seeded shuffle, sorted by length within windows
    of `window` batches, batches in shuffled order. Deterministic in (seed, epoch), so a resumed run sees the
    same batches. A window's tail batch smaller than min_batch (the world size) joins the one before it."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * window
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        part = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        if len(part) > 1 and len(part[-1]) < min_batch:
            tail = part.pop()
            part[-1].extend(tail)
        batches.extend(part)
    rng.shuffle(batches)
    return batches
