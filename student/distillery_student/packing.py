"""Sequence packing for T5 students: several examples share one padded row, each attending only to itself.

Why: with length-bucketed batches about 40% of a T5 step's matrix work is padding (bench/train_step.py's
records, one batch per task, lengths padded to 16: 61% of the FLOPs useful on t5-large at 32 records, 58% at
64). Inputs and rationales vary independently, so sorting records by one length leaves the other ragged, and
a 3-token label target is padded to 16.

How: the rows of a micro-batch (both tasks) go first-fit-decreasing into bins with a source capacity and a
target capacity. Each packed row carries segment ids: 1, 2, ... for its examples, 0 for padding, for the
source (`segments`) and the target (`target_segments`). The attention masks (`masks`) let a token see only
its own segment: the encoder within the segment, the decoder within the segment and not later, the
cross-attention the source of the segment. T5's relative position bias depends only on the distance j - i,
so an example sees the same bias packed as alone; the decoder's input is shifted per segment
(`decoder_inputs`). The per-token losses equal those of the unpacked batch (tests/test_packing.py).
Padding positions (segment 0) attend to each other, so no softmax row is empty.

The cost: attention runs over whole packed rows (quadratic in the row, masked), so rows stay short
(PACK_LENGTH) unless an example is longer.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F

PACK_LENGTH = 512  # source tokens per packed row (longer when an example is); attention is quadratic in it
FILL = 0.8  # the share of a packed row the memory estimate counts on being filled (first-fit fills ~90%)


class Packable(Protocol):
    source: list[int]
    target: list[int]
    task: int


def capacities(rows: Sequence[Packable], length: int, round_up: Callable[[int], int]) -> tuple[int, int]:
    """(source, target) tokens per packed row: `length` sources (or the longest), and targets in the batch's
    ratio of target to source tokens, so both fill together (or the longest target)."""
    src = sum(len(r.source) for r in rows)
    tgt = sum(len(r.target) for r in rows)
    s = max(length, round_up(max(len(r.source) for r in rows)))
    t = max(round_up(max(len(r.target) for r in rows)), round_up(math.ceil(s * tgt / max(1, src))))
    return s, t


def pack(rows: Sequence[Packable], source_cap: int, target_cap: int) -> list[list[Packable]]:
    """Bins of rows, each within source_cap source and target_cap target tokens: as many bins as the totals
    need, and each row (the largest first, by its larger share of the two capacities) goes where the fuller
    of the bin's two fills stays lowest; a new bin when none has room. Balanced fills keep the longest packed
    row, which sets the tensors' width, close to the mean. Deterministic: ties go to the first bin."""
    src = sum(len(r.source) for r in rows)
    tgt = sum(len(r.target) for r in rows)
    n = max(1, math.ceil(src / source_cap), math.ceil(tgt / target_cap))
    bins: list[list[Packable]] = [[] for _ in range(n)]
    fill = [(0, 0)] * n
    for r in sorted(rows, key=lambda r: -max(len(r.source) / source_cap, len(r.target) / target_cap)):
        s, t = len(r.source), len(r.target)
        loads = [(max((fs + s) / source_cap, (ft + t) / target_cap), b) for b, (fs, ft) in enumerate(fill)
                 if fs + s <= source_cap and ft + t <= target_cap]
        if loads:
            b = min(loads)[1]
        else:
            b = len(bins)
            bins.append([])
            fill.append((0, 0))
        bins[b].append(r)
        fill[b] = (fill[b][0] + s, fill[b][1] + t)
    return [b for b in bins if b]


def collate(rows: Sequence[Packable], length: int, round_up: Callable[[int], int], pad: int,
            ignore: int) -> dict[str, torch.Tensor]:
    """The packed tensors of rows: input_ids and segments [bins, S]; labels (ignore outside targets),
    target_segments and label_task (whether a target position belongs to a label-task row) [bins, T]."""
    bins = pack(rows, *capacities(rows, length, round_up))
    s = round_up(max(sum(len(r.source) for r in b) for b in bins))
    t = round_up(max(sum(len(r.target) for r in b) for b in bins))
    ids, seg = torch.full((len(bins), s), pad, dtype=torch.long), torch.zeros((len(bins), s), dtype=torch.long)
    labels = torch.full((len(bins), t), ignore, dtype=torch.long)
    tseg = torch.zeros((len(bins), t), dtype=torch.long)
    label_task = torch.zeros((len(bins), t), dtype=torch.bool)
    for i, b in enumerate(bins):
        at_s = at_t = 0
        for k, r in enumerate(b, start=1):
            ids[i, at_s : at_s + len(r.source)] = torch.tensor(r.source)
            seg[i, at_s : at_s + len(r.source)] = k
            labels[i, at_t : at_t + len(r.target)] = torch.tensor(r.target)
            tseg[i, at_t : at_t + len(r.target)] = k
            label_task[i, at_t : at_t + len(r.target)] = r.task == 0
            at_s, at_t = at_s + len(r.source), at_t + len(r.target)
    return {"input_ids": ids, "segments": seg, "labels": labels, "target_segments": tseg, "label_task": label_task}


def estimate(rows: Sequence[Packable], length: int, round_up: Callable[[int], int]) -> tuple[int, int, int, int]:
    """(source tokens, target tokens, source row length, target row length) of the tensors that packing rows
    will make, without packing them (the memory estimate runs once per row added to a micro-batch): bins
    filled to FILL, plus one."""
    s, t = capacities(rows, length, round_up)
    src = sum(len(r.source) for r in rows)
    tgt = sum(len(r.target) for r in rows)
    bins = math.ceil(max(src / s, tgt / t) / FILL) + 1
    return bins * s, bins * t, s, t


def masks(segments: torch.Tensor, target_segments: torch.Tensor,
          dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The additive masks T5's attention adds to its scores: encoder [bins, 1, S, S], decoder self-attention
    [bins, 1, T, T] (same segment, not later) and cross-attention [bins, 1, T, S]. Made on the device from the
    segment ids (no host copy: a CUDA graph can capture it)."""
    low = torch.finfo(dtype).min
    src, tgt = segments[:, None, :], target_segments[:, None, :]
    enc = src[..., :, None] != src[..., None, :]
    n = target_segments.shape[1]
    later = torch.ones(n, n, dtype=torch.bool, device=segments.device).triu(1)
    dec = (tgt[..., :, None] != tgt[..., None, :]) | later
    cross = tgt[..., :, None] != src[..., None, :]
    return enc.to(dtype) * low, dec.to(dtype) * low, cross.to(dtype) * low


def decoder_inputs(labels: torch.Tensor, target_segments: torch.Tensor, start: int, pad: int,
                   ignore: int) -> torch.Tensor:
    """The decoder's input ids: each segment's target shifted right by one, starting from `start`."""
    shifted = F.pad(labels[:, :-1], (1, 0), value=start)
    first = target_segments != F.pad(target_segments[:, :-1], (1, 0), value=0)
    return shifted.masked_fill(first, start).masked_fill(shifted == ignore, pad)


def wanted(flag: str, architecture: str, device: str) -> tuple[int, str]:
    """The packed row length for a job (0: batches are padded, not packed), and why (for the log). `off` and
    `on` are the trainer's --packing; `auto` packs T5 students on a GPU, where it was measured
    (docs/benchmarks.md). Decoder-only students are not packed (not built)."""
    if architecture != "seq2seq":
        return 0, "off (only T5 students are packed)"
    if flag == "off":
        return 0, "turned off"
    if flag == "on":
        return PACK_LENGTH, "turned on"
    if device != "cuda":
        return 0, "off (auto: packs on a GPU; --packing on packs here too)"
    return PACK_LENGTH, "on (auto: a T5 student on a GPU)"
