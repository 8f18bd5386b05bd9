"""Sequence packing (packing.py): a packed batch gives the same losses and gradients as the padded one."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from distillery_student import packing
from distillery_student.data import TASK_LABEL, TASK_RATIONALE
from distillery_student.modeling import IGNORE, Encoder, Row, TaskLosses, combine_losses, load_student


def _rows(n: int, seed: int = 0) -> list[Row]:
    """Rows of both tasks with lengths that vary independently (sources 3-40 tokens, targets 1-20)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        src = [rng.randrange(3, 300) for _ in range(rng.randint(2, 39))] + [1]
        out.append(Row(src, [rng.randrange(3, 300) for _ in range(rng.randint(1, 3))] + [1], TASK_LABEL))
        out.append(Row(src, [rng.randrange(3, 300) for _ in range(rng.randint(3, 19))] + [1], TASK_RATIONALE))
    return out


def test_bins_hold_every_row_once_within_both_capacities() -> None:
    rows = _rows(40)
    items = packing.sizes(rows, causal=False)
    s, t = packing.capacities(items, 64, lambda n: n)
    bins = packing.pack(items, (s, t))
    assert sorted(i for b in bins for i in b) == list(range(len(rows)))
    assert all(sum(items[i][0] for i in b) <= s and sum(items[i][1] for i in b) <= t for b in bins)
    assert len(bins) < len(rows) / 2  # several rows to a bin
    n, s_width, t_width = packing.widths(rows, 64, lambda n: n)  # what the memory estimate charges
    assert n == len(bins) and s_width <= s and t_width <= t
    assert s_width == max(sum(items[i][0] for i in b) for b in bins)


def test_an_example_longer_than_the_row_gets_a_row_of_its_own_length() -> None:
    rows = _rows(4) + [Row(list(range(3, 100)) + [1], [5, 1], TASK_LABEL)]
    s, _ = packing.capacities(packing.sizes(rows, causal=False), 32, lambda n: (n + 15) // 16 * 16)
    assert s == 112


def test_packed_tensors_keep_each_row_whole() -> None:
    tok = type("Tok", (), {"pad_token_id": 0, "eos_token_id": 1})()
    rows = _rows(12)
    b = Encoder(tok, "seq2seq", 512, 512, pad_multiple=16, pack_length=64).collate_packed(rows)
    assert b["input_ids"].shape[1] % 16 == 0 and b["labels"].shape[1] % 16 == 0
    assert b["input_ids"].shape[0] < len(rows) / 2
    sources = {tuple(r.source) for r in rows}
    for i in range(b["input_ids"].shape[0]):
        for k in b["segments"][i].unique().tolist():
            if k:
                assert tuple(b["input_ids"][i][b["segments"][i] == k].tolist()) in sources
    assert int((b["labels"] != IGNORE).sum()) == sum(len(r.target) for r in rows)
    assert int(b["pick_label"].sum()) == sum(len(r.target) for r in rows if r.task == TASK_LABEL)


def test_decoder_only_rows_restart_their_positions_and_see_only_their_past() -> None:
    tok = type("Tok", (), {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": None})()
    rows = [Row([5, 6], [7, 1], TASK_LABEL), Row([8], [9, 10, 1], TASK_RATIONALE)]
    b = Encoder(tok, "causal", 512, 512, pack_length=16).collate_packed(rows)
    assert b["input_ids"].shape == (1, 8)
    seg, pos = b["segments"][0].tolist(), b["position_ids"][0].tolist()
    assert sorted(zip(seg, pos)) == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2), (2, 3)]
    mask = packing.causal_mask(b["segments"], torch.float32)[0, 0] == 0  # True: may attend
    for q in range(8):
        assert [k for k in range(8) if mask[q, k]] == [k for k in range(q + 1) if seg[k] == seg[q]]
    assert sorted(b["pick_target"].tolist()) == sorted([7, 1, 9, 10, 1])  # each target once, from its source
    assert int(b["pick_label"].sum()) == 2


def test_decoder_inputs_restart_at_each_segment() -> None:
    labels = torch.tensor([[7, 8, 1, 9, 1, IGNORE]])
    segs = torch.tensor([[1, 1, 1, 2, 2, 0]])
    assert packing.decoder_inputs(labels, segs, start=0, pad=0, ignore=IGNORE).tolist() == [[0, 7, 8, 0, 9, 0]]


@pytest.mark.parametrize("pad_multiple", [1, 16])
@pytest.mark.parametrize("arch", ["seq2seq", "causal"])
def test_packed_losses_and_gradients_equal_the_padded_batch(t5_dir, causal_dir, pad_multiple, arch) -> None:
    model, tok = load_student(t5_dir if arch == "seq2seq" else causal_dir, arch)
    model.eval()  # no dropout: the two batches must compute the same function
    losses = TaskLosses(model, arch)
    rows = _rows(10, seed=3)
    padded = Encoder(tok, arch, 512, 512, pad_multiple=pad_multiple)
    packed = Encoder(tok, arch, 512, 512, pad_multiple=pad_multiple, pack_length=96)
    grads = []
    sums = []
    for batches in (padded.collate_by_task(rows), packed.collate_tasks(rows, concat=False)):
        model.zero_grad()
        s = losses(batches)
        combine_losses(s, 0.7).loss.backward()
        sums.append(s.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    [b] = packed.collate_tasks(rows, concat=False)  # both tasks in one packed forward
    assert b["input_ids"].shape[0] < len(rows) and int(b["segments"].max()) >= 3  # several examples to a row
    assert torch.allclose(sums[0], sums[1], rtol=1e-5, atol=1e-5)
    assert sums[0][1] == sum(len(r.target) for r in rows if r.task == TASK_LABEL)
    assert grads[0].keys() == grads[1].keys()
    for n, g in grads[0].items():  # within fp32 rounding at each tensor's scale (test_flex_t5.assert_same_training)
        torch.testing.assert_close(grads[1][n], g, rtol=1e-4, atol=max(1e-6, 1e-5 * float(g.abs().max())), msg=n)


def _tiny_seq2seq(kind: str) -> torch.nn.Module:
    """A tiny mT5 or UMT5 (packing.PACKABLE's seq2seq types beside t5), random weights, the ByT5 vocabulary."""
    from transformers import MT5Config, MT5ForConditionalGeneration, UMT5Config, UMT5ForConditionalGeneration

    torch.manual_seed(0)
    cls, model = {"mt5": (MT5Config, MT5ForConditionalGeneration),
                  "umt5": (UMT5Config, UMT5ForConditionalGeneration)}[kind]
    cfg = cls(vocab_size=384, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
              dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
              feed_forward_proj="gated-gelu")
    cfg._attn_implementation = "eager"
    out = model(cfg)
    assert out.config._attn_implementation == "eager"
    return out


@pytest.mark.parametrize("pad_multiple", [1, 16])
@pytest.mark.parametrize("kind", ["mt5", "umt5"])
def test_every_packable_seq2seq_type_gives_the_padded_losses_and_gradients(t5_dir, kind, pad_multiple) -> None:
    """mT5 and UMT5 as the T5 test above. UMT5 is the one at risk: every layer has its own relative attention
    bias (not only the first, shared down the stack as in T5), and each must see the packed 4-D masks."""
    _, tok = load_student(t5_dir, "seq2seq")
    model = _tiny_seq2seq(kind).eval()
    assert model.config.model_type == kind and packing.unpackable("seq2seq", model.config) == ""
    if kind == "umt5":  # the case the test exists for: a relative attention bias in every layer
        assert all(b.layer[0].SelfAttention.has_relative_attention_bias for b in model.encoder.block)
    losses = TaskLosses(model, "seq2seq")
    rows = _rows(10, seed=3)
    padded = Encoder(tok, "seq2seq", 512, 512, pad_multiple=pad_multiple)
    packed = Encoder(tok, "seq2seq", 512, 512, pad_multiple=pad_multiple, pack_length=96)
    [b] = packed.collate_tasks(rows, concat=False)  # both tasks in one packed forward
    assert b["input_ids"].shape[0] < len(rows) and int(b["segments"].max()) >= 3  # several examples to a row
    grads = []
    sums = []
    for batches in (padded.collate_by_task(rows), [b]):
        model.zero_grad()
        s = losses(batches)
        combine_losses(s, 0.7).loss.backward()
        sums.append(s.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert torch.allclose(sums[0], sums[1], rtol=1e-5, atol=1e-5)
    assert sums[0][1] == sum(len(r.target) for r in rows if r.task == TASK_LABEL)
    assert sums[0][3] == sum(len(r.target) for r in rows if r.task == TASK_RATIONALE)
    assert grads[0].keys() == grads[1].keys()
    assert any("relative_attention_bias" in n for n in grads[0])  # the biases are trained, and compared
    for n, g in grads[0].items():  # within fp32 rounding at each tensor's scale (test_flex_t5.assert_same_training)
        torch.testing.assert_close(grads[1][n], g, rtol=1e-4, atol=max(1e-6, 1e-5 * float(g.abs().max())), msg=n)


@pytest.mark.parametrize("kind", ["t5", "mt5", "umt5"])
def test_the_task_losses_are_the_models_own_loss(t5_dir, kind) -> None:
    """TaskLosses runs encoder, decoder and output layer itself; its mean token loss must be the one the model's
    own forward gives (labels=...). UMT5's forward scales the decoder's output by d_model**-0.5 (tied
    embeddings), mT5's does not, T5's as scale_decoder_outputs says (modeling.scales_decoder_outputs)."""
    model, tok = load_student(t5_dir, "seq2seq")
    model = (model if kind == "t5" else _tiny_seq2seq(kind)).eval()
    [b] = Encoder(tok, "seq2seq", 512, 512).collate_tasks(_rows(4, seed=5), concat=True)
    with torch.no_grad():
        s = TaskLosses(model, "seq2seq")([b])
        own = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
    torch.testing.assert_close((s[0] + s[2]) / (s[1] + s[3]), own, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flag, arch, device, packed", [
    ("auto", "seq2seq", "cuda", True),  # measured: 1.28x a 500-step t5-base job (docs/benchmarks.md)
    ("auto", "seq2seq", "cpu", False),
    ("on", "seq2seq", "cpu", True),
    ("off", "seq2seq", "cuda", False),
    ("auto", "causal", "cuda", True),  # measured: 1.29x (0.5B) and 1.39x (1.5B) the padded step
    ("on", "causal", "cpu", True),
])
def test_packing_policy(flag: str, arch: str, device: str, packed: bool) -> None:
    config = SimpleNamespace(model_type="t5" if arch == "seq2seq" else "qwen2", use_sliding_window=False)
    length, why = packing.wanted(flag, arch, device, config)
    assert (length == packing.PACK_LENGTH) is packed and (length == 0) is not packed
    assert why


@pytest.mark.parametrize("arch, config, reason", [
    ("seq2seq", SimpleNamespace(model_type="bart"), "not among"),  # absolute positions
    ("seq2seq", SimpleNamespace(model_type="longt5"), "not among"),  # its encoder takes 2-D masks only
    ("causal", SimpleNamespace(model_type="bloom"), "not among"),  # ALiBi
    ("causal", SimpleNamespace(model_type="qwen2", use_sliding_window=True), "sliding"),
    ("causal", SimpleNamespace(model_type="qwen3", layer_types=["full_attention", "sliding_attention"]), "layers"),
    ("causal", SimpleNamespace(model_type="llama", _attn_implementation="flash_attention_2"), "4-D mask"),
])
def test_models_that_would_compute_something_else_packed_are_never_packed(arch, config, reason) -> None:
    length, why = packing.wanted("on", arch, "cuda", config)
    assert length == 0 and reason in why


def _tiny_causal(kind: str) -> torch.nn.Module:
    """A tiny decoder-only model of each packable type, random weights, the ByT5 vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=384, n_embd=64, n_layer=2, n_head=4, n_positions=512))
    cls, model = (Qwen2Config, Qwen2ForCausalLM) if kind == "qwen2" else (Qwen3Config, Qwen3ForCausalLM)
    return model(cls(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16, max_position_embeddings=512, pad_token_id=0, eos_token_id=1))


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "gpt2"])
def test_every_packable_decoder_only_type_gives_the_padded_losses(causal_dir, kind) -> None:
    """The types packing.PACKABLE lists beside llama (the test above): packed loss sums equal padded."""
    _, tok = load_student(causal_dir, "causal")
    model = _tiny_causal(kind).eval()
    assert packing.unpackable("causal", model.config) == ""
    losses = TaskLosses(model, "causal")
    rows = _rows(8, seed=4)
    padded = Encoder(tok, "causal", 512, 512).collate_by_task(rows)
    packed = Encoder(tok, "causal", 512, 512, pack_length=96).collate_tasks(rows, concat=False)
    with torch.no_grad():
        assert torch.allclose(losses(padded), losses(packed), rtol=1e-5, atol=1e-5)


def test_the_memory_estimate_charges_the_packed_widths_where_two_sources_do_not_fit_a_row() -> None:
    """Sources just over half a row fit one to a row (the case a fill-rate estimate undercounted)."""
    rng = random.Random(1)
    rows = [Row([5] * rng.randint(260, 280), [6] * rng.randint(140, 230), TASK_RATIONALE) for _ in range(64)]
    n, s, t = packing.widths(rows, 512, lambda n: (n + 15) // 16 * 16)
    assert n == 64 and s >= 272  # one source a row, each row as wide as the widest
    tok = type("Tok", (), {"pad_token_id": 0, "eos_token_id": 1})()
    b = Encoder(tok, "seq2seq", 10**6, 10**6, pad_multiple=16, pack_length=512).collate_packed(rows)
    assert tuple(b["input_ids"].shape) == (n, s) and b["labels"].shape[1] == t


def test_the_encoder_counts_real_and_computed_tokens_and_packing_computes_fewer() -> None:
    tok = type("Tok", (), {"pad_token_id": 0, "eos_token_id": 1})()
    rows = _rows(40, seed=2)
    padded = Encoder(tok, "seq2seq", 512, 512, pad_multiple=16)
    packed = Encoder(tok, "seq2seq", 512, 512, pad_multiple=16, pack_length=128)
    for enc in (padded, packed):
        for i in range(0, len(rows), 16):
            enc.collate_tasks(rows[i : i + 16], concat=False)
        assert enc.tokens[0] == sum(len(r) for r in rows) <= enc.tokens[1]
    assert packed.tokens[1] < padded.tokens[1]
    assert "packed batches" in packed.padding_summary() and "%" in padded.padding_summary()


def test_a_batch_smaller_than_the_ranks_is_refused(make_config, monkeypatch) -> None:
    """Every rank needs a record per step, or the others wait for it in their collectives (packed batches are
    drawn one to a window, so no window's other batches would make up for it)."""
    from distillery_student import train as train_mod
    from distillery_student.parallel import Dist

    monkeypatch.setattr(train_mod, "init_distributed", lambda device: Dist(rank=0, world=4))
    with pytest.raises(train_mod.InvalidInput, match="training.batchSize 2 is smaller than the 4 ranks"):
        train_mod.train(make_config(maxSteps=2, batchSize=2), train_mod.TrainOptions())
