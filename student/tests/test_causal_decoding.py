"""The static-cache decoder for decoder-only students returns the tokens Hugging Face's greedy generate returns."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from distillery_student.causal_decoding import StaticCausalGreedy, unsupported_reason

EOS, PAD = 1, 0


def _model(kind: str) -> Any:
    import transformers as tf

    torch.manual_seed(3)
    common = dict(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                  max_position_embeddings=512, initializer_range=0.3, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=None)
    if kind == "llama":  # multi-head attention, tied embeddings
        return tf.LlamaForCausalLM(tf.LlamaConfig(num_key_value_heads=4, tie_word_embeddings=True, **common))
    if kind == "qwen2":  # grouped-query attention, q/k/v biases
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(num_key_value_heads=2, **common))
    if kind == "qwen3":  # per-head q/k norms, head_dim unlike hidden/heads, one KV head
        return tf.Qwen3ForCausalLM(tf.Qwen3Config(num_key_value_heads=1, head_dim=32, **common))
    raise ValueError(kind)


def _left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), PAD, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, n - len(r) :] = torch.tensor(r)
        mask[i, n - len(r) :] = 1
    return ids, mask


def _until_eos(row: list[int]) -> list[int]:
    return row[: row.index(EOS) + 1] if EOS in row else row


def _hf(model: Any, ids: torch.Tensor, mask: torch.Tensor, max_new: int) -> list[list[int]]:
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False, num_beams=1,
                         pad_token_id=PAD, eos_token_id=EOS)[:, ids.shape[1] :]
    return [_until_eos(r) for r in out.tolist()]


def _rows(lengths: tuple[int, ...], seed: int = 2) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 384, (n,), generator=g).tolist() for n in lengths]


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3"])
@pytest.mark.parametrize("buckets", [False, True])
def test_static_causal_decoder_matches_hf_generate(kind: str, buckets: bool) -> None:
    model = _model(kind).eval()
    rows = _rows((5, 17, 9, 30, 2))
    ids, mask = _left_padded(rows)
    want = _hf(model, ids, mask, 24)
    dec = StaticCausalGreedy(model, use_cuda_graphs=False, pad_to_buckets=buckets)
    got = [_until_eos(r) for r in dec.generate(ids, mask, 24, eos_token_id=EOS, pad_token_id=PAD).tolist()]
    assert got == want
    for r, w in zip(rows, want):  # one by one (other shapes or buckets) gives the same again
        one = dec.generate(*_left_padded([r]), 24, eos_token_id=EOS, pad_token_id=PAD).tolist()[0]
        assert _until_eos(one) == w


def test_rows_that_end_early_are_padded_and_decoding_stops() -> None:
    model = _model("qwen2").eval()
    rows = _rows((4, 11, 7, 20))
    ids, mask = _left_padded(rows)
    first = _hf(model, ids, mask, 12)
    common = max(set(sum(first, [])), key=sum(first, []).count)
    with torch.no_grad():  # EOS now wins wherever the most common token won with a positive logit
        model.lm_head.weight[EOS] = 2 * model.lm_head.weight[common]
    want = _hf(model, ids, mask, 12)
    assert len({len(w) for w in want}) > 1 and all(len(w) < 12 and w[-1] == EOS for w in want)  # ends differ
    got = StaticCausalGreedy(model, use_cuda_graphs=False, pad_to_buckets=True).generate(
        ids, mask, 12, eos_token_id=EOS, pad_token_id=PAD).tolist()
    assert [_until_eos(r) for r in got] == want
    assert len(got[0]) < 12  # every row has ended: decoding stopped before the budget
    for r in got:  # after EOS only padding
        assert set(r[r.index(EOS) + 1 :] if EOS in r else []) <= {PAD}


def test_unsupported_models_are_named() -> None:
    import transformers as tf

    gpt2 = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2))
    assert "gpt2" in unsupported_reason(gpt2)
    with pytest.raises(ValueError, match="cannot serve this model"):
        StaticCausalGreedy(gpt2)
    sliding = tf.Qwen2ForCausalLM(tf.Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64,
                                                 num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                                 use_sliding_window=True, sliding_window=8, max_window_layers=0))
    assert "sliding" in unsupported_reason(sliding)
    assert unsupported_reason(_model("qwen3")) == ""


def graph_free_capture(fn: Any, pool: Any, stream: Any, reset: Any = lambda: None) -> Any:
    """decoding.capture without CUDA: the same warm-up runs, then a "graph" whose replay runs fn eagerly."""
    from types import SimpleNamespace

    from distillery_student.decoding import warm_up

    warm_up(fn, reset)
    return SimpleNamespace(replay=fn)


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_the_graph_path_with_the_smallest_token_budget(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoders' graph path (capture's warm-up runs, the prefill's and the chunks' replays) on a CPU, for a
    label budget of 5 tokens (a bucket of 8: a label set of short labels). Two chunk warm-ups in a row used to
    write past the bucket's 8 columns; the tokens must be Hugging Face's."""
    import distillery_student.decoding as decoding
    from distillery_student.decoding import StaticT5Greedy

    monkeypatch.setattr(decoding, "capture", graph_free_capture)
    if arch == "t5":
        from test_decoding import _batch, _hf_tokens, _small_t5

        model = _small_t5(3, vocab=384)
        ids, mask = _batch([r + [EOS] for r in _rows((5, 17, 9))])
        want, dec = _hf_tokens(model, ids, mask, 5), StaticT5Greedy(model, use_cuda_graphs=False, pad_to_buckets=True)
    else:
        model = _model("llama").eval()
        ids, mask = _left_padded(_rows((5, 17, 9)))
        want, dec = _hf(model, ids, mask, 5), StaticCausalGreedy(model, use_cuda_graphs=False, pad_to_buckets=True)
    dec.graphs = True  # capture (patched above) and replay, as on a GPU
    got = [_until_eos(r) for r in dec.generate(ids, mask, 5, eos_token_id=EOS, pad_token_id=PAD).tolist()]
    assert got == want
    assert next(iter(dec._captured))[2] == 8  # the bucket of 8 steps this is about
