"""Micro-batches that fit the GPU: an estimate of the step's memory, and the split of one rank's share of a
batch into micro-batches that the estimate says fit.

The estimate (bytes of activations per padded token, bytes of weights and optimizer state per parameter)
plans to fill 80% of the card; measured peaks reached 86-92% of it (bench/memory_fit.py). A fixed
`--micro-batch-size` overrides all of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")

# the share of the card the estimate may fill: the rest absorbs allocator fragmentation and NCCL buffers
MEMORY_FRACTION = 0.8


@dataclass
class Shape:
    """What the memory estimate needs from a model config."""

    layers: int  # transformer blocks of one stack for T5 (its config's num_hidden_layers is num_layers), all for decoders
    hidden: int
    ffn: int
    heads: int
    vocab: int
    eager_attention: bool  # scores materialised (T5): memory grows with the sequence length


def shape_of(config: object, eager_attention: bool) -> Shape:
    c = config
    layers = getattr(c, "num_hidden_layers", None) or (getattr(c, "num_layers", 0) + getattr(c, "num_decoder_layers", 0))
    hidden = getattr(c, "hidden_size", None) or getattr(c, "d_model")
    ffn = getattr(c, "intermediate_size", None) or getattr(c, "d_ff", 4 * hidden)
    heads = getattr(c, "num_attention_heads", None) or getattr(c, "num_heads")
    return Shape(int(layers), int(hidden), int(ffn), int(heads), int(c.vocab_size), eager_attention)


def activation_bytes_per_token(s: Shape, seq_len: int, checkpointing: bool) -> float:
    """bf16 activations kept for backward, per padded token (after Korthikanti et al. 2022: ~34h bytes per
    layer for ffn = 4h; here 2 x (6h + 3 x ffn), plus the fp32 softmax, bf16 probabilities and dropout mask
    of materialised attention scores). With checkpointing only each block's input is kept, plus one block."""
    per_layer = 2.0 * (6 * s.hidden + 3 * s.ffn) + (7.0 * s.heads * seq_len if s.eager_attention else 0.0)
    if checkpointing:
        return s.layers * 2.0 * s.hidden + per_layer
    return s.layers * per_layer


def logit_bytes_per_target(s: Shape) -> float:
    """The output layer on target tokens: bf16 logits, their fp32 copy and its gradient."""
    return 10.0 * s.vocab


def static_bytes(trainable: int, frozen: int, world: int, sharded: bool) -> float:
    """Weights, gradients and AdamW state: bf16 weight + bf16 grad + fp32 master + fp32 grad + 2 fp32 moments
    (20 bytes) per trainable parameter, 2 per frozen one; sharded (FSDP) divides by the ranks."""
    total = 20.0 * trainable + 2.0 * frozen
    return total / world if sharded else total


def split_by_budget(items: Sequence[T], cost: Callable[[Sequence[T]], float], budget: float) -> list[list[T]]:
    """Consecutive chunks, each as long as its cost stays within the budget (one item per chunk at least).
    Items come length-sorted, so a chunk's padding stays small."""
    chunks: list[list[T]] = []
    cur: list[T] = []
    for it in items:
        if cur and cost(cur + [it]) > budget:
            chunks.append(cur)
            cur = []
        cur.append(it)
    if cur:
        chunks.append(cur)
    return chunks


def split_by_bisection(items: Sequence[T], cost: Callable[[Sequence[T]], float], budget: float) -> list[list[T]]:
    """Consecutive chunks, each a prefix of what is left that a bisection found within the budget (one item at
    least): about log2(n) costs per chunk, for costs that are dear to compute (packing a chunk). Every chunk
    returned was costed within the budget, unless it is a single item. Where the cost does not grow with each
    item added (a packed chunk's rows follow its ratio of target to source tokens), the prefix found fits but
    may not be the longest that does."""
    chunks: list[list[T]] = []
    rest = list(items)
    while rest:
        lo, hi = 1, len(rest)  # lo fits (or is the single-item floor); find the longest prefix that fits
        if cost(rest) <= budget:
            lo = hi
        else:
            hi -= 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cost(rest[:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        chunks.append(rest[:lo])
        rest = rest[lo:]
    return chunks


def split_even(items: Sequence[T], n: int) -> list[list[T]]:
    """n chunks of near-equal size (FSDP: every rank runs the same number of forward passes); never empty."""
    n = max(1, min(n, len(items)))
    q, r = divmod(len(items), n)
    out, i = [], 0
    for k in range(n):
        j = i + q + (1 if k < r else 0)
        out.append(list(items[i:j]))
        i = j
    return out
