"""FlexAttention for T5 training (flex_t5.py) against T5's eager attention: losses and every gradient on
right-padded batches of different lengths, the masks it builds, eval mode, dropout, compiled blocks.

torch refuses a FlexAttention backward on the CPU at its entry (`_validate_device`); its eager path (its
reference implementation, run when not compiled) computes the gradients on any device, so these tests
lift that check to compare the gradients here. Eager flex materialises the scores: correctness, not speed.
"""

from __future__ import annotations

import copy
import logging
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import torch
import torch.nn.attention.flex_attention as torch_flex
from torch import nn

from distillery_student import flex_t5
from distillery_student.modeling import IGNORE, Encoder, Row, TaskLosses, combine_losses
from distillery_student.parallel import Dist
from distillery_student.step import StepOptions, Stepper, compile_blocks

BIAS = "relative_attention_bias"
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")  # meant, here


def tiny_t5(dropout: float = 0.0) -> nn.Module:
    """A random T5 as conftest's t5_dir, built in memory with eager attention (as load_student loads one)."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=384, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
                   dropout_rate=dropout, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   feed_forward_proj="gated-gelu", tie_word_embeddings=False, attn_implementation="eager")
    return T5ForConditionalGeneration(cfg).train()


@pytest.fixture
def cpu_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    """flex's backward allowed on the CPU (module docstring)."""
    monkeypatch.setattr(torch_flex, "_validate_device", lambda *a: None)


@pytest.fixture
def flex_calls(cpu_backward: None, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts flex_attention's calls (eagerly: a compiled block would guard on the count)."""
    calls: list[int] = []
    real = flex_t5.flex_attention

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(flex_t5, "flex_attention", counted)
    return calls


def pair(dropout: float = 0.0) -> tuple[nn.Module, nn.Module]:
    eager = tiny_t5(dropout)
    flex = copy.deepcopy(eager)
    assert flex_t5.use_flex_attention(flex) == 6  # 2 encoder self, 2 decoder self, 2 cross
    return eager, flex


def padded_batch() -> dict[str, torch.Tensor]:
    """Right-padded sources of 11, 7 and 3 tokens, targets of 5, 9 and 2."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 384, (3, 11), generator=g)
    mask = torch.zeros(3, 11, dtype=torch.long)
    labels = torch.randint(3, 384, (3, 9), generator=g)
    for row, (s, t) in enumerate([(11, 5), (7, 9), (3, 2)]):
        mask[row, :s] = 1
        labels[row, t:] = IGNORE
    return {"input_ids": ids * mask, "attention_mask": mask, "labels": labels}


def loss_and_grads(model: nn.Module, loss: Callable[[nn.Module], torch.Tensor]) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    value = loss(model)
    value.backward()
    return value.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def assert_same_training(eager: nn.Module, flex: nn.Module, loss: Callable[[nn.Module], torch.Tensor]) -> None:
    """Same loss and the same gradient for every parameter, relative_attention_bias included. A gradient's
    elements may differ by fp32 rounding at the tensor's scale (1e-5 of its largest element): the two paths sum
    in different orders, and by how much depends on the CPU's kernels (an AMD EPYC with AVX-512 differed by
    up to 3.8e-6 where the largest element was 2.45). A wrong mask or bias is off by far more."""
    le, ge = loss_and_grads(eager, loss)
    lf, gf = loss_and_grads(flex, loss)
    torch.testing.assert_close(lf, le, rtol=1e-6, atol=1e-6)
    assert ge.keys() == gf.keys() == {n for n, p in eager.named_parameters()}
    biases = [n for n in ge if BIAS in n]
    assert len(biases) == 2 and all(ge[n].abs().sum() > 0 for n in biases)
    for n in ge:
        scale = float(ge[n].abs().max())
        torch.testing.assert_close(gf[n], ge[n], rtol=1e-4, atol=max(1e-6, 1e-5 * scale), msg=n)


def hf_loss(batch: dict[str, torch.Tensor]) -> Callable[[nn.Module], torch.Tensor]:
    return lambda m: m(**batch).loss


def test_hf_loss_and_gradients_match_eager(flex_calls: list[int]) -> None:
    """model(labels=...): 2-D padding masks, HF's own causal decoder mask."""
    eager, flex = pair()
    assert_same_training(eager, flex, hf_loss(padded_batch()))
    assert len(flex_calls) == 6


def test_decoder_padding_mask_matches_eager(flex_calls: list[int]) -> None:
    """A 2-D decoder_attention_mask: the causal rule and the padding together."""
    eager, flex = pair()
    batch = padded_batch()
    batch["decoder_attention_mask"] = (batch["labels"] != IGNORE).long()
    assert_same_training(eager, flex, hf_loss(batch))
    assert len(flex_calls) == 6


def test_task_losses_match_eager(flex_calls: list[int]) -> None:
    """The trainer's own loss (TaskLosses: 4-D additive masks, picked target positions), both tasks in one
    right-padded batch of different source and target lengths."""
    eager, flex = pair()
    enc = Encoder(SimpleNamespace(pad_token_id=0, eos_token_id=1), "seq2seq", 64, 64)
    g = torch.Generator().manual_seed(2)
    rows = [Row(torch.randint(3, 384, (s,), generator=g).tolist() + [1],
                torch.randint(3, 384, (t,), generator=g).tolist() + [1], task)
            for s, t, task in [(12, 3, 0), (5, 14, 1), (8, 6, 1), (2, 1, 0)]]
    batches = enc.collate_tasks(rows, concat=True)
    assert_same_training(eager, flex, lambda m: combine_losses(TaskLosses(m, "seq2seq")(batches), 0.5).loss)
    assert len(flex_calls) == 6


def test_attention_dropout_is_skipped(flex_calls: list[int], caplog: pytest.LogCaptureFixture) -> None:
    """flex cannot drop attention probabilities: under flex T5's attention dropout is skipped (and logged), so
    a model whose attention modules have dropout trains as one without it; the other dropouts apply."""
    eager = tiny_t5()
    flex = copy.deepcopy(eager)
    for m in flex.modules():
        if hasattr(m, "relative_attention_num_buckets"):  # T5Attention
            m.dropout = 0.5
    with caplog.at_level(logging.WARNING, logger="distillery_student"):
        flex_t5.use_flex_attention(flex)
    assert "dropout (p=0.5) is skipped" in caplog.text
    assert_same_training(eager, flex, hf_loss(padded_batch()))


def test_eval_mode_runs_eager_attention(flex_calls: list[int]) -> None:
    """Validation and generation (eval mode, a KV cache) keep transformers' eager attention."""
    eager, flex = pair()
    eager.eval()
    flex.eval()
    batch = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(flex(**batch).logits, eager(**batch).logits, rtol=0, atol=0)
        kw = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "max_new_tokens": 6,
              "do_sample": False}
        assert torch.equal(flex.generate(**kw), eager.generate(**kw))
    assert not flex_calls


@pytest.mark.parametrize("form", ["none", "none-causal", "2d", "2d-causal", "4d-padding", "4d-causal", "4d-bool"])
def test_block_mask_keeps_what_the_mask_keeps(form: str) -> None:
    """Each mask form a stack can be given, as the BlockMask's element mask."""
    rows, q, kv = 3, 5, 6
    pad = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])
    future = torch.ones(q, kv, dtype=torch.bool).triu(1)
    low = torch.finfo(torch.float32).min
    masks: dict[str, tuple[torch.Tensor | None, bool, torch.Tensor]] = {
        "none": (None, False, torch.ones(rows, q, kv, dtype=torch.bool)),
        "none-causal": (None, True, ~future.expand(rows, q, kv)),
        "2d": (pad, False, pad.bool()[:, None, :].expand(rows, q, kv)),
        "2d-causal": (pad, True, pad.bool()[:, None, :] & ~future),
        "4d-padding": ((pad == 0).float()[:, None, None, :] * low, True, pad.bool()[:, None, :].expand(rows, q, kv)),
        "4d-causal": ((future.float() * low)[None, None], True, ~future.expand(rows, q, kv)),
        "4d-bool": ((pad.bool()[:, None, :] & ~future)[:, None], False, pad.bool()[:, None, :] & ~future),
    }
    mask, causal, want = masks[form]
    bm = flex_t5.block_mask(mask, rows, q, kv, causal, torch.device("cpu"))
    got = torch_flex.create_mask(bm.mask_mod, rows, 1, q, kv, device="cpu")[:, 0]
    assert torch.equal(got, want)


def test_block_mask_skips_the_causal_upper_tiles() -> None:
    """The point of a BlockMask: tiles above the diagonal are never computed (2 x 2 tiles of 128: 3 run)."""
    bm = flex_t5.block_mask(None, 1, 256, 256, True, torch.device("cpu"))
    assert bm.kv_num_blocks.flatten().tolist() == [1, 1]  # partial tiles per query tile: the diagonal one
    assert bm.full_kv_num_blocks.flatten().tolist() == [0, 1]  # full tiles: below the diagonal


def test_block_masks_make_no_host_sync() -> None:
    """A CUDA graph (graphs.py) cannot capture a host sync or a host-to-device copy, and the BlockMasks are
    made inside the captured step: made on the meta device, where reading any value fails, and without a
    tensor made from host data (lift_fresh), every form works."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen: set[str] = set()

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            self.seen.add(str(func))
            return func(*args, **(kwargs or {}))

    meta = torch.device("meta")
    pad = torch.ones(3, 300, dtype=torch.long, device=meta)
    additive = (pad == 0).float()[:, None, None, :] * torch.finfo(torch.float32).min
    with Ops() as ops:
        for mask, causal in [(None, False), (None, True), (pad, False), (pad, True), (additive, False),
                             (torch.zeros(1, 1, 300, 300, device=meta), True)]:
            bm = flex_t5.block_mask(mask, 3, 300, 300, causal, meta)
            assert bm.kv_num_blocks.shape[-1] == 3
    assert not [op for op in ops.seen if "lift_fresh" in op or "_local_scalar_dense" in op]


def test_compiled_blocks_trace_flex_without_recompiling(cpu_backward: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """step.compile_blocks (dynamic=True) traces flex into each block, whole (no graph break): losses and
    gradients as eager, and new padded lengths do not recompile. The backend here keeps what Dynamo captured
    and runs it eagerly: Dynamo traces and guards as for Inductor, but Inductor's CPU flex kernel fails to
    build with dynamic shapes in torch 2.11 (and has no backward); the GPU's Triton kernel is not run here."""
    graphs: list[str] = []

    def keep(gm: torch.fx.GraphModule, example_inputs: Any) -> Callable[..., Any]:
        graphs.append(gm.code)
        return gm.forward

    compile_ = nn.Module.compile
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: compile_(self, backend=keep, **kw))
    torch._dynamo.reset()
    eager, flex = pair()
    compile_blocks(flex)
    batch = padded_batch()
    assert_same_training(eager, flex, hf_loss(batch))
    assert len(graphs) == 4  # first and later block of each stack (the first computes the position bias)
    assert [g.count("higher_order.flex_attention(") for g in graphs] == [1, 1, 2, 2]  # decoder: self + cross
    shorter = {k: v[:2, :-2].contiguous() for k, v in batch.items()}
    assert_same_training(eager, flex, hf_loss(shorter))
    assert len(graphs) == 4
    torch._dynamo.reset()


def test_stepper_switches_only_on_a_gpu(t5_dir: str, caplog: pytest.LogCaptureFixture) -> None:
    """StepOptions.flex_attention on the CPU: nothing switched (no flex backward there), said in the log."""
    from distillery_student.modeling import load_student

    model, tok = load_student(t5_dir, "seq2seq")
    with caplog.at_level(logging.WARNING, logger="distillery_student"):
        stepper = Stepper(model, "seq2seq", Encoder(tok, "seq2seq", 32, 32), torch.device("cpu"), Dist(),
                          StepOptions(flex_attention=True), lambda s: 1.0)
    assert stepper.flex == 0 and stepper.shape.eager_attention
    assert "flex attention: only for T5 students on a GPU" in caplog.text
    assert all(m.config._attn_implementation == "eager" for m in model.modules() if hasattr(m, "config"))
