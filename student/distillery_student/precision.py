"""bf16 weights with fp32 master weights and fp32 optimizer state (single process and DDP on a GPU).

The model's parameters are bf16, so the forward and backward run without autocast's per-op casts (thousands
of small copy kernels per step for T5, which made the step host-bound). The optimizer steps fp32 copies of
the trainable parameters ("master weights"): small updates are not lost to bf16 rounding, and the optimizer
state stays fp32. After each step the masters are copied back into the bf16 parameters.
FSDP does the same through its MixedPrecisionPolicy (parallel.py), so it does not use this class.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class MasterWeights:
    """fp32 copies of a model's trainable parameters, taken before the model is cast to bf16; the optimizer is
    built over `params`."""

    def __init__(self, model: nn.Module):
        self.names: list[str] = []
        self.model_params: list[nn.Parameter] = []
        self.params: list[torch.Tensor] = []
        for name, p in model.named_parameters():
            if p.requires_grad:
                self.names.append(name)
                self.model_params.append(p)
                self.params.append(p.detach().float().clone().requires_grad_(True))
        model.to(torch.bfloat16)

    def grads_to_master(self, keep: bool = False) -> None:
        """After backward: the bf16 gradients, as fp32, become the masters' gradients. keep: the model's gradient
        tensors are zeroed in place rather than dropped (CUDA graphs write into them; graphs.py)."""
        for p, m in zip(self.model_params, self.params):
            m.grad = None if p.grad is None else p.grad.float()
            if not keep:
                p.grad = None
        if keep:
            torch._foreach_zero_([p.grad for p in self.model_params if p.grad is not None])  # type: ignore[attr-defined]

    @torch.no_grad()
    def master_to_model(self) -> None:
        """After the optimizer step: the masters, rounded to bf16, become the model's parameters."""
        torch._foreach_copy_([p.data for p in self.model_params], self.params)  # type: ignore[attr-defined]
        for m in self.params:
            m.grad = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: m.detach().clone() for n, m in zip(self.names, self.params)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n, m in zip(self.names, self.params):
            m.copy_(state[n])
        self.master_to_model()
