"""FlexAttention for training T5 students (an option: StepOptions.flex_attention).

Why: T5 trains with eager attention (modeling.load_student says why not SDPA), which materialises the
[rows, heads, L, L] scores, the relative position bias added to them, the additive mask, the softmax and its
dropout mask, and keeps several of them for the backward. torch's flex_attention computes the same softmax in
one fused kernel that never writes the scores, and skips the tiles a block mask marks empty.

How T5 maps onto it (transformers 5.x, models/t5/modeling_t5.py):
- Scores are q.k without the 1/sqrt(d) scaling (T5Attention passes scaling=1.0, used as flex's `scale`), plus
  the relative position bias, plus the mask, then softmax.
- The bias: the first block of each stack computes position_bias = relative_attention_bias(buckets) as
  [1, heads, Lq, Lk] (the mask is passed separately in transformers 5) and hands it to the later blocks. It is
  the same for every row, so the score_mod reads it as a captured [heads, Lq, Lk] tensor: bias[h, q, kv].
  flex's backward computes the gradient of captured tensors, so relative_attention_bias learns (the test
  checks it). Without the batch dim the gradient buffer is heads*Lq*Lk, summed over rows inside the kernel;
  [B, H, Lq, Lk] would bring back the memory this removes, and indexing the 32-bucket embedding itself in the
  score_mod would funnel every score's gradient into 32*heads cells (atomic contention).
- Cross-attention has no learned bias (transformers passes zeros): no score_mod there.
- The mask is a BlockMask rather than an additive term in the score_mod: flex then skips the fully masked
  tiles (the upper triangle of the decoder's causal self-attention, the tiles of padded keys) instead of
  computing and discarding them, and applies the mask_mod only to the partial tiles (tiles of 128 tokens:
  at the lengths here few are skipped; the gain is mostly the fused kernel). The BlockMasks are made
  once per stack and forward, by a forward pre-hook on each T5Stack, from whatever mask the caller gave: a
  2-D padding mask (Hugging Face's model(labels=...)), a 4-D additive mask (TaskLosses: modeling.additive_masks,
  0 where attended; a 4-D mask is used as given, as eager does, so its causality is its own) or none. They are
  made outside the compiled blocks (step.compile_blocks) and passed into them; create_block_mask makes no host
  sync, so the step stays capturable as a CUDA graph (graphs.py). A masked score is excluded exactly (eager
  adds finfo.min, whose exp is 0 as well). A query row with no key at all (only a padded decoder position
  under a 2-D decoder mask; every source holds its EOS) gets 0 here and eager's uniform average: padding,
  outside the loss either way.
- Only training runs flex: in eval mode (validation, generation, the KV cache) the hook leaves the masks as
  they are and the attention falls back to transformers' eager function, unchanged. The switch gives each
  T5Attention its own copy of the config naming this function; the model's and stacks' configs (what
  save_pretrained writes, what builds eager masks) keep "eager".
- Dropout: flex cannot drop attention probabilities (a score_mod acts before the softmax's normalisation).
  The switch does not refuse: under flex T5's attention-probability dropout (dropout_rate) is skipped and
  logged, while the residual and feed-forward dropouts still apply. A small change of regularisation.
- flex is only fast compiled. Inside a compiled block (step.compile_blocks) it is traced into the block's
  graph; outside one, on a GPU, this calls torch.compile(flex_attention, dynamic=True). Its eager path (CPU,
  the test) materialises the scores: a reference, not a speed-up. torch has no flex backward on CPU, so the
  Stepper switches only on a GPU. Shapes stay symbolic, but Dynamo specialises a size of 1: a block compiles
  once more the first time a side of its attention spans more than one 128-token tile (a bounded few).
"""

from __future__ import annotations

import copy
import functools
import logging
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention, noop_mask

log = logging.getLogger("distillery_student")

NAME = "distillery_t5_flex"  # the attention implementation the switched T5Attentions name in their config
_LEARNED_BIAS = "_distillery_flex_bias"  # on a switched T5Attention: whether its position_bias is learned
_HOOKED = "_distillery_flex_hook"  # on a T5Stack: its mask hook is registered
# T5Stack.forward's leading parameters, to read a positional call as keywords
_POSITIONAL = ("input_ids", "attention_mask", "encoder_hidden_states", "encoder_attention_mask", "inputs_embeds",
               "past_key_values", "use_cache")

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def use_flex_attention(model: nn.Module) -> int:
    """Switches every T5Attention of a T5 model (encoder self-attention, decoder causal self-attention,
    cross-attention) to flex_attention for training; returns how many were switched (0: not a T5)."""
    from transformers import AttentionInterface
    from transformers.models.t5.modeling_t5 import T5Attention, T5LayerCrossAttention, T5Stack

    AttentionInterface.register(NAME, flex_t5_attention)
    cross = {id(m.EncDecAttention) for m in model.modules() if isinstance(m, T5LayerCrossAttention)}
    switched = [m for m in model.modules() if isinstance(m, T5Attention)]
    for attn in switched:
        attn.config = copy.copy(attn.config)  # this module's own: the stack's config keeps building eager masks
        attn.config._attn_implementation = NAME
        setattr(attn, _LEARNED_BIAS, id(attn) not in cross)
    for stack in model.modules():
        if isinstance(stack, T5Stack) and not getattr(stack, _HOOKED, False):
            stack.register_forward_pre_hook(_block_masks_hook, with_kwargs=True)
            setattr(stack, _HOOKED, True)
    dropout = max((float(m.dropout) for m in switched), default=0.0)
    if dropout > 0:
        log.warning("FlexAttention: T5's attention-probability dropout (p=%g) is skipped in training; the "
                    "residual and feed-forward dropouts still apply", dropout)
    return len(switched)


def flex_t5_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: Any, scaling: float | None = None, dropout: float = 0.0,
                      position_bias: torch.Tensor | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention interface for a switched T5Attention: flex_attention where the stack's hook
    made a BlockMask (training), else transformers' eager attention as before (eval, generation). The
    attention dropout is skipped under flex (module docstring); no attention weights are returned."""
    if not (module.training and isinstance(attention_mask, BlockMask)):
        from transformers.models.t5.modeling_t5 import eager_attention_forward

        return eager_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                       position_bias=position_bias, **kwargs)
    learned = getattr(module, _LEARNED_BIAS, True) and position_bias is not None
    score_mod = bias_score_mod(position_bias) if learned else None
    out = _kernel(query)(query, key, value, score_mod=score_mod, block_mask=attention_mask, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def bias_score_mod(bias: torch.Tensor) -> Callable[..., torch.Tensor]:
    """score + T5's position bias, read from the captured tensor: [heads, Lq, Lk] where the bias is shared by
    the rows (always, in transformers' T5), else [rows, heads, Lq, Lk]."""
    if bias.shape[0] == 1:
        shared = bias[0]

        def add_shared(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor,
                       kv: torch.Tensor) -> torch.Tensor:
            return score + shared[h, q, kv]

        return add_shared

    def add(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return score + bias[b, h, q, kv]

    return add


def _kernel(query: torch.Tensor) -> Callable[..., Any]:
    """flex_attention as it should be called here: as is inside a compiled region (it is traced into it) and
    off a GPU (the eager reference), else compiled on its own (its eager path materialises the scores)."""
    if torch.compiler.is_compiling() or query.device.type != "cuda":
        return flex_attention
    return _compiled_flex()


@functools.cache
def _compiled_flex() -> Callable[..., Any]:
    """One compiled flex_attention for the process; dynamic: padded lengths vary from batch to batch. Its
    variants (with or without the bias, each mask form, one tile or more per side) may pass Dynamo's default
    limit of 8, beyond which it would run flex's slow eager path: raised as compile_blocks does."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(flex_attention, dynamic=True)


# ---- the masks -----------------------------------------------------------------------------------------


def _block_masks_hook(stack: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]] | None:
    """Forward pre-hook of a T5Stack: in training, its self-attention mask (and a decoder's cross-attention
    mask) as BlockMasks, made once for all its blocks. transformers passes a 4-D mask (a BlockMask is one)
    through to the blocks as given. Eval mode and decoding with a filled cache keep the masks as they are."""
    if not stack.training:
        return None
    kw = {**dict(zip(_POSITIONAL, args)), **kwargs}
    cache = kw.get("past_key_values")
    if cache is not None and cache.get_seq_length() > 0:
        return None
    tokens = kw["input_ids"] if kw.get("input_ids") is not None else kw["inputs_embeds"]
    rows, length = int(tokens.shape[0]), int(tokens.shape[1])
    kw["attention_mask"] = block_mask(kw.get("attention_mask"), rows, length, length, stack.is_decoder, tokens.device)
    memory = kw.get("encoder_hidden_states")
    if stack.is_decoder and memory is not None:
        kw["encoder_attention_mask"] = block_mask(kw.get("encoder_attention_mask"), rows, length, int(memory.shape[1]),
                                                  False, tokens.device)
    return (), kw


def block_mask(mask: torch.Tensor | None, rows: int, q_len: int, kv_len: int, causal: bool,
               device: torch.device) -> BlockMask:
    """The BlockMask of one attention from the mask its stack was given: None (all keys; causal: the past),
    2-D [rows, kv] (1 or True: a token; causal adds the past-only rule, as transformers does) or 4-D
    [rows|1, 1, q|1, kv] (additive: 0 attends, as eager adds it; bool: True attends; used as given)."""
    if mask is None:
        return _create(causal_mod if causal else noop_mask, 1, q_len, kv_len, device)
    if mask.shape[-1] != kv_len:
        raise ValueError(f"attention mask of shape {list(mask.shape)} for {kv_len} keys")
    if mask.dim() == 2:
        keep = mask.to(device) != 0
        return _create(causal_padding_mod(keep) if causal else padding_mod(keep), rows, q_len, kv_len, device)
    keep = (mask[:, 0] == 0) if mask.is_floating_point() else mask[:, 0].bool()  # [rows|1, q|1, kv]
    if keep.shape[1] == 1:
        return _create(padding_mod(keep[:, 0].expand(rows, kv_len)), rows, q_len, kv_len, device)
    if keep.shape[0] == 1:
        return _create(shared_dense_mod(keep[0]), 1, q_len, kv_len, device)
    return _create(dense_mod(keep), rows, q_len, kv_len, device)


def _create(mod: MaskMod, rows: int, q_len: int, kv_len: int, device: torch.device) -> BlockMask:
    """create_block_mask, eagerly: a few small kernels, no host sync (capturable in a CUDA graph). rows 1: one
    mask for every row (the mask_mod must not read the row index then)."""
    return create_block_mask(mod, B=rows, H=None, Q_LEN=q_len, KV_LEN=kv_len, device=device)


# The mask_mods close over tensors only (a Python number would be compiled in as a constant): a compiled
# block then sees every step's mask as the same code with new tensor inputs, and does not recompile.


def causal_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    return q >= kv


def padding_mod(keep: torch.Tensor) -> MaskMod:
    """keep [rows, kv]: the keys each row attends to."""

    def padding(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return keep[b, kv]

    return padding


def causal_padding_mod(keep: torch.Tensor) -> MaskMod:
    """keep [rows, kv], and no key after the query."""

    def causal_padding(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return (q >= kv) & keep[b, kv]

    return causal_padding


def dense_mod(keep: torch.Tensor) -> MaskMod:
    """keep [rows, q, kv]."""

    def dense(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return keep[b, q, kv]

    return dense


def shared_dense_mod(keep: torch.Tensor) -> MaskMod:
    """keep [q, kv], the same for every row (the decoder's causal mask from modeling.additive_masks)."""

    def shared_dense(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return keep[q, kv]

    return shared_dense
