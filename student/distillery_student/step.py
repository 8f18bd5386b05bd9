"""One optimizer step of the trainer (Stepper): precision, strategy wrapping, micro-batches, the optimizer and
schedule, and the state a checkpoint holds. train.py drives it; bench/train_step.py times the same object.
"""

from __future__ import annotations

import gc
import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from . import flex_t5, packing
from .decoding import compiler_missing
from . import lora as lora_mod
from .graphs import PICK_MULTIPLE, GraphedSteps
from .microbatch import MEMORY_FRACTION, activation_bytes_per_token, logit_bytes_per_target, shape_of, \
    split_by_bisection, split_by_budget, split_even, static_bytes
from .modeling import Encoder, Row, TaskLosses, combine_losses, to_device
from .parallel import Dist, full_state, gradient_sync, load_full_model_state, load_full_state, sharded, wrap
from .precision import MasterWeights

log = logging.getLogger("distillery_student")

BF16_MASTER = "master"  # bf16 weights, fp32 master weights and optimizer state (the default on a GPU)
BF16_AUTOCAST = "autocast"  # fp32 weights under bf16 autocast


@dataclass
class StepOptions:
    strategy: str = "DDP"
    bf16: bool = False  # bf16 compute (a GPU with precision bf16/auto)
    bf16_impl: str = BF16_MASTER
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    concat_tasks: bool | None = None  # both tasks in one forward; None: one per task under CUDA graphs, else both
    compile: bool = False  # torch.compile each transformer block (compile_blocks); with or without CUDA graphs
    cuda_graphs: bool = False  # forward+backward as CUDA graphs per batch shape (one GPU process; graphs.py)
    activation_checkpointing: bool = False
    memory_bytes: float = 0.0  # the card's memory for the automatic micro-batch budget; 0: no budget
    flex_attention: bool = False  # T5 attention through torch's FlexAttention in training (flex_t5.py; GPU only)
    pack_length: int = 0  # pack each micro-batch into rows of about this many tokens (packing.py); 0: pad


@dataclass(frozen=True)
class CompileCase:
    """What compiled_blocks_wanted weighs: the run's model, device and parallelism."""

    model_type: str  # the student's config.model_type: "t5" was measured (not BART, not mT5)
    device: str  # cuda | cpu
    processes: int  # the world size
    fsdp: bool  # FSDP shards the model over those processes
    lora: bool
    checkpointing: bool  # activation checkpointing


def compiled_blocks_wanted(flag: bool, spec: bool, case: CompileCase) -> tuple[bool, str]:
    """Whether train() compiles the transformer blocks, and why (for the log). Never when FSDP shards the model
    over several processes (its wrapped blocks were not measured compiled). The flag --compile forces it
    otherwise. training.compile turns it on only where it was measured: full fine-tuning of a T5 student in one
    process on a GPU, without activation checkpointing, in an image with a C compiler for Triton (without one
    the first step fails)."""
    if not (flag or spec):
        return False, "off"
    if case.fsdp:
        return False, "off: not when FSDP shards the model over several processes"
    if flag:
        return True, "on (--compile)"
    why_not = ("training.compile applies on a GPU" if case.device != "cuda" else
               "training.compile was measured for T5 students only" if case.model_type != "t5" else
               "training.compile was measured in one process only" if case.processes > 1 else
               "training.compile was not measured with LoRA" if case.lora else
               "training.compile was not measured with activation checkpointing" if case.checkpointing else
               compiler_missing())
    return (False, f"off: {why_not}") if why_not else (True, "on (training.compile)")


def compile_blocks(model: nn.Module) -> list[nn.Module]:
    """torch.compile every transformer block in place (regional compilation): the blocks of a stack share one
    compiled code, so a t5-base compiles in about 20 s on an H200 (the whole loss module did not within 50 s),
    and shapes stay symbolic (dynamic) so the padded lengths do not recompile. Inductor fuses what surrounds
    the matrix products (norms, the attention bias, mask, softmax and dropout, residuals): 1.38x (t5-base) and
    1.31x (t5-large) the step with CUDA graphs alone (docs/benchmarks.md). Returns the compiled blocks."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    blocks = [b for stack in model.modules()
              if isinstance(stack, nn.ModuleList) and len(stack) > 1 and len({type(m) for m in stack}) == 1
              for b in stack]
    for block in blocks:
        if getattr(block, "_compiled_call_impl", None) is None:  # once: a server's lanes share the model
            block.compile(dynamic=True)
    return blocks


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)

    return f


class Stepper:
    """Owns the (wrapped) model, optimizer and schedule; `step` runs one optimizer step over record rows."""

    def __init__(self, model: nn.Module, arch: str, enc: Encoder, device: torch.device, dd: Dist,
                 o: StepOptions, lr_fn: Callable[[int], float]):
        self.model, self.arch, self.enc, self.device, self.dd, self.o = model, arch, enc, device, dd, o
        self.sharded = sharded(o.strategy, dd)
        self.lora = lora_mod.is_lora(model)
        if o.activation_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if self.lora:
                model.enable_input_require_grads()
        self.flex = self._use_flex() if o.flex_attention else 0  # before compile_blocks: traced into the blocks
        enc.pack_length = 0 if self.flex else o.pack_length  # flex_t5 masks padding only
        self.shape = shape_of(model.config, eager_attention=arch == "seq2seq" and not self.flex)
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        if not self.sharded:  # FSDP moves each block to the GPU as it shards it: the whole model never is
            model.to(device)
        self.master = MasterWeights(model) if o.bf16 and not self.sharded and o.bf16_impl == BF16_MASTER else None
        self.autocast = o.bf16 and not self.sharded and o.bf16_impl == BF16_AUTOCAST
        self.compiled = compile_blocks(model) if o.compile and not self.sharded else []
        self.losses = TaskLosses(model, arch)
        self.forward = wrap(self.losses, model, o.strategy, dd, device, o.bf16)
        self.params = self.master.params if self.master else [p for p in self.forward.parameters() if p.requires_grad]
        self.optim = torch.optim.AdamW(self.params, lr=o.learning_rate, weight_decay=o.weight_decay,
                                       fused=device.type == "cuda")
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim, lr_fn)
        self.graphs = self._graphs() if o.cuda_graphs else None
        # one forward pass per task pads label targets less; eagerly its extra launches cost more than that
        # saves, as a CUDA graph they cost nothing (docs/benchmarks.md: ours-sep, ours-graphs-sep)
        self.concat = o.concat_tasks if o.concat_tasks is not None else self.graphs is None

    def _use_flex(self) -> int:
        """T5 attention through FlexAttention (flex_t5.py): the scores are never materialised, so the memory
        model drops them. Only a T5 student on a GPU: torch has no FlexAttention backward on the CPU. Returns
        the number of attention modules switched."""
        if self.arch != "seq2seq" or self.device.type != "cuda":
            log.warning("flex attention: only for T5 students on a GPU; %s on %s keeps its attention", self.arch,
                        self.device.type)
            return 0
        n = flex_t5.use_flex_attention(self.model)
        traced = self.o.compile and not self.sharded
        log.info("flex attention: %d T5 attention modules switched for training (%s)", n,
                 "traced into the compiled blocks" if traced else "flex_attention compiled on its own")
        return n

    def _graphs(self) -> GraphedSteps | None:
        """CUDA graphs where they can run and were measured: a T5 student in one process on a GPU, without
        autocast or checkpointing. (Decoder-only students run SDPA's larger kernels and were not measured.)"""
        o = self.o
        if self.device.type != "cuda" or self.dd.enabled or self.autocast or o.activation_checkpointing:
            return None
        if self.arch != "seq2seq":
            return None
        self.enc.pick_multiple = PICK_MULTIPLE
        for p in self.model.parameters():
            if p.requires_grad:
                p.grad = torch.zeros_like(p)  # graphs accumulate into these very tensors
        return GraphedSteps(self._forward_backward, o.memory_bytes)

    def eager(self) -> Any:
        """A context in which compiled blocks run eagerly: generation (validation, evaluation) would otherwise
        recompile them for its own shapes and modes (no grad, a KV cache, fp32 after export)."""
        return torch.compiler.set_stance("force_eager") if self.compiled else nullcontext()

    def release_graphs(self) -> None:
        """Drops the CUDA graphs and hands their memory pool back (after the last step)."""
        if self.graphs is None:
            return
        log.info("CUDA graphs: %d batch shapes captured, %d steps replayed, %d run eagerly",
                 self.graphs.captures, self.graphs.replays, self.graphs.eager)
        self.graphs = None
        gc.collect()
        torch.cuda.empty_cache()

    # ---- micro-batches ----

    def padded_tokens(self, rows: Sequence[Row]) -> int:
        """Tokens of the padded tensors of one concatenated micro-batch (the memory the step grows with)."""
        r = self.enc._round
        if self.arch == "seq2seq":
            return len(rows) * (r(max(len(x.source) for x in rows)) + r(max(len(x.target) for x in rows)))
        return len(rows) * r(max(len(x) for x in rows))

    def micro_batches(self, records: Sequence[Sequence[Row]], fixed: int) -> list[list[Sequence[Row]]]:
        """One rank's records split into micro-batches: `fixed` records each, or by the memory budget."""
        if fixed > 0:
            chunks = [list(records[i : i + fixed]) for i in range(0, len(records), fixed)]
        elif self.o.memory_bytes > 0:
            split = split_by_bisection if self.enc.pack_length else split_by_budget  # packing a chunk costs more
            chunks = split(records, lambda c: self.memory_cost(c), self.budget_bytes())
        else:
            chunks = [list(records)]
        if self.sharded:  # every rank must run as many forward passes (each one all-gathers)
            n = int(self.dd.all_max(torch.tensor([len(chunks)], device=self.device)).item())
            least = -int(self.dd.all_max(torch.tensor([-len(records)], device=self.device)).item())
            chunks = split_even(records, min(n, least)) if n != len(chunks) else chunks
        return chunks

    def memory_cost(self, records: Sequence[Sequence[Row]]) -> float:
        rows = [r for rs in records for r in rs]
        targets = sum(len(r.target) for r in rows) * logit_bytes_per_target(self.shape)
        if self.enc.pack_length:
            return self._packed_activation_bytes(rows) + targets
        seq = max(len(r.source) for r in rows) if self.arch == "seq2seq" else max(len(r) for r in rows)
        per_token = activation_bytes_per_token(self.shape, self.enc._round(seq), self.o.activation_checkpointing)
        return self.padded_tokens(rows) * per_token + targets

    def _packed_activation_bytes(self, rows: Sequence[Row]) -> float:
        """The packed tensors' activations (packing.widths, exact): T5's encoder tokens attend over the source
        row, its decoder tokens over the target and source rows (activation_bytes_per_token counts one stack's
        blocks per token); a decoder-only model's tokens over their row."""
        n, s, t = packing.widths(rows, self.enc.pack_length, self.enc._round, causal=self.arch != "seq2seq")
        ckpt = self.o.activation_checkpointing
        per = activation_bytes_per_token
        return n * s * per(self.shape, s, ckpt) + n * t * per(self.shape, s + t, ckpt)

    def budget_bytes(self) -> float:
        """The activation memory one micro-batch may use. Under CUDA graphs half of it: the graphs' pool keeps
        the largest captured shape's activations while a shape seen for the first time runs eagerly beside
        it, in the ordinary pool (graphs.py)."""
        static = static_bytes(self.trainable, self.frozen, self.dd.world, self.sharded)
        budget = self.o.memory_bytes * MEMORY_FRACTION - static
        return budget / 2 if self.graphs is not None else budget

    # ---- the step ----

    def collate(self, rows: Sequence[Row]) -> list[dict[str, torch.Tensor]]:
        return [to_device(b, self.device) for b in self.enc.collate_tasks(rows, self.concat)]

    def step(self, chunks: Sequence[Sequence[Sequence[Row]]], norm: torch.Tensor, weight: float) -> torch.Tensor:
        """Forward and backward over each micro-batch (records -> their task rows), then one optimizer step.
        Returns [loss, label loss, rationale loss] of this rank's share (norm holds the whole step's counts)."""
        parts = torch.zeros(3, device=self.device)
        for i, chunk in enumerate(chunks):
            rows = [r for rs in chunk for r in rs]
            if self.graphs is not None:
                for b in self.enc.collate_tasks(rows, self.concat):
                    parts += self.graphs(b, norm, weight)
                continue
            with gradient_sync(self.forward, self.o.strategy, self.dd, last=i == len(chunks) - 1):
                parts += self._forward_backward(self.collate(rows), norm, weight)
        if self.master:
            self.master.grads_to_master(keep=self.graphs is not None)
        if self.o.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.o.max_grad_norm)
        self.optim.step()
        self.sched.step()
        self.optim.zero_grad(set_to_none=self.graphs is None or self.master is not None)
        if self.master:
            self.master.master_to_model()
        return parts

    def _forward_backward(self, batch: dict[str, torch.Tensor] | list[dict[str, torch.Tensor]], norm: torch.Tensor,
                          weight: float) -> torch.Tensor:
        """Forward and backward of one micro-batch (one batch or a list of per-task batches); returns [loss,
        label loss, rationale loss]. The same code runs eagerly and inside a CUDA graph."""
        with torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else nullcontext():
            sums = self.forward(batch if isinstance(batch, list) else [batch])
        lp = combine_losses(sums, weight, norm)
        (lp.loss * self.dd.world).backward()  # DDP and FSDP average gradients over the ranks
        return torch.stack([lp.loss.detach(), lp.label_loss.detach(), lp.rationale_loss.detach()])

    # ---- state ----

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds (complete on rank 0; collective under FSDP). With LoRA only the adapter."""
        if self.sharded:
            model_state, optim_state = full_state(self.forward, self.optim)
            model_state = {k.removeprefix("model."): v for k, v in model_state.items()}
        else:
            model_state, optim_state = self.model.state_dict(), self.optim.state_dict()
        if self.lora:
            model_state = lora_mod.adapter_state(self.model, model_state)
        state = {"model": model_state, "optimizer": optim_state, "scheduler": self.sched.state_dict()}
        if self.master:
            state["master"] = self.master.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.sharded:
            load_full_state(self.forward, self.optim, {f"model.{k}": v for k, v in state["model"].items()},
                            state["optimizer"])
        else:
            self.model.load_state_dict(state["model"], strict=not self.lora)
            self.optim.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.master and "master" in state:
            self.master.load_state_dict(state["master"])

    def weights(self) -> dict[str, Any] | None:
        """The model's weights alone (model selection): fp32 master values where kept, the adapters alone with
        LoRA. On CPU, complete on rank 0 (collective under FSDP), None elsewhere."""
        if self.sharded:
            full, _ = full_state(self.forward, None)
            return {k.removeprefix("model."): v for k, v in full.items()} if self.dd.rank == 0 else None
        if self.dd.rank != 0:
            return None
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        if self.master:
            state.update({n: m.detach().to("cpu", copy=True) for n, m in zip(self.master.names, self.master.params)})
        return lora_mod.adapter_state(self.model, state) if self.lora else state

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Puts back weights taken by `weights` (every rank, e.g. the best ones before export)."""
        if self.sharded:
            load_full_model_state(self.forward, {f"model.{k}": v for k, v in weights.items()})
            return
        self.model.load_state_dict(weights, strict=not self.lora)
        if self.master:
            self.master.load_state_dict(weights)

    def eval_model(self, weights: dict[str, Any] | None, reload: Callable[[], nn.Module]) -> nn.Module | None:
        """The model to score on rank 0 (None elsewhere): the training model itself, or under FSDP a plain copy
        made by `reload` holding `weights` (from `weights()`)."""
        if self.dd.rank != 0:
            return None
        if not self.sharded:
            return self.model
        assert weights is not None
        plain = reload()
        plain.load_state_dict(weights)
        return plain.to(self.device)

    def export(self, reload: Callable[[], nn.Module]) -> nn.Module | None:
        """The trained model as a plain fp32 Hugging Face model with LoRA merged, on rank 0 (None elsewhere;
        collective under FSDP, where rank 0 loads the full state into a fresh copy made by `reload`)."""
        if self.sharded:
            full, _ = full_state(self.forward, None)
            if self.dd.rank != 0:
                return None
            plain = reload()
            plain.load_state_dict({k.removeprefix("model."): v for k, v in full.items()})
            return plain.to(self.device)
        if self.dd.rank != 0:
            return None
        model = self.model
        if self.master:
            model.float()
            with torch.no_grad():
                params = dict(model.named_parameters())
                for name, m in zip(self.master.names, self.master.params):
                    params[name].copy_(m)
        if self.o.activation_checkpointing:
            model.gradient_checkpointing_disable()
        return lora_mod.merged(model) if self.lora else model

