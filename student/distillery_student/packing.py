"""Sequence packing: several examples share one padded row, each attending only to itself.

Why: with length-bucketed batches about 40% of a T5 step's matrix work is padding (bench/train_step.py's
records, one batch per task, lengths padded to 16: 61% of the FLOPs useful on t5-large at 32 records, 58% at
64). Inputs and rationales vary independently, so sorting records by one length leaves the other ragged, and
a 3-token label target is padded to 16. Packed, 87-88% are useful.

How (T5): the rows of a micro-batch (both tasks) go into bins with a source capacity and a target capacity
(`pack`: as many bins as the totals need, each row where the bin stays least full). Each packed row carries
segment ids: 1, 2, ... for its examples, 0 for padding, for the source (`segments`) and the target
(`target_segments`). The attention masks (`masks`) let a token see only its own segment: the encoder within
the segment, the decoder within the segment and not later, the cross-attention the source of the segment.
T5's relative position bias depends only on the distance j - i, so an example sees the same bias packed as
alone (models with absolute positions are not packed: `unpackable`); the decoder's input is shifted per segment
(`decoder_inputs`). Padding positions attend to padding (target padding, when a source row has none, to
every source position through a uniform softmax of equal masked scores: finite, never picked).

Decoder-only: one sequence (source, then target) per example, positions from 0 in each segment, a causal
mask per segment (`collate_causal`, `causal_mask`). Either way the per-token losses and the gradients equal
those of the padded batch (tests/test_packing.py).

The cost: attention runs over whole packed rows (quadratic in the row, masked), so rows stay short
(PACK_LENGTH) unless an example is longer.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol, Sequence

import torch
import torch.nn.functional as F

from .data import TASK_LABEL

PACK_LENGTH = 512  # source tokens per packed row (longer when an example is); attention is quadratic in it


class Packable(Protocol):
    source: list[int]
    target: list[int]
    task: int


Size = tuple[int, int]  # what a row takes of a packed row's two capacities


def sizes(rows: Sequence[Packable], causal: bool) -> list[Size]:
    """T5: (source, target) tokens of each row. Decoder-only: (source + target, 0), one sequence per row."""
    return [(len(r.source) + len(r.target), 0) if causal else (len(r.source), len(r.target)) for r in rows]


def capacities(items: Sequence[Size], length: int, round_up: Callable[[int], int]) -> tuple[int, int]:
    """The two capacities of a packed row: `length` (or the longest first size), and the second sizes in the
    batch's ratio of second to first, so both fill together (or the longest second size; at least 1)."""
    first = sum(a for a, _ in items)
    second = sum(b for _, b in items)
    s = max(length, round_up(max(a for a, _ in items)))
    t = max(1, round_up(max(b for _, b in items)), round_up(math.ceil(s * second / max(1, first))))
    return s, t


def pack(items: Sequence[Size], cap: tuple[int, int]) -> list[list[int]]:
    """Bins of item indices, each within both capacities: as many bins as the totals need, and each item (the
    largest first, by its larger share of the two capacities) goes where the fuller of the bin's two fills
    stays lowest; a new bin when none has room. Balanced fills keep the longest packed row, which sets the
    tensors' width, close to the mean. Deterministic: ties go to the first bin."""
    cs, ct = cap
    n = max(1, math.ceil(sum(a for a, _ in items) / cs), math.ceil(sum(b for _, b in items) / ct))
    bins: list[list[int]] = [[] for _ in range(n)]
    fill = [(0, 0)] * n
    for i in sorted(range(len(items)), key=lambda i: -max(items[i][0] / cs, items[i][1] / ct)):
        a, b = items[i]
        loads = [(max((fa + a) / cs, (fb + b) / ct), k) for k, (fa, fb) in enumerate(fill)
                 if fa + a <= cs and fb + b <= ct]
        if loads:
            k = min(loads)[1]
        else:
            k = len(bins)
            bins.append([])
            fill.append((0, 0))
        bins[k].append(i)
        fill[k] = (fill[k][0] + a, fill[k][1] + b)
    return [b for b in bins if b]


def _bins(rows: Sequence[Packable], length: int, round_up: Callable[[int], int],
          causal: bool) -> list[list[Packable]]:
    items = sizes(rows, causal)
    return [[rows[i] for i in b] for b in pack(items, capacities(items, length, round_up))]


def collate(rows: Sequence[Packable], length: int, round_up: Callable[[int], int], pad: int,
            ignore: int) -> dict[str, torch.Tensor]:
    """T5 rows packed: input_ids and segments [bins, S]; labels (ignore outside targets), target_segments and
    label_task (whether a target position belongs to a label-task row) [bins, T]."""
    bins = _bins(rows, length, round_up, causal=False)
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
            label_task[i, at_t : at_t + len(r.target)] = r.task == TASK_LABEL
            at_s, at_t = at_s + len(r.source), at_t + len(r.target)
    return {"input_ids": ids, "segments": seg, "labels": labels, "target_segments": tseg, "label_task": label_task}


def collate_causal(rows: Sequence[Packable], length: int, round_up: Callable[[int], int], pad: int,
                   ignore: int) -> dict[str, torch.Tensor]:
    """Decoder-only rows (source then target, one sequence each) packed, all [bins, L]: input_ids, segments,
    position_ids (from 0 in each segment), labels (ignore outside targets) and label_task."""
    bins = _bins(rows, length, round_up, causal=True)
    n = round_up(max(sum(len(r.source) + len(r.target) for r in b) for b in bins))
    ids = torch.full((len(bins), n), pad, dtype=torch.long)
    seg, pos = torch.zeros((len(bins), n), dtype=torch.long), torch.zeros((len(bins), n), dtype=torch.long)
    labels = torch.full((len(bins), n), ignore, dtype=torch.long)
    label_task = torch.zeros((len(bins), n), dtype=torch.bool)
    for i, b in enumerate(bins):
        at = 0
        for k, r in enumerate(b, start=1):
            seq, end = r.source + r.target, at + len(r.source) + len(r.target)
            ids[i, at:end] = torch.tensor(seq)
            seg[i, at:end] = k
            pos[i, at:end] = torch.arange(len(seq))
            labels[i, at + len(r.source) : end] = torch.tensor(r.target)
            label_task[i, at:end] = r.task == TASK_LABEL
            at = end
    return {"input_ids": ids, "segments": seg, "position_ids": pos, "labels": labels, "label_task": label_task}


def widths(rows: Sequence[Packable], length: int, round_up: Callable[[int], int],
           causal: bool = False) -> tuple[int, int, int]:
    """(rows, first width, second width) of the tensors that packing rows makes (T5: source and target widths;
    decoder-only: the sequence width and 0): what the memory estimate charges, exactly."""
    bins = [sizes(b, causal) for b in _bins(rows, length, round_up, causal)]
    first = round_up(max(sum(a for a, _ in b) for b in bins))
    second = round_up(max(sum(c for _, c in b) for b in bins)) if not causal else 0
    return len(bins), first, second


def _apart(query: torch.Tensor, key: torch.Tensor, causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """The additive mask [bins, 1, Lq, Lk] that hides every key of another segment (and, causal, every later
    key) from a query. Made on the device from the segment ids (no host copy: a CUDA graph can capture it)."""
    hidden = query[:, None, :, None] != key[:, None, None, :]
    if causal:
        n = key.shape[1]
        hidden = hidden | torch.ones(n, n, dtype=torch.bool, device=key.device).triu(1)
    return hidden.to(dtype) * torch.finfo(dtype).min


def masks(segments: torch.Tensor, target_segments: torch.Tensor,
          dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The additive masks T5's attention adds to its scores: encoder [bins, 1, S, S], decoder self-attention
    [bins, 1, T, T] (same segment, not later) and cross-attention [bins, 1, T, S]."""
    return (_apart(segments, segments, False, dtype), _apart(target_segments, target_segments, True, dtype),
            _apart(target_segments, segments, False, dtype))


def causal_mask(segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A decoder-only model's additive mask [bins, 1, L, L]: same segment, not later."""
    return _apart(segments, segments, True, dtype)


def decoder_inputs(labels: torch.Tensor, target_segments: torch.Tensor, start: int, pad: int,
                   ignore: int) -> torch.Tensor:
    """The decoder's input ids: each segment's target shifted right by one, starting from `start`."""
    shifted = F.pad(labels[:, :-1], (1, 0), value=start)
    first = target_segments != F.pad(target_segments[:, :-1], (1, 0), value=0)
    return shifted.masked_fill(first, start).masked_fill(shifted == ignore, pad)


# the models whose packed losses and gradients tests/test_packing.py checks against padded batches: T5's
# attention bias depends on j - i only; these decoder-only models take each segment's positions from
# position_ids and use the 4-D mask as given. Others (BART-like absolute positions, ALiBi, sliding windows,
# linear-attention layers) would compute something else packed, so they stay padded.
PACKABLE = {"seq2seq": ("t5", "mt5", "umt5"), "causal": ("llama", "qwen2", "qwen3", "gpt2")}


def unpackable(architecture: str, config: Any) -> str:
    """Why a model cannot be packed ("" when it can): its type, a sliding window, other layer types or an
    attention implementation that ignores a 4-D mask."""
    kind = getattr(config, "model_type", "") or "this model"
    if kind not in PACKABLE.get(architecture, ()):
        return f"{kind} is not among the models packing is checked for ({', '.join(PACKABLE.get(architecture, ()))})"
    if getattr(config, "use_sliding_window", False):
        return f"{kind} uses a sliding attention window"
    if any(t != "full_attention" for t in getattr(config, "layer_types", None) or ()):
        return f"{kind} has layers other than full attention"
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl not in ("eager", "sdpa"):
        return f"attention implementation {impl} does not take a 4-D mask"
    return ""


def wanted(flag: str, architecture: str, device: str, config: Any) -> tuple[int, str]:
    """The packed row length for a job (0: batches are padded, not packed), and why (for the log). `off` and
    `on` are the trainer's --packing; `auto` packs on a GPU, where it was measured (docs/benchmarks.md). A
    model `unpackable` names a reason for is never packed."""
    why_not = unpackable(architecture, config)
    if why_not:
        return 0, f"off ({why_not})"
    if flag == "off":
        return 0, "turned off"
    if flag == "on":
        return PACK_LENGTH, "turned on"
    if device != "cuda":
        return 0, "off (auto: packs on a GPU; --packing on packs here too)"
    return PACK_LENGTH, "on (auto: on a GPU)"
