"""Controlled tasks for the step-by-step vs standard sweep (sbs_sweep.py), and their annotation files.

A program stands in for a perfect teacher: it knows the label and writes the intermediate steps as the
rationale. Rationales never name the label, so their length does not track it (issue 10: length-bucketed
batches would otherwise turn single-label).

- sum-parity: "7 3 9 4 1" -> rationale "7+3+9+4+1=24", label "even" (parity of the digit sum: the XOR of
  the digits' parities, which labels alone teach poorly).
- sum-compare: "7 3 9 | 4 1 8" -> rationale "7+3+9=19, 4+1+8=13, 19>13", label "left" (which group has the
  larger digit sum; ties are never drawn): a two-hop comparison.

Data fractions follow docs/workloads.md (issue 10): the eval split is a separate file with gold labels
(data.evalPath); validation is the ok records with int(sha256("validation:" + id)[:8], 16) / 2**32 < 0.1;
a fraction f keeps the rest whose int(sha256(f"{subsetSeed}:{id}")[:8], 16) / 2**32 < f, so with one seed the
12.5% subset is inside the 25% one, and so on.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

TRAIN_SHARD = "shard-00000-of-00001.jsonl"
EVAL_SHARD = "eval-shard-00000-of-00001.jsonl"  # contract.EvalShardFileName(0, 1) (CONTRACT-10)


@dataclass(frozen=True)
class Sample:
    id: str
    input: str
    rationale: str
    label: str


def _digits(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(10) for _ in range(n)]


def sum_parity(rng: random.Random, digits: int) -> tuple[str, str, str]:
    ds = _digits(rng, digits)
    s = sum(ds)
    return " ".join(map(str, ds)), "+".join(map(str, ds)) + f"={s}", "even" if s % 2 == 0 else "odd"


def sum_compare(rng: random.Random, digits: int) -> tuple[str, str, str]:
    while True:
        a, b = _digits(rng, digits), _digits(rng, digits)
        sa, sb = sum(a), sum(b)
        if sa != sb:
            break
    sign = ">" if sa > sb else "<"
    rationale = "+".join(map(str, a)) + f"={sa}, " + "+".join(map(str, b)) + f"={sb}, {sa}{sign}{sb}"
    return " ".join(map(str, a)) + " | " + " ".join(map(str, b)), rationale, "left" if sa > sb else "right"


TASKS: dict[str, tuple[Callable[[random.Random, int], tuple[str, str, str]], list[str]]] = {
    "sum-parity": (sum_parity, ["even", "odd"]),
    "sum-compare": (sum_compare, ["left", "right"]),
}


def make_samples(task: str, n_train: int, n_eval: int, digits: int, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, eval): distinct inputs, none shared between the two (the eval inputs are never trained on)."""
    gen = TASKS[task][0]
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Sample] = []
    tries = 0
    while len(out) < n_train + n_eval:
        tries += 1
        if tries > 50 * (n_train + n_eval):
            raise ValueError(f"{task} with {digits} digits has too few distinct inputs for {n_train + n_eval}")
        x, r, y = gen(rng, digits)
        if x in seen:
            continue
        seen.add(x)
        out.append(Sample(f"{task}-{len(out)}", x, r, y))
    return out[:n_train], out[n_train:]


def annotation_record(s: Sample) -> dict:
    """docs/workloads.md "Annotation records": the program is the teacher, so its label equals the gold one."""
    return {"id": s.id, "input": s.input, "goldLabel": s.label, "teacherLabel": s.label, "rationale": s.rationale,
            "status": "ok", "usage": {"promptTokens": 0, "completionTokens": 0}}


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_eval_file(path: Path, samples: Sequence[Sample]) -> None:
    """The held-out eval file (spec.dataset.eval): id, input, gold label."""
    write_jsonl(path, ({"id": s.id, "input": s.input, "label": s.label} for s in samples))


def _unit(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def is_validation(record_id: str, validation_fraction: float) -> bool:
    return _unit("validation:" + record_id) < validation_fraction


def in_subset(record_id: str, fraction: float, subset_seed: int) -> bool:
    return _unit(f"{subset_seed}:{record_id}") < fraction


def subset(samples: Sequence[Sample], fraction: float, subset_seed: int, validation_fraction: float) -> list[Sample]:
    """The training records a trainer with data.fraction keeps: not validation, then inside the seeded fraction."""
    return [s for s in samples
            if not is_validation(s.id, validation_fraction) and in_subset(s.id, fraction, subset_seed)]


def majority_rate(samples: Sequence[Sample]) -> float:
    """The accuracy of always answering the most common label: the floor a model must beat."""
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.label] = counts.get(s.label, 0) + 1
    return max(counts.values()) / len(samples) if samples else 0.0
