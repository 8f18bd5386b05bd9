"""Greedy decoding for T5 students with a static KV cache, replayed as CUDA graphs on a GPU.

Hugging Face `generate` spends most of each token in Python and kernel launches (a t5-base step is ~100
small kernels): on an H200 it ran at 14-23 ms/token where the GPU needs under 2. This decoder reuses the
model's own modules (embeddings, layer norms, projections, feed-forward) and only replaces the attention
bookkeeping: the self-attention keys/values live in fixed-size buffers, the relative position bias of every
(query, key) pair is computed once, and the cross-attention keys/values are computed once per batch. One
decode step then has fixed shapes, so on CUDA it is captured once per (batch, source length, steps) bucket as
a CUDA graph and replayed: one launch per token. On CPU the same step runs eagerly (no graphs).

The arithmetic is Hugging Face's eager T5 attention (no query scaling, bias then mask, softmax in the model's
dtype), so the tokens are the ones `generate(do_sample=False, num_beams=1)` returns (tested on CPU; on the GPU
the benchmark reports the share of identical outputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


def bucket(n: int, smallest: int = 1) -> int:
    """The power of two >= n (at least `smallest`): shapes are padded to these so graphs are reused."""
    b = smallest
    while b < n:
        b *= 2
    return b


def capture(fn: Callable[[], Any], pool: Any) -> Any:
    """fn captured as a CUDA graph (after two warm-up runs on a side stream: lazy inits, cuBLAS workspaces).
    fn must read and write fixed-address tensors only, and make no host syncs."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        fn()
    return graph


@dataclass
class _Buffers:
    """Fixed-address tensors one captured step reads and writes."""

    token: torch.Tensor  # [b] the token fed at this step
    pos: torch.Tensor  # [1] the step index
    self_k: list[torch.Tensor]  # per layer [b, H, T, dk]
    self_v: list[torch.Tensor]
    cross_k: list[torch.Tensor]  # per layer [b, H, S, dk]
    cross_v: list[torch.Tensor]
    cross_mask: torch.Tensor  # [b, 1, 1, S] additive
    logits_argmax: torch.Tensor | None = None  # [b] written by the step


class StaticT5Greedy:
    """Greedy decoding of a T5ForConditionalGeneration with fixed-shape steps (see the module doc)."""

    def __init__(self, model: nn.Module, use_cuda_graphs: bool | None = None):
        self.model = model.eval()
        cfg = model.config
        self.cfg = cfg
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.graphs = self.device.type == "cuda" if use_cuda_graphs is None else use_cuda_graphs
        self.n_heads, self.d_kv = cfg.num_heads, cfg.d_kv
        self.blocks = list(model.decoder.block)
        self.scale = getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", True))
        self.neg = torch.finfo(self.dtype).min
        self._bias: dict[int, torch.Tensor] = {}
        self._captured: dict[tuple[int, int, int], tuple[Any, _Buffers]] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.graphs else None

    # ---- shapes and constant tables ----

    def _self_bias(self, steps: int) -> torch.Tensor:
        """[1, H, T, T]: the decoder's relative position bias plus the causal mask, for T = steps."""
        if steps not in self._bias:
            attn = self.blocks[0].layer[0].SelfAttention
            with torch.no_grad():
                bias = attn.compute_bias(steps, steps, device=self.device).to(self.dtype)
                future = torch.ones(steps, steps, dtype=torch.bool, device=self.device).triu(1)
                self._bias[steps] = bias.masked_fill(future, self.neg).contiguous()
        return self._bias[steps]

    def _new_buffers(self, b: int, s: int, steps: int) -> _Buffers:
        h, dk, dev, dt = self.n_heads, self.d_kv, self.device, self.dtype
        n = len(self.blocks)

        def kv(length: int) -> list[torch.Tensor]:
            return [torch.zeros(b, h, length, dk, device=dev, dtype=dt) for _ in range(n)]

        return _Buffers(token=torch.zeros(b, dtype=torch.long, device=dev),
                        pos=torch.zeros(1, dtype=torch.long, device=dev),
                        self_k=kv(steps), self_v=kv(steps), cross_k=kv(s), cross_v=kv(s),
                        cross_mask=torch.zeros(b, 1, 1, s, device=dev, dtype=dt))

    # ---- one step ----

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        scores = torch.matmul(q, k.transpose(2, 3)) + bias  # T5: no 1/sqrt(d) scaling
        return torch.matmul(torch.softmax(scores, dim=-1), v)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.n_heads, self.d_kv).transpose(1, 2)

    def _step(self, buf: _Buffers, steps: int) -> torch.Tensor:
        """Feeds buf.token at buf.pos; returns the argmax token [b]. Fixed shapes, no host syncs."""
        b = buf.token.shape[0]
        bias = self._self_bias(steps).index_select(2, buf.pos)  # [1, H, 1, T]
        h = self.model.decoder.embed_tokens(buf.token).unsqueeze(1)  # [b, 1, D]
        for i, block in enumerate(self.blocks):
            sa = block.layer[0]
            x = sa.layer_norm(h)
            att = sa.SelfAttention
            buf.self_k[i].index_copy_(2, buf.pos, self._heads(att.k(x)))
            buf.self_v[i].index_copy_(2, buf.pos, self._heads(att.v(x)))
            o = self._attend(self._heads(att.q(x)), buf.self_k[i], buf.self_v[i], bias)
            h = h + att.o(o.transpose(1, 2).reshape(b, 1, -1))
            ca = block.layer[1]
            x = ca.layer_norm(h)
            o = self._attend(self._heads(ca.EncDecAttention.q(x)), buf.cross_k[i], buf.cross_v[i], buf.cross_mask)
            h = h + ca.EncDecAttention.o(o.transpose(1, 2).reshape(b, 1, -1))
            h = block.layer[2](h)
        h = self.model.decoder.final_layer_norm(h)
        if self.scale:
            h = h * (self.cfg.d_model ** -0.5)
        return self.model.lm_head(h)[:, 0].argmax(-1)

    # ---- per batch ----

    def _prepare(self, buf: _Buffers, enc: torch.Tensor, mask: torch.Tensor) -> None:
        """Fills the cross-attention keys/values and mask for this batch (rows past the batch stay zero)."""
        n, s = enc.shape[0], enc.shape[1]
        for i, block in enumerate(self.blocks):
            att = block.layer[1].EncDecAttention
            buf.cross_k[i].zero_()
            buf.cross_v[i].zero_()
            buf.cross_k[i][:n, :, :s].copy_(self._heads(att.k(enc)))
            buf.cross_v[i][:n, :, :s].copy_(self._heads(att.v(enc)))
        full = torch.zeros(buf.cross_mask.shape[0], buf.cross_mask.shape[-1], device=self.device, dtype=torch.bool)
        full[:n, :s] = mask.bool()
        full[n:, 0] = True  # padding rows attend to one zero key: finite, and discarded
        buf.cross_mask.copy_(torch.where(full, 0.0, self.neg).to(self.dtype).view_as(buf.cross_mask))

    def _runner(self, b: int, s: int, steps: int) -> tuple[Any, _Buffers]:
        key = (b, s, steps)
        if key in self._captured:
            return self._captured[key]
        buf = self._new_buffers(b, s, steps)
        graph = capture(lambda: setattr(buf, "logits_argmax", self._step(buf, steps)), self._pool) if self.graphs else None
        self._captured[key] = (graph, buf)
        return graph, buf

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                 eos_token_id: int, pad_token_id: int) -> torch.Tensor:
        """[n, <= max_new_tokens] generated ids (no start token), pad after EOS, as HF generate returns them
        minus the leading decoder start token."""
        n, s = input_ids.shape
        enc = self.model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        b, sb, steps = bucket(n), bucket(s, 16), bucket(max_new_tokens, 8)
        graph, buf = self._runner(b, sb, steps)
        self._prepare(buf, enc, attention_mask)
        buf.token.fill_(self.cfg.decoder_start_token_id)
        for k in buf.self_k + buf.self_v:
            k.zero_()
        out = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=self.device)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        for t in range(max_new_tokens):
            buf.pos.fill_(t)
            if graph is not None:
                graph.replay()
                nxt = buf.logits_argmax[:n]
            else:
                nxt = self._step(buf, steps)[:n]
            nxt = torch.where(done, pad_token_id, nxt)
            out[:, t] = nxt
            done = done | (nxt == eos_token_id)
            buf.token[:n].copy_(nxt)
            if t % 4 == 3 and bool(done.all()):  # a host sync every few steps, not every step
                return out[:, : t + 1]
        return out
