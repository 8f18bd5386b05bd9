"""Greedy decoding for T5 students with a static KV cache, replayed as CUDA graphs on a GPU.

Hugging Face `generate` spends most of each token in Python and kernel launches (a t5-base step is ~100
small kernels): on an H200 it ran at 14-23 ms/token where the GPU needs under 2. This decoder reuses the
model's own modules (embeddings, layer norms, projections, feed-forward) and only replaces the attention
bookkeeping: the self-attention keys/values live in fixed-size buffers, the relative position bias of every
(query, key) pair is computed once, and the cross-attention keys/values are computed once per batch. The
source pass (the encoder, the cross keys/values, the first tokens) and a chunk of decode steps then have fixed
shapes, so on CUDA each is captured once per (batch, source length, steps) bucket as a CUDA graph and replayed:
one launch for the source and one per CHUNK tokens. On CPU the same code runs eagerly (no graphs). With
compile_layers (the GPU server's default) each decoder block's step and the encoder's blocks are compiled first
(compiled_layers): the graphs then replay Inductor's fused kernels, 1.5-1.7x faster on an H200.

The arithmetic is Hugging Face's eager T5 attention (no query scaling, bias then mask, softmax in the model's
dtype), so the tokens are the ones `generate(do_sample=False, num_beams=1)` returns (tested on CPU; on the GPU
the benchmark reports the share of identical outputs).
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


# Tokens per graph launch: the prefill's graph makes the first CHUNK, each next launch CHUNK more, and the loop
# checks once per chunk whether every row has ended. Fewer launches and host wake-ups per batch; the one GPU
# call that compared it with a launch per token measured no difference (docs/benchmarks.md).
CHUNK = 4


def bucket(n: int, smallest: int = 1) -> int:
    """The power of two >= n (at least `smallest`): shapes are padded to these so graphs are reused."""
    b = smallest
    while b < n:
        b *= 2
    return b


def fine_bucket(n: int, step: int, smallest: int = 1) -> int:
    """A power of two up to `step`, then the next multiple of `step`: a batch pays for at most step - 1 padded
    rows or columns (powers of two alone padded a batch whose longest input had 260 tokens to 512, and its
    source pass cost 1.7x: docs/benchmarks.md), for a few more graphs."""
    return bucket(n, smallest) if n <= step else -(-n // step) * step


ROW_STEP, SOURCE_STEP = 8, 64  # batch rows and source (prompt) columns are padded to these multiples


def warm_up(fn: Callable[[], Any], reset: Callable[[], Any], runs: int = 2) -> None:
    """Runs fn eagerly before its capture (lazy inits, cuBLAS workspaces), each run from the state reset() sets:
    a decode chunk advances the position, and two runs in a row would write past a bucket's buffers."""
    for _ in range(runs):
        reset()
        fn()


def capture(fn: Callable[[], Any], pool: Any, stream: Any, reset: Callable[[], Any] = lambda: None) -> Any:
    """fn captured as a CUDA graph on `stream`, after warm_up there. Graphs that share a pool must be captured on
    one stream, or they cannot reuse each other's memory. fn must read and write fixed-address tensors only,
    and make no host syncs. Other threads may use the GPU meanwhile (the server's other lanes keep serving
    while one captures a new bucket)."""
    from .graphs import record

    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        warm_up(fn, reset)
    return record(fn, pool, stream, mode="thread_local")[0]


class GraphedDecoder:
    """What both static greedy decoders share: per bucket of (rows, source length, steps), fixed-address buffers
    and, on CUDA, two graphs (the prefill with the first CHUNK tokens, and CHUNK decode steps); and the token
    loop. Subclasses make the buffers (`_new_buffers`, with `out` [b, steps] and `done` [b]), load a batch into
    them (`_load`), and write `_prefill` and `_step`, which keep the bookkeeping (EOS, padding after it, the next
    position) in the buffers."""

    def _init_graphs(self, device: torch.device, use_cuda_graphs: bool | None, pad_to_buckets: bool | None) -> None:
        self.device = device
        self.graphs = device.type == "cuda" if use_cuda_graphs is None else use_cuda_graphs
        self.pad_to_buckets = self.graphs if pad_to_buckets is None else pad_to_buckets
        self.eos = self.pad = 0
        self._captured: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}
        self._arena: dict[str, torch.Tensor] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.graphs else None
        self._stream = torch.cuda.Stream() if self.graphs else None  # every capture's: the pool is shared

    def _new_buffers(self, b: int, s: int, steps: int) -> Any:
        raise NotImplementedError

    def _tensor(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A contiguous zero-initialised tensor at the start of the flat buffer `name`, which every bucket shares (a
        decoder runs one batch at a time, and each bucket's prefill sets what it reads): memory for the largest
        bucket, not the sum of them all. A bucket larger than the buffer grows it, and the graphs captured over the
        old one are dropped (captured again when their bucket comes back)."""
        n = math.prod(shape)
        flat = self._arena.get(name)
        if flat is None or flat.numel() < n or flat.dtype != dtype:
            if flat is not None:  # the graphs over the old buffer go, and with them their pool: a new one
                self._captured.clear()
                self._pool = torch.cuda.graph_pool_handle() if self.graphs else None
            flat = self._arena[name] = torch.zeros(n, dtype=dtype, device=self.device)
        return flat[:n].view(shape)

    def _load(self, buf: Any, ids: torch.Tensor, mask: torch.Tensor) -> None:
        raise NotImplementedError

    def _prefill(self, buf: Any) -> None:
        raise NotImplementedError

    def _step(self, buf: Any) -> None:
        raise NotImplementedError

    def _runner(self, b: int, s: int, steps: int) -> tuple[Any, Any, Any]:
        key = (b, s, steps, self.eos, self.pad)  # EOS and padding are baked into the graphs
        if key in self._captured:
            return self._captured[key]
        buf = self._new_buffers(b, s, steps)
        runner: tuple[Any, Any, Any] = (None, None, buf)
        if self.graphs:
            runner = (capture(lambda: self._first(buf), self._pool, self._stream),
                      capture(lambda: self._chunk(buf), self._pool, self._stream, reset=lambda: buf.t.fill_(CHUNK)),
                      buf)
        if self.graphs or self.pad_to_buckets:
            self._captured[key] = runner
        return runner

    def buckets(self, rows: int, source: int) -> list[tuple[int, int]]:
        """Every (rows, source length) bucket a batch of at most `rows` inputs of at most `source` tokens pads to."""
        rs = sorted({fine_bucket(n, ROW_STEP) for n in range(1, rows + 1)})
        ss = sorted({fine_bucket(n, SOURCE_STEP, 16) for n in range(1, source + 1)})
        return [(r, s) for r in rs for s in ss]

    @torch.no_grad()
    def capture_all(self, rows: int, source: int, max_new_tokens: int, deadline: float = math.inf) -> int:
        """Captures the graphs of every bucket up front (a server's warm-up), so that no request waits for a capture
        (hundreds of ms), smallest first, until time.monotonic() passes `deadline` (the rest are captured when
        first seen); a no-op without graphs. generate must have run once (EOS and padding are in the graphs).
        Returns how many buckets were captured now."""
        if not self.graphs:
            return 0
        before = len(self._captured)
        for r, s in sorted(self.buckets(rows, source), key=lambda rs: rs[0] * rs[1]):
            if time.monotonic() > deadline:
                break
            self._runner(*self._shape(r, s, max_new_tokens))
        return len(self._captured) - before

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                 eos_token_id: int, pad_token_id: int) -> torch.Tensor:
        """[n, <= max_new_tokens] generated ids, pad after EOS, as HF generate returns them after the prompt (T5:
        after the decoder start token). Tokens come CHUNK at a time (with graphs, up to CHUNK - 1 past
        max_new_tokens are computed and dropped); between chunks one host sync checks whether every row has
        ended."""
        self.eos, self.pad = eos_token_id, pad_token_id
        n = input_ids.shape[0]
        first, chunk, buf = self._runner(*self._shape(n, input_ids.shape[1], max_new_tokens))
        self._load(buf, input_ids, attention_mask)
        first.replay() if first is not None else self._first(buf, min(CHUNK, max_new_tokens))
        for t in range(CHUNK, max_new_tokens, CHUNK):
            if bool(buf.done[:n].all()):  # a host sync per chunk, not per token
                return buf.out[:n, :t].clone()
            chunk.replay() if chunk is not None else self._chunk(buf, min(CHUNK, max_new_tokens - t))
        return buf.out[:n, :max_new_tokens].clone()

    def _shape(self, rows: int, source: int, max_new_tokens: int) -> tuple[int, int, int]:
        """The (rows, source length, steps) a batch runs at: its bucket, or its own shape without buckets."""
        if not self.pad_to_buckets:
            return rows, source, max_new_tokens
        return fine_bucket(rows, ROW_STEP), fine_bucket(source, SOURCE_STEP, 16), bucket(max_new_tokens, 8)

    def _first(self, buf: Any, tokens: int = CHUNK) -> None:
        """The prefill and the next tokens - 1 steps: the first `tokens` tokens."""
        self._prefill(buf)
        self._chunk(buf, tokens - 1)

    def _chunk(self, buf: Any, steps: int = CHUNK) -> None:
        for _ in range(steps):
            self._step(buf)


@dataclass
class _Buffers:
    """Fixed-address tensors the captured prefill and step read and write (b rows, s source columns)."""

    ids: torch.Tensor  # [b, s] the right-padded source
    mask: torch.Tensor  # [b, s] bool; rows past the batch keep column 0 so no softmax row is empty
    t: torch.Tensor  # [1] index of the next generated token
    token: torch.Tensor  # [b] the token fed at the next step
    out: torch.Tensor  # [b, steps] generated tokens, pad after EOS
    done: torch.Tensor  # [b] bool
    self_k: list[torch.Tensor]  # per layer [b, H, steps, dk]
    self_v: list[torch.Tensor]
    cross_k: list[torch.Tensor]  # per layer [b, H, s, dk]
    cross_v: list[torch.Tensor]
    cross_mask: torch.Tensor  # [b, 1, 1, s] additive


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    scores = torch.matmul(q, k.transpose(2, 3)) + bias  # T5: no 1/sqrt(d) scaling
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def decode_layer(block: nn.Module, h: torch.Tensor, t: torch.Tensor, bias: torch.Tensor, self_k: torch.Tensor,
                 self_v: torch.Tensor, cross_k: torch.Tensor, cross_v: torch.Tensor,
                 cross_mask: torch.Tensor) -> torch.Tensor:
    """One T5 decoder block for the token h [b, 1, D] at position t: writes its key and value into the block's
    self-attention cache [b, H, T, dk] and returns the block's output. Fixed shapes, no host syncs."""
    b, heads, _, dk = cross_k.shape

    def split(x: torch.Tensor) -> torch.Tensor:  # [b, n, H*dk] -> [b, H, n, dk]
        return x.view(b, -1, heads, dk).transpose(1, 2)

    def merge(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(b, 1, -1)

    sa, ca = block.layer[0], block.layer[1]
    x = sa.layer_norm(h)
    self_k.index_copy_(2, t, split(sa.SelfAttention.k(x)))
    self_v.index_copy_(2, t, split(sa.SelfAttention.v(x)))
    h = h + sa.SelfAttention.o(merge(attend(split(sa.SelfAttention.q(x)), self_k, self_v, bias)))
    x = ca.layer_norm(h)
    h = h + ca.EncDecAttention.o(merge(attend(split(ca.EncDecAttention.q(x)), cross_k, cross_v, cross_mask)))
    return block.layer[2](h)


def compiled_layers(model: nn.Module) -> Callable[..., torch.Tensor]:
    """decode_layer compiled, and the encoder's blocks compiled in place (regional compilation: every block of a
    stack shares one compiled code, so a t5-base compiles a few times, not once per layer). Inductor fuses the
    small kernels around the matrix products (T5's fp32 norms, bias, softmax, residuals); a batch is bound by
    those kernels, not by its FLOPs (docs/benchmarks.md). Shapes stay symbolic, so the buckets share the code; a
    size of 1 (one row) compiles once more. The encoder's blocks are compiled as the trainer's --compile does."""
    from .step import compile_blocks

    compile_blocks(model.encoder)
    return _compiled_decode_layer()


def compiler_missing() -> str:
    """Why torch.compile cannot run on a GPU here, or "": Triton builds its kernel launcher with a C compiler
    ($CC, else gcc or clang) the first time it runs, and a slim image may have none. Triton takes $CC when it
    is set, so a $CC that names no executable fails as none would."""
    cc = os.environ.get("CC", "").split()
    if cc:
        return "" if shutil.which(cc[0]) else "$CC names no executable C compiler for Triton"
    if shutil.which("gcc") or shutil.which("clang"):
        return ""
    return "no C compiler for Triton ($CC, gcc or clang)"


@functools.cache
def _compiled_decode_layer() -> Callable[..., torch.Tensor]:
    return torch.compile(decode_layer, dynamic=True)


class StaticT5Greedy(GraphedDecoder):
    """Greedy decoding of a T5ForConditionalGeneration with fixed-shape steps (see the module doc).

    On CUDA a batch is padded to a bucket of (rows, source length) and two graphs are captured per bucket: the
    prefill (the encoder, the cross-attention keys/values, the first CHUNK tokens) and CHUNK decode steps, each with the
    bookkeeping (EOS, padding after it, the next position) inside: one launch for the source and one per
    token. On CPU the same code runs eagerly on the batch's own shapes."""

    def __init__(self, model: nn.Module, use_cuda_graphs: bool | None = None, pad_to_buckets: bool | None = None,
                 compile_layers: bool = False):
        self.model = model.eval()
        self.compiled = compile_layers
        self._layer = compiled_layers(model) if compile_layers else decode_layer
        cfg = model.config
        self.cfg = cfg
        self._init_graphs(next(model.parameters()).device, use_cuda_graphs, pad_to_buckets)
        self.dtype = next(model.parameters()).dtype
        self.n_heads, self.d_kv = cfg.num_heads, cfg.d_kv
        self.blocks = list(model.decoder.block)
        self.scale = getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", True))
        self.neg = torch.finfo(self.dtype).min
        self._bias: dict[int, torch.Tensor] = {}

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
        h, dk, dt, t = self.n_heads, self.d_kv, self.dtype, self._tensor

        def kv(name: str, length: int) -> list[torch.Tensor]:
            return [t(f"{name}{i}", (b, h, length, dk), dt) for i in range(len(self.blocks))]

        return _Buffers(ids=t("ids", (b, s), torch.long), mask=t("mask", (b, s), torch.bool), t=t("t", (1,), torch.long),
                        token=t("token", (b,), torch.long), out=t("out", (b, steps), torch.long),
                        done=t("done", (b,), torch.bool), self_k=kv("self_k", steps), self_v=kv("self_v", steps),
                        cross_k=kv("cross_k", s), cross_v=kv("cross_v", s), cross_mask=t("cross_mask", (b, 1, 1, s), dt))

    # ---- the source pass and one step ----

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.n_heads, self.d_kv).transpose(1, 2)

    def _prefill(self, buf: _Buffers) -> None:
        """The encoder over buf.ids, the cross-attention keys/values and mask, then the first token."""
        buf.cross_mask.copy_(torch.where(buf.mask, 0.0, self.neg).to(self.dtype).view_as(buf.cross_mask))
        # a 4-D additive mask is used as given (Hugging Face's own builder copies a host scalar: not capturable)
        enc = self.model.encoder(input_ids=buf.ids, attention_mask=buf.cross_mask).last_hidden_state
        for i, block in enumerate(self.blocks):
            att = block.layer[1].EncDecAttention
            buf.cross_k[i].copy_(self._heads(att.k(enc)))
            buf.cross_v[i].copy_(self._heads(att.v(enc)))
        for k in buf.self_k + buf.self_v:
            k.zero_()
        buf.token.fill_(self.cfg.decoder_start_token_id)
        buf.out.fill_(self.pad)
        buf.done.zero_()
        buf.t.zero_()
        self._step(buf)

    def _step(self, buf: _Buffers) -> None:
        """Feeds buf.token at position buf.t; writes the greedy token, EOS state and the next feed in place.
        Fixed shapes, no host syncs."""
        steps = buf.out.shape[1]
        bias = self._self_bias(steps).index_select(2, buf.t)  # [1, H, 1, T]
        h = self.model.decoder.embed_tokens(buf.token).unsqueeze(1)  # [b, 1, D]
        for i, block in enumerate(self.blocks):
            h = self._layer(block, h, buf.t, bias, buf.self_k[i], buf.self_v[i], buf.cross_k[i], buf.cross_v[i],
                            buf.cross_mask)
        h = self.model.decoder.final_layer_norm(h)
        if self.scale:
            h = h * (self.cfg.d_model ** -0.5)
        nxt = torch.where(buf.done, self.pad, self.model.lm_head(h)[:, 0].argmax(-1))
        buf.out.index_copy_(1, buf.t, nxt.unsqueeze(1))
        buf.done |= nxt == self.eos
        buf.token.copy_(nxt)
        buf.t.add_(1)

    # ---- per batch ----

    def _load(self, buf: _Buffers, ids: torch.Tensor, mask: torch.Tensor) -> None:
        """The batch, right-padded into the bucket's rows and columns."""
        n, s = ids.shape
        buf.ids.fill_(self.pad)
        buf.mask.zero_()
        buf.ids[:n, :s] = ids
        buf.mask[:n, :s] = mask.bool()
        buf.mask[n:, 0] = True  # padding rows attend to one key: finite, and discarded
