"""The order of training records: length-bucketed batches that stay label-mixed.

Bucketing by length saves padding, but any length that tracks the label sorts records into single-label
batches: a rationale that ends by naming its label ("...so the sum is odd" is a byte shorter than "...even")
did, and the label loss then swung from batch to batch. So within each window the records are ordered by
their length *quantile within their own label*: consecutive records (a batch) hold every label in its
window's proportion, each at a similar place in its own length distribution. Without labels (generation
tasks) it is plain length bucketing. bench/batch_mix.py measures what this costs in padding.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Hashable, Sequence


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, min_batch: int = 1,
                  window: int = 50, labels: Sequence[Hashable] | None = None) -> list[list[int]]:
    """Record indices of one epoch in batches: a seeded shuffle, windows of `window` batches each ordered by
    label_mixed_order, cut into batches, batches in shuffled order. Deterministic in (seed, epoch), so a resumed
    run sees the same batches. A window's tail batch smaller than min_batch (the world size) joins the one
    before it (the previous window's last batch when the window has no other; windows of one batch, as
    packing draws them, would otherwise end with a batch that leaves some ranks without records)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * window
    for start in range(0, len(order), span):
        chunk = label_mixed_order(order[start : start + span], lengths, labels)
        part = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        if len(part[-1]) < min_batch and (len(part) > 1 or batches):
            tail = part.pop()  # joins the batch before it, in this window or the last one
            (part[-1] if part else batches[-1]).extend(tail)
        batches.extend(part)
    rng.shuffle(batches)
    return batches


def label_mixed_order(indices: Sequence[int], lengths: Sequence[int],
                      labels: Sequence[Hashable] | None) -> list[int]:
    """indices ordered by (quantile of the length within the record's label, label order): each label's
    records in length order, the labels interleaved in proportion. Ties keep the incoming (shuffled) order."""
    if labels is None:
        return sorted(indices, key=lambda i: lengths[i])
    by_label: dict[Hashable, list[int]] = defaultdict(list)
    for i in indices:
        by_label[labels[i]].append(i)
    keyed: list[tuple[float, int]] = []
    for members in by_label.values():
        members.sort(key=lambda i: lengths[i])
        keyed += [((k + 0.5) / len(members), i) for k, i in enumerate(members)]
    keyed.sort(key=lambda t: t[0])
    return [i for _, i in keyed]
