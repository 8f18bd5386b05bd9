"""Data parallelism: the process group, and the strategy that wraps the loss module (training.strategy).

DDP replicates the model and all-reduces gradients. FSDP (FSDP2, `torch.distributed.fsdp.fully_shard`) shards
parameters, gradients and optimizer state over the ranks, one unit per transformer block (the model's
`_no_split_modules`), with fp32 sharded parameters and bf16 compute on a GPU (its MixedPrecisionPolicy).
Under FSDP, checkpoints hold full (unsharded) state dicts, gathered and loaded through
torch.distributed.checkpoint.state_dict, so the checkpoint layout (one state.pt) is the same as under DDP.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager, NoReturn

import torch
import torch.distributed as dist
from torch import nn

STRATEGY_DDP = "DDP"
STRATEGY_FSDP = "FSDP"
STRATEGIES = (STRATEGY_DDP, STRATEGY_FSDP)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t)
        return t

    def all_max(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t


def init_distributed(device_type: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown() -> None:
    """Destroys the process group, if one was made (NCCL wants it before exit). It does not stop gloo's threads
    while DDP still holds the group: a torchrun rank then ends through exit_rank."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_rank(code: int) -> NoReturn:
    """Ends a torchrun rank's process with `code`, skipping interpreter finalization.

    Even after destroy_process_group, gloo's worker threads live on while a module (DDP) holds the group, and one
    may still be releasing a finished collective whose tensors Python made, which takes the GIL. In finalization
    that thread is unwound instead and the process aborts ("terminate called without an active exception"), so
    a run that had finished fails: 5 of 130 two-rank CPU runs beside 2 busy loops (a core dump showed the gloo
    thread in ~AsyncWork). pytorch/pytorch#179291, a closed pull request, describes the same race for a run
    that never destroys its group. By now everything is written; the logs and standard streams are flushed
    here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def sharded(strategy: str, dd: Dist) -> bool:
    """FSDP shards only with more than one rank; one process trains as under DDP."""
    return strategy == STRATEGY_FSDP and dd.enabled


def block_modules(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks, one FSDP unit each: modules whose class the model lists in _no_split_modules."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no transformer block class (_no_split_modules) to shard")
    return blocks


def wrap(losses: nn.Module, model: nn.Module, strategy: str, dd: Dist, device: torch.device,
         bf16: bool) -> nn.Module:
    """The module the step calls: the loss module itself (one process), DDP over it, or FSDP-sharded in place
    (blocks first, then the loss module as the root that holds embeddings and the output layer)."""
    if sharded(strategy, dd):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 \
            else MixedPrecisionPolicy()
        mesh = init_device_mesh(device.type, (dd.world,))
        # the model arrives on the CPU: fully_shard moves one block at a time to the device and keeps only
        # this rank's shard there, so a model that does not fit one GPU can still be trained
        for block in block_modules(model):
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(losses, mesh=mesh, mp_policy=policy)
        return losses
    if dd.enabled:
        return nn.parallel.DistributedDataParallel(losses, device_ids=[device.index] if device.type == "cuda" else None)
    return losses


def gradient_sync(forward: nn.Module, strategy: str, dd: Dist, last: bool) -> ContextManager[Any]:
    """Gradient accumulation: only the last micro-batch of a step synchronises gradients."""
    if not dd.enabled:
        return nullcontext()
    if sharded(strategy, dd):
        forward.set_requires_gradient_sync(last)  # type: ignore[operator]
        return nullcontext()
    return nullcontext() if last else forward.no_sync()  # type: ignore[operator]


def full_state(losses: nn.Module, optim: torch.optim.Optimizer | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full (unsharded, CPU) model and optimizer state dicts of an FSDP-sharded loss module; collective, the
    result is complete on rank 0. Keys are those of the loss module ("model.<name>")."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions, get_model_state_dict, get_state_dict)

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    if optim is None:
        return get_model_state_dict(losses, options=opts), {}
    return get_state_dict(losses, optim, options=opts)


def load_full_state(losses: nn.Module, optim: torch.optim.Optimizer, model_state: dict[str, Any],
                    optim_state: dict[str, Any]) -> None:
    """Loads full state dicts (every rank read the checkpoint) into the sharded loss module and optimizer."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(losses, optim, model_state_dict=model_state, optim_state_dict=optim_state,
                   options=StateDictOptions(full_state_dict=True))


def load_full_model_state(losses: nn.Module, model_state: dict[str, Any]) -> None:
    """Loads a full model state dict (every rank read it) into the sharded loss module; keys "model.<name>"."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(losses, model_state, options=StateDictOptions(full_state_dict=True))
