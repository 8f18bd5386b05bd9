"""bf16 weights with fp32 master weights: the gradients move to the masters, and the model's own gradient
tensors are dropped, or kept and zeroed in place when CUDA graphs write into them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from distillery_student.precision import MasterWeights


@pytest.mark.parametrize("keep", [False, True])
def test_gradients_reach_the_masters(keep: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    master = MasterWeights(model)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    for p in model.parameters():  # what the Stepper does before capturing graphs
        p.grad = torch.zeros_like(p) if keep else None
    tensors = [p.grad for p in model.parameters()]
    model(torch.randn(5, 4, dtype=torch.bfloat16)).sum().backward()
    expected = [p.grad.float().clone() for p in model.parameters()]
    master.grads_to_master(keep=keep)
    for m, g in zip(master.params, expected):
        torch.testing.assert_close(m.grad, g)
    for p, t in zip(model.parameters(), tensors):
        if keep:
            assert p.grad is t and not p.grad.any()  # the same tensor, zeroed
        else:
            assert p.grad is None
