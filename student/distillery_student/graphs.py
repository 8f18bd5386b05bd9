"""The forward and backward of a micro-batch replayed as CUDA graphs, one graph per padded batch shape.

Why: on variable-length data a T5 step is bound by the host. Hundreds of small kernels per layer (norms,
biases, casts, attention pieces) are each launched from Python, and the GPU waits for them
(docs/benchmarks.md). A CUDA graph records the kernels of one forward+backward once and launches them all with
a single call.

How: a graph needs fixed shapes and fixed addresses. The Encoder rounds every length (pad_multiple) and the
number of picked target positions (pick_multiple), so an epoch has a few dozen shapes. A shape is captured the
second time it is seen: that batch runs eagerly (the warm-up a capture needs, and its real step), then its
kernels are recorded. Every later batch of that shape copies its tensors into the graph's static inputs and
replays. All
graphs share one memory pool, since they never run at the same time. What outlives a replay (the
gradients and the static inputs) is allocated outside the pool. The model's `.grad` tensors must therefore
keep their identity: the Stepper zeroes them in place instead of setting them to None.

Only one process uses this: no DDP or FSDP collectives, no activation checkpointing, no autocast. A shape
whose capture fails (an op that waits for the GPU, say) turns graphs off for the run, and the step goes on eagerly.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

import torch

from .contract import CUDA_GRAPHS_OFF, CUDA_GRAPHS_ON
from .modeling import to_device

log = logging.getLogger("distillery_student")

PICK_MULTIPLE = 256  # picked target positions are padded to this many (fewer shapes, a little lm_head work)
RELEASE_FRACTION = 0.5  # cached memory above this share of the memory limit is handed back before a capture
MAX_GRAPHS = 512  # shapes beyond this run eagerly (a run whose lengths never repeat gains nothing)

T = TypeVar("T")
Body = Callable[[dict[str, torch.Tensor], torch.Tensor, float], torch.Tensor]


def wanted(flag: str, spec: str) -> tuple[bool, str]:
    """Whether a job replays its steps as CUDA graphs, and why (for the log). `off` in train.json
    (training.cudaGraphs) or in the flag wins; the flag `on` forces them; `auto` trains eagerly. The Stepper
    alone is faster with graphs (1.59x hf-fair against ours-eager's 1.34x, bench/train_step.py), but through
    train() they did not shorten a measured job: on an H200 a 120-step t5-base job took 28.8 s with graphs
    against 21.2 s eagerly, and a 500-step one 85.2 s against 75.4 s, at the same steady rate (6.81 against
    7.02 steps/s; docs/benchmarks.md). Whether graphs apply to the model at all is the Stepper's call."""
    if CUDA_GRAPHS_OFF in (flag, spec):
        return False, "turned off"
    if flag == CUDA_GRAPHS_ON:
        return True, "turned on"
    return False, "off (auto: they did not shorten a measured job through the trainer's loop; --cuda-graphs on forces them)"


class GraphedSteps:
    """Runs `body(batch, norm, weight)` (forward, backward, returns a small tensor of losses) as a CUDA graph per
    shape and weight. The model's gradient tensors must exist and keep their identity. A shape is captured
    the second time it is seen: a shape that never comes back costs nothing."""

    def __init__(self, body: Body, memory_limit: float = 0.0):
        """memory_limit: the bytes the run may use (train --memory-gb); 0, or more than the card: the card's."""
        self.body = body
        card = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        self.memory_limit = min(memory_limit or card, card)
        self.pool = torch.cuda.graph_pool_handle()
        self.side = torch.cuda.Stream()  # the warm-ups' and captures' stream (cuBLAS keeps a workspace per stream)
        self.graphs: dict[tuple, _Graph] = {}
        self.seen: dict[tuple, int] = {}
        self.enabled = True
        self.replays = self.eager = 0

    @property
    def captures(self) -> int:
        return len(self.graphs)

    def __call__(self, batch: dict[str, torch.Tensor], norm: torch.Tensor, weight: float) -> torch.Tensor:
        """The losses of one batch (CPU tensors from Encoder.collate), gradients accumulated; a new tensor."""
        key = (weight, *((k, tuple(v.shape), v.dtype) for k, v in sorted(batch.items())))
        graph = self.graphs.get(key)
        if graph is not None:
            self.replays += 1
            return graph.replay(batch, norm)
        if len(self.seen) > 8 * MAX_GRAPHS:  # lengths that never repeat: forget them rather than grow
            self.seen.clear()
        self.seen[key] = self.seen.get(key, 0) + 1
        self.eager += 1
        if not self.enabled or self.seen[key] < 2 or len(self.graphs) >= MAX_GRAPHS:
            return self.body(to_device(batch, "cuda"), norm, weight).clone()
        return self._capture(key, batch, norm, weight)

    def _capture(self, key: tuple, batch: dict[str, torch.Tensor], norm: torch.Tensor, weight: float) -> torch.Tensor:
        """This batch's step, run eagerly on a side stream (the warm-up a capture needs), then recorded: the
        recording runs nothing, so the gradients are this batch's alone."""
        inputs, static_norm = to_device(batch, "cuda"), norm.detach().clone()
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = self.body(inputs, static_norm, weight).clone()
        torch.cuda.current_stream().wait_stream(self.side)
        # the warm-up's activations stay cached in the ordinary pool, which the graphs' pool cannot use (and a
        # capture cannot hand back what it needs): where the memory is getting full, hand them back, or each
        # pool keeps the largest shape's activations (twice the memory; it ran out on a card, and with 80 GiB of
        # an H200 while this compared against the whole card). Not always: that waits for the GPU, and the
        # next new shape's eager step must allocate it all again
        if torch.cuda.memory_reserved() > RELEASE_FRACTION * self.memory_limit:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        try:
            self.graphs[key] = _Graph(lambda b, n: self.body(b, n, weight), inputs, static_norm, self.pool, self.side)
        except RuntimeError as e:  # an op in the model that cannot be captured: the run goes on eagerly
            log.warning("CUDA graphs off for this run: capturing a %s batch failed: %s", _describe(key), e)
            self.enabled = False
            torch.cuda.synchronize()
        return out


def record(fn: Callable[[], T], pool: Any, stream: torch.cuda.Stream,
           mode: str = "global") -> tuple[torch.cuda.CUDAGraph, T]:
    """fn's kernels recorded (not run) into a new CUDA graph on `stream`, and fn's result. Unlike
    `torch.cuda.graph`, which waits for the GPU and empties the device's and the page-locked host memory's caches
    first (then the next eager step, and every page-locked copy after it, must allocate again), this only
    orders the stream after the work queued so far. fn must make no host syncs. mode "thread_local" lets other
    threads use CUDA during the capture (the server's other lanes); "global" makes any such use an error."""
    graph = torch.cuda.CUDAGraph()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        graph.capture_begin(pool=pool, capture_error_mode=mode)
        try:
            out = fn()
        except BaseException:
            try:
                graph.capture_end()
            except RuntimeError:
                pass  # the capture was already invalidated by what fn did
            raise
        graph.capture_end()
    torch.cuda.current_stream().wait_stream(stream)
    return graph, out


class _Graph:
    """One captured shape: its static inputs (filled before each replay), the graph, and its output."""

    def __init__(self, body: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor],
                 inputs: dict[str, torch.Tensor], norm: torch.Tensor, pool: Any, stream: torch.cuda.Stream):
        self.inputs, self.norm = inputs, norm
        self.graph, self.out = record(lambda: body(self.inputs, self.norm), pool, stream)

    def replay(self, batch: dict[str, torch.Tensor], norm: torch.Tensor) -> torch.Tensor:
        for k, v in batch.items():
            self.inputs[k].copy_(v.pin_memory(), non_blocking=True)  # page-locked: the copy does not wait
        self.norm.copy_(norm, non_blocking=True)
        self.graph.replay()
        return self.out.clone()  # the pool's memory is the next graph's scratch space


def _describe(key: tuple) -> str:
    return ", ".join(f"{k} {list(shape)}" for k, shape, _ in key[1:] if k in ("input_ids", "labels"))
