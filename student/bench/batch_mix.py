"""What label-mixed batches cost in padding (issue #10, "A trainer defect that can hide the effect").

CPU only, no model: the trainer's own batch order (buckets.epoch_batches) and its own collation
(modeling.Encoder.collate_tasks, seq2seq, lengths padded to a multiple of 16 as on a GPU) over synthetic
records whose rationale length tracks the label. For each batch order it counts, over one epoch:

    padding overhead = (padded tokens - real tokens) / real tokens (encoder + decoder), with both tasks' rows
                       in one batch (the trainer's GPU default: label targets padded to the rationales'
                       length) and with one batch per task (concat_tasks False, train_step.py's ours-sep)
    single-label share = share of batches with >= 90% of one label

Orders: random (a seeded shuffle, no bucketing), input (bucketed on input length only, the other fix the issue
names, like HF Trainer's group_by_length), length (bucketed on input + rationale length: the defect) and
label-mixed (the fix: bucketed on input + rationale length, each batch drawn across labels). Tasks:

    nli     3 labels, log-normal lengths like NLI/CQA (bench/common.make_records: inputs median ~90 tokens,
            rationales ~45), each rationale ending by naming its label (1-3 extra tokens by label)
    parity  the digit-sum parity task (byte tokens): "d1 + ... + dn = s, so the sum is odd|even"

    python3 bench/batch_mix.py --records 20000 --batch 64 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

from common import Tok, make_records

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillery_student.buckets import epoch_batches  # noqa: E402
from distillery_student.data import TASK_LABEL, TASK_RATIONALE  # noqa: E402
from distillery_student.modeling import Encoder, Row  # noqa: E402

LABEL_TOKENS = {"entailment": 3, "neutral": 1, "contradiction": 2}  # the label named at the rationale's end


def nli(n: int, seed: int) -> tuple[list[list[Row]], list[str]]:
    rng = random.Random(seed + 100)
    records, labels = make_records(n, seed, vocab=32000), []
    for rows in records:
        label = rng.choice(list(LABEL_TOKENS))
        rows[1].target[-1:-1] = [7] * LABEL_TOKENS[label]  # "... so the answer is <label>" before EOS
        labels.append(label)
    return records, labels


def parity(n: int, seed: int) -> tuple[list[list[Row]], list[str]]:
    rng = random.Random(seed)
    records, labels = [], []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(4, 12))]
        label = "odd" if sum(digits) % 2 else "even"
        src = [2] * (len(" ".join(map(str, digits))) + 1)
        rationale = " + ".join(map(str, digits)) + f" = {sum(digits)}, so the sum is {label}"
        records.append([Row(src, [2] * 4 + [1], TASK_LABEL), Row(src, [2] * len(rationale) + [1], TASK_RATIONALE)])
        labels.append(label)
    return records, labels


def order(name: str, records: list[list[Row]], labels: list[str], batch: int, seed: int) -> list[list[int]]:
    source = [len(rs[0].source) for rs in records]
    both = [len(rs[0].source) + len(rs[1].source) + len(rs[1].target) for rs in records]  # as train.py counts
    if name == "random":
        return epoch_batches([0] * len(records), batch, seed, 0)
    if name == "input":
        return epoch_batches(source, batch, seed, 0)
    if name == "length":
        return epoch_batches(both, batch, seed, 0)
    return epoch_batches(both, batch, seed, 0, labels=labels)


def measure(records: list[list[Row]], labels: list[str], batches: list[list[int]]) -> tuple[float, float, float]:
    """(padding overhead with both tasks in one batch, the same with one batch per task, single-label share)."""
    enc = Encoder(Tok(), "seq2seq", 10**6, 10**6, pad_multiple=16)
    concat = per_task = real = single = 0
    for b in batches:
        rows = [r for i in b for r in records[i]]
        concat += sum(t["input_ids"].numel() + t["labels"].numel() for t in enc.collate_tasks(rows, concat=True))
        per_task += sum(t["input_ids"].numel() + t["labels"].numel() for t in enc.collate_tasks(rows, concat=False))
        real += sum(len(r.source) + len(r.target) for r in rows)
        single += max(sum(labels[i] == lab for i in b) for lab in set(labels[i] for i in b)) >= 0.9 * len(b)
    return (concat - real) / real, (per_task - real) / real, single / len(batches)


def _cell(xs: list[float]) -> str:
    return f"{100 * statistics.median(xs):.1f}% [{100 * min(xs):.1f}-{100 * max(xs):.1f}]"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = p.parse_args()
    print(f"records {a.records}, batch {a.batch}, seeds {a.seeds}; median [min-max] over seeds")
    print("| task | order | padding, tasks in one batch (GPU default) | padding, one batch per task | "
          "single-label batches (>=90% one label) |")
    print("| --- | --- | --- | --- | --- |")
    for task in (nli, parity):
        data = {s: task(a.records, s) for s in a.seeds}
        for name in ("random", "input", "length", "label-mixed"):
            runs = [measure(*data[s], order(name, *data[s], a.batch, s)) for s in a.seeds]
            print(f"| {task.__name__} | {name} | " + " | ".join(_cell([r[i] for r in runs]) for i in range(3)) + " |")

if __name__ == "__main__":
    main()
