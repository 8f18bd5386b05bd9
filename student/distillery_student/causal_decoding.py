"""Greedy decoding for decoder-only students (Llama, Qwen2, Qwen3 layouts) with a static KV cache, replayed as
CUDA graphs on a GPU: the decoder-only counterpart of decoding.StaticT5Greedy.

The model's own modules do the arithmetic (embeddings, RMS norms, projections, rotary embedding, MLP, output
layer); this file only keeps the keys/values in fixed-size buffers and builds the masks. A batch is left-padded
to a bucket of (rows, prompt length); the prompt pass (prefill) and a chunk of decode steps then have fixed
shapes, so on CUDA each is captured once per bucket as a CUDA graph and replayed: one launch for the prompt with
the first tokens and one per decoding.CHUNK tokens, with the bookkeeping (EOS, padding after it, the next position) inside the graph. On CPU the same code
runs eagerly on the batch's own shapes.

Positions follow Hugging Face generate's for left padding (cumsum of the attention mask - 1), and the attention
is PyTorch's scaled_dot_product_attention with the model's scaling, so the tokens are the ones
`generate(do_sample=False, num_beams=1)` returns (tested on CPU; on the GPU the benchmark reports the share of
identical outputs).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .decoding import GraphedDecoder

SUPPORTED = ("llama", "qwen2", "qwen3")
# rope types whose cos/sin are pure tensor functions of the position (no host-side rescaling as "dynamic" does)
_STATIC_ROPE = ("default", "linear", "llama3", "yarn")


def unsupported_reason(model: nn.Module) -> str:
    """Why StaticCausalGreedy cannot decode this model exactly as HF does; "" when it can."""
    cfg = model.config
    kind = getattr(cfg, "model_type", "")
    if kind not in SUPPORTED:
        return f"model_type {kind!r} is not one of {SUPPORTED}"
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return "sliding-window attention layers"
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
    if rope not in _STATIC_ROPE:
        return f"rope_type {rope!r}"
    backbone = getattr(model, "model", None)
    if not all(hasattr(backbone, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return f"{type(model).__name__} has no model.embed_tokens/layers/norm/rotary_emb"
    return ""


@dataclass
class _Buffers:
    """Fixed-address tensors the captured prefill and step read and write (b rows, p prompt columns, L = p +
    steps cache columns)."""

    ids: torch.Tensor  # [b, p] the left-padded prompt
    prompt_mask: torch.Tensor  # [b, p] bool; padding rows keep their last column so no softmax row is empty
    keys_ok: torch.Tensor  # [b, L] bool: prompt columns that are real, and every generated column
    base: torch.Tensor  # [b] real prompt tokens: the position of the first generated token
    t: torch.Tensor  # [1] index of the next generated token
    token: torch.Tensor  # [b] the token fed to the next step
    out: torch.Tensor  # [b, steps] generated tokens, pad after EOS
    done: torch.Tensor  # [b] bool
    k: list[torch.Tensor]  # per layer [b, Hkv, L, d]
    v: list[torch.Tensor]


class StaticCausalGreedy(GraphedDecoder):
    """Greedy decoding of a Llama/Qwen-style causal LM with fixed-shape steps (see the module doc)."""

    def __init__(self, model: nn.Module, use_cuda_graphs: bool | None = None, pad_to_buckets: bool | None = None):
        why = unsupported_reason(model)
        if why:
            raise ValueError(f"the static causal decoder cannot serve this model: {why}")
        self.model = model.eval()
        self.cfg = model.config
        self.backbone = model.model
        self.layers = list(self.backbone.layers)
        self.head = model.get_output_embeddings()
        attn = self.layers[0].self_attn
        self.rope: Callable[..., Any] = sys.modules[type(attn).__module__].apply_rotary_pos_emb
        self.scaling = attn.scaling
        self.head_dim = attn.head_dim
        self.n_kv = self.cfg.num_key_value_heads
        self.groups = self.cfg.num_attention_heads // self.n_kv
        self._init_graphs(next(model.parameters()).device, use_cuda_graphs, pad_to_buckets)
        self.dtype = next(model.parameters()).dtype

    # ---- the layers ----

    def _heads(self, x: torch.Tensor, norm: nn.Module | None) -> torch.Tensor:
        x = x.view(*x.shape[:-1], -1, self.head_dim)  # [b, q, heads, d]
        return (norm(x) if norm is not None else x).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q [b, H, q, d] over k, v [b, Hkv, L, d]; mask [b, 1, q, L] bool. Returns [b, q, H*d]."""
        b, _, n, d = q.shape
        if n == 1 and self.groups > 1:  # a decode step: the query heads of one KV head become its rows
            o = F.scaled_dot_product_attention(q.reshape(b, self.n_kv, self.groups, d), k, v, attn_mask=mask,
                                               scale=self.scaling)
            return o.reshape(b, 1, -1)
        if self.groups > 1:
            k, v = k.repeat_interleave(self.groups, 1), v.repeat_interleave(self.groups, 1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling).transpose(1, 2).reshape(b, n, -1)

    def _layers(self, h: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor, buf: _Buffers,
                write: Callable[[torch.Tensor, torch.Tensor], None], width: int) -> torch.Tensor:
        """h [b, q, D] through every layer; write(cache, new) stores each layer's new keys/values, attention reads
        the first `width` cache columns."""
        cos, sin = self.backbone.rotary_emb(h, pos)
        for i, layer in enumerate(self.layers):
            att = layer.self_attn
            x = layer.input_layernorm(h)
            q = self._heads(att.q_proj(x), getattr(att, "q_norm", None))
            k = self._heads(att.k_proj(x), getattr(att, "k_norm", None))
            q, k = self.rope(q, k, cos, sin)
            write(buf.k[i], k)
            write(buf.v[i], self._heads(att.v_proj(x), None))
            o = self._attend(q, buf.k[i][:, :, :width], buf.v[i][:, :, :width], mask)
            h = h + att.o_proj(o)
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return h

    def _next(self, h: torch.Tensor, buf: _Buffers) -> None:
        """Greedy token from the last hidden state h [b, D]; EOS, padding after it and the feed, in place."""
        nxt = self.head(self.backbone.norm(h)).argmax(-1)
        nxt = torch.where(buf.done, self.pad, nxt)
        buf.out.index_copy_(1, buf.t, nxt.unsqueeze(1))
        buf.done |= nxt == self.eos
        buf.token.copy_(nxt)
        buf.t.add_(1)

    def _prefill(self, buf: _Buffers) -> None:
        b, p = buf.ids.shape
        buf.out.fill_(self.pad)
        buf.done.zero_()
        buf.t.zero_()
        buf.base.copy_(buf.prompt_mask.sum(-1))
        buf.keys_ok[:, :p] = buf.prompt_mask
        buf.keys_ok[:, p:] = True  # every generated column (the buffer is shared with other buckets)
        pos = (buf.prompt_mask.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(p, p, dtype=torch.bool, device=self.device).tril()
        eye = torch.eye(p, dtype=torch.bool, device=self.device)
        mask = (causal & buf.prompt_mask[:, None, None, :]) | eye  # padding queries see themselves: finite, unused

        def write(cache: torch.Tensor, new: torch.Tensor) -> None:
            cache[:, :, :p].copy_(new)

        h = self._layers(self.backbone.embed_tokens(buf.ids), pos, mask, buf, write, p)
        self._next(h[:, -1], buf)

    def _step(self, buf: _Buffers) -> None:
        p, width = buf.ids.shape[1], buf.keys_ok.shape[1]
        col = buf.t + (p - 1)  # the fed token's cache column
        cols = torch.arange(width, device=self.device)
        mask = (buf.keys_ok & (cols <= col)).view(-1, 1, 1, width)

        def write(cache: torch.Tensor, new: torch.Tensor) -> None:
            cache.index_copy_(2, col, new)

        h = self._layers(self.backbone.embed_tokens(buf.token).unsqueeze(1), (buf.base + buf.t - 1).unsqueeze(1),
                         mask, buf, write, width)
        self._next(h[:, 0], buf)

    # ---- buffers and graphs ----

    def _new_buffers(self, b: int, p: int, steps: int) -> _Buffers:
        width, t, long = p + steps, self._tensor, torch.long

        def kv(name: str) -> list[torch.Tensor]:
            return [t(f"{name}{i}", (b, self.n_kv, width, self.head_dim), self.dtype) for i in range(len(self.layers))]

        return _Buffers(ids=t("ids", (b, p), long), prompt_mask=t("prompt_mask", (b, p), torch.bool),
                        keys_ok=t("keys_ok", (b, width), torch.bool), base=t("base", (b,), long), t=t("t", (1,), long),
                        token=t("token", (b,), long), out=t("out", (b, steps), long), done=t("done", (b,), torch.bool),
                        k=kv("k"), v=kv("v"))

    def _load(self, buf: _Buffers, ids: torch.Tensor, mask: torch.Tensor) -> None:
        """The batch, left-padded into the bucket's rows and columns."""
        n, s = ids.shape
        buf.ids.fill_(self.pad)
        buf.prompt_mask.zero_()
        buf.ids[:n, -s:] = ids
        buf.prompt_mask[:n, -s:] = mask.bool()
        buf.prompt_mask[n:, -1] = True
