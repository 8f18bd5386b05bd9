"""The splits of a training run (docs/workloads.md, "The eval split"): eval, validation and the trained fraction.

Each is decided by a hash of the record id alone, so none depends on the teacher's answers, the annotator's
filters or the order of the shard files:
- eval: every annotation record, whatever its status, whose holdout_fraction(id) < data.evalFraction, or the
  examples of data.evalPath (the teacher's answers for them are read from annotations/eval-shard-*);
- validation: the ok records outside eval whose validation_key(id) < data.validationFraction;
- train: the remaining ok records whose subset_key(data.subsetSeed, id) < data.fraction, so with one seed a
  25% subset lies inside the 50% one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .contract import (
    MODE_STANDARD,
    STATUS_OK,
    TASK_CLASSIFICATION,
    InvalidInput,
    Record,
    TrainConfig,
    has_eval_records,
    read_eval_records,
    read_records,
)
from .data import canonical_label

log = logging.getLogger("distillery_student")


def unit_hash(key: str) -> float:
    """int(sha256(key)[:8], 16) / 2**32: a stable place in [0, 1)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def holdout_fraction(record_id: str) -> float:
    """The record's place for the eval split."""
    return unit_hash(record_id)


def validation_key(record_id: str) -> float:
    """The record's place for the validation slice (independent of the eval split's)."""
    return unit_hash("validation:" + record_id)


def subset_key(seed: int, record_id: str) -> float:
    """The record's place for data.fraction under data.subsetSeed."""
    return unit_hash(f"{seed}:{record_id}")


@dataclass(frozen=True)
class EvalExample:
    """One input of the eval split, with the gold label ("" when there is none) and the teacher's answer."""

    id: str
    input: str
    gold: str
    teacher: str = ""  # the teacher's label; "" when it gave none
    teacherOk: bool = False  # the teacher's record has status ok


@dataclass
class Splits:
    train: list[Record]
    validation: list[Record]
    eval: list[EvalExample]
    teacher_known: bool  # the teacher's answers for the eval inputs were read (else no teacher metrics)


def load_splits(cfg: TrainConfig) -> Splits:
    """The eval split, the validation slice and the training records (module doc)."""
    d = cfg.data
    records = list(read_records(d.annotationsDir))
    if not any(r.status == STATUS_OK for r in records):
        raise InvalidInput(f"annotations folder {d.annotationsDir} has no ok record")
    if d.evalPath:
        ev, rest, known = _eval_from_file(cfg), records, has_eval_records(d.annotationsDir)
        if not known:
            log.warning("no annotations/eval-shard-* files: the teacher's accuracy on the eval file is not known")
    else:
        held, rest = _partition(records, lambda r: holdout_fraction(r.id) < d.evalFraction)
        ev, known = [_eval_example(r, cfg) for r in held], True
    ok = [_checked(r, cfg) for r in rest if r.status == STATUS_OK]
    validation, train = _partition(ok, lambda r: validation_key(r.id) < d.validationFraction)
    train = [r for r in train if subset_key(d.subsetSeed, r.id) < d.fraction]
    if not train:
        raise InvalidInput(f"annotations folder {d.annotationsDir}: no ok record is left for training after the "
                           f"eval split, the validation slice and data.fraction {d.fraction}")
    return Splits(train=train, validation=validation, eval=ev, teacher_known=known)


def _partition(records: Sequence[Record], held: Callable[[Record], bool]) -> tuple[list[Record], list[Record]]:
    inside, outside = [], []
    for r in records:
        (inside if held(r) else outside).append(r)
    return inside, outside


def _check_label(label: str, cfg: TrainConfig, where: str) -> None:
    if cfg.task.type != TASK_CLASSIFICATION:
        return
    if canonical_label(label, cfg.task.labels) is None:
        raise InvalidInput(f"{where}: label {label!r} is not one of the task's labels {cfg.task.labels}")


def _checked(r: Record, cfg: TrainConfig) -> Record:
    """An ok record that can be trained on, else InvalidInput naming it."""
    where = f"annotation record {r.id} ({r.source})"
    if not r.label:
        raise InvalidInput(f"{where}: no gold or teacher label")
    if cfg.training.mode != MODE_STANDARD and not r.rationale.strip():
        raise InvalidInput(f"{where}: no rationale")
    _check_label(r.label, cfg, where)
    return r


def _eval_example(r: Record, cfg: TrainConfig) -> EvalExample:
    if r.goldLabel:
        _check_label(r.goldLabel, cfg, f"annotation record {r.id} ({r.source})")
    return EvalExample(r.id, r.input, r.goldLabel, r.teacherLabel, r.status == STATUS_OK)


def _field_text(value: Any) -> str:
    """A field as the annotator reads it: strings as they are, other JSON values as their JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


def _eval_from_file(cfg: TrainConfig) -> list[EvalExample]:
    """data.evalPath's examples with the teacher's answers (by id) from annotations/eval-shard-*."""
    teacher = {r.id: r for r in read_eval_records(cfg.data.annotationsDir)}
    out = []
    for ex in read_eval_file(cfg):
        t = teacher.get(ex.id)
        out.append(ex if t is None else EvalExample(ex.id, ex.input, ex.gold, t.teacherLabel, t.status == STATUS_OK))
    return out


def read_eval_file(cfg: TrainConfig) -> list[EvalExample]:
    """The examples of data.evalPath (idField, inputField, labelField). A line without an id has its 1-based
    line number as id, as the annotator gives it."""
    d = cfg.data
    out: list[EvalExample] = []
    try:
        f = open(d.evalPath, encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"eval file {d.evalPath} (data.evalPath) does not exist") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                out.append(_eval_line(cfg, line, f"eval file {d.evalPath}:{lineno}", lineno))
    if not out:
        raise InvalidInput(f"eval file {d.evalPath} (data.evalPath) has no examples")
    return out


def _eval_line(cfg: TrainConfig, line: str, where: str, lineno: int) -> EvalExample:
    d = cfg.data
    try:  # numbers keep the text they were written with, as the annotator reads them (1e3 stays "1e3")
        raw = json.loads(line, parse_int=str, parse_float=str)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{where} is not valid JSON: {e}") from None
    for fld in (d.inputField, d.labelField):
        if not isinstance(raw, dict) or fld not in raw:
            raise InvalidInput(f"{where} has no field {fld!r}")
    label = _field_text(raw[d.labelField])
    _check_label(label, cfg, where)
    rid = raw.get(d.idField)  # the annotator's rule: no id, an empty one, null, an object or a list: the line number
    rid = str(lineno) if rid is None or rid == "" or isinstance(rid, (dict, list)) else _field_text(rid)
    return EvalExample(rid, _field_text(raw[d.inputField]), label)
