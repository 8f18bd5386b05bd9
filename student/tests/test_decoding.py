"""The static-cache decoder returns the tokens Hugging Face's greedy generate returns."""

from __future__ import annotations

import pytest
import torch

from distillery_student.decoding import StaticT5Greedy, bucket, fine_bucket


def _hf_tokens(model, ids, mask, max_new: int) -> list[list[int]]:
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False, num_beams=1,
                         pad_token_id=0, eos_token_id=1)[:, 1:]
    return [_until_eos(r) for r in out.tolist()]


def _until_eos(row: list[int]) -> list[int]:
    return row[: row.index(1) + 1] if 1 in row else row


def _batch(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


@pytest.mark.parametrize("act, tied, buckets", [("gated-gelu", False, False), ("relu", True, False),
                                                ("gated-gelu", False, True)])
def test_static_decoder_matches_hf_generate(act: str, tied: bool, buckets: bool) -> None:
    """The same greedy tokens as Hugging Face; with buckets (as on a GPU), the encoder runs over rows and columns
    of padding too, and the real rows' tokens do not change."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(1)
    cfg = T5Config(vocab_size=384, d_model=64, d_kv=16, d_ff=128, num_layers=3, num_decoder_layers=3, num_heads=4,
                   dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   feed_forward_proj=act, tie_word_embeddings=tied, relative_attention_num_buckets=8,
                   relative_attention_max_distance=16, attn_implementation="eager")  # as load_student loads T5
    model = T5ForConditionalGeneration(cfg).eval()
    g = torch.Generator().manual_seed(2)
    rows = [torch.randint(3, 384, (int(n),), generator=g).tolist() + [1] for n in (5, 17, 9, 30, 2)]
    ids, mask = _batch(rows)
    want = _hf_tokens(model, ids, mask, 24)
    dec = StaticT5Greedy(model, use_cuda_graphs=False, pad_to_buckets=buckets)
    got = [_until_eos(r) for r in dec.generate(ids, mask, 24, eos_token_id=1, pad_token_id=0).tolist()]
    assert got == want
    # one by one (other buckets) gives the same again
    for r, w in zip(rows, want):
        one = dec.generate(*_batch([r]), 24, eos_token_id=1, pad_token_id=0).tolist()[0]
        assert _until_eos(one) == w


def _small_t5(seed: int, vocab: int = 64) -> torch.nn.Module:
    """A 2+2-layer random T5 with eager attention, as load_student loads T5."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                   dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   attn_implementation="eager")
    return T5ForConditionalGeneration(cfg).eval()


@pytest.mark.parametrize("buckets", [False, True])
def test_rows_that_end_early_are_padded_and_the_call_stops_when_all_have_ended(buckets: bool) -> None:
    """EOS is a token the model often picks here, so rows end at different steps: the whole output (padding
    after EOS included, and its length when every row has ended) equals Hugging Face's."""
    model = _small_t5(3)
    g = torch.Generator().manual_seed(4)
    ids, mask = _batch([torch.randint(3, 64, (int(n),), generator=g).tolist() + [1] for n in (4, 11, 7, 20)])
    first = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                           pad_token_id=0, eos_token_id=1)[:, 1:]
    eos = int(torch.mode(first[:, 1:4].flatten()).values)  # a token several rows pick early
    want = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0,
                          eos_token_id=eos)[:, 1:]
    got = StaticT5Greedy(model, use_cuda_graphs=False, pad_to_buckets=buckets).generate(ids, mask, 12, eos, 0)
    assert (want == eos).any(1).sum() >= 2  # the case this test is for: rows end, at different steps
    n = min(want.shape[1], got.shape[1])
    assert got[:, :n].tolist() == want[:, :n].tolist()
    assert (got[:, n:] == 0).all() and (want[:, n:] == 0).all()  # beyond: padding only
    if (want == eos).any(1).all():  # every row ended: the call stopped at the next check (every 4 steps)
        assert got.shape[1] == -(-want.shape[1] // 4) * 4 or got.shape[1] == 12


def test_bucket() -> None:
    assert [bucket(n) for n in (1, 2, 3, 64, 65)] == [1, 2, 4, 64, 128]
    assert bucket(3, 16) == 16
    assert [fine_bucket(n, 8) for n in (1, 3, 8, 9, 33, 64)] == [1, 4, 8, 16, 40, 64]
    assert [fine_bucket(n, 64, 16) for n in (3, 40, 64, 65, 260)] == [16, 64, 64, 128, 320]


def test_buckets_share_one_buffer_that_grows_for_a_larger_bucket() -> None:
    """Every bucket's buffers are views of one buffer per name, as large as the largest bucket; a larger bucket
    grows it and drops the buckets built over the old one. Small, large, small again: the tokens stay HF's."""
    model = _small_t5(5, vocab=384)
    g = torch.Generator().manual_seed(6)
    rows = [torch.randint(3, 384, (int(n),), generator=g).tolist() + [1] for n in (70, 9, 30, 2, 12, 40, 5, 8, 3)]
    dec = StaticT5Greedy(model, use_cuda_graphs=False, pad_to_buckets=True)
    small, large = (1, 16, 16, 1, 0), (16, 128, 16, 1, 0)  # rows 9 -> 16, 71 columns -> 128
    for batch, buckets in (([rows[1]], {small}), (rows, {large}), ([rows[3]], {small, large})):
        ids, mask = _batch(batch)
        want = _hf_tokens(model, ids, mask, 10)
        assert [_until_eos(r) for r in dec.generate(ids, mask, 10, 1, 0).tolist()] == want
        assert set(dec._captured) == buckets  # growing for the large bucket dropped the small one
    assert dec._arena["cross_k0"].numel() == 16 * 4 * 128 * 8


def test_capture_all_covers_every_batch_shape() -> None:
    """The buckets a server captures up front are the ones its batches pad to (no capture while serving)."""
    dec = StaticT5Greedy(_small_t5(7), use_cuda_graphs=False)
    listed = set(dec.buckets(64, 512))
    assert len(listed) == 11 * 10  # rows 1,2,4,8,16..64 by 8; tokens 16,32,64,128..512 by 64
    shapes = {(fine_bucket(n, 8), fine_bucket(s, 64, 16)) for n in range(1, 65) for s in range(1, 513, 7)}
    assert shapes <= listed
    assert dec.capture_all(64, 512, 16) == 0  # no graphs on a CPU: nothing to capture


def test_compiled_layers_give_the_same_tokens_as_hf_generate() -> None:
    """The GPU server's default (serve --compile-decoder auto): the decoder's layers and the encoder's blocks
    through torch.compile (here Inductor's CPU backend). A batch of several rows, then one row: a size of 1 is
    compiled again (Dynamo specialises it) and must give the same tokens too."""
    model = _small_t5(3)
    g = torch.Generator().manual_seed(2)
    rows = [torch.randint(3, 64, (int(n),), generator=g).tolist() + [1] for n in (5, 17, 9, 30, 2)]
    ids, mask = _batch(rows)
    want = _hf_tokens(model, ids, mask, 12)
    dec = StaticT5Greedy(model, use_cuda_graphs=False, pad_to_buckets=True, compile_layers=True)
    assert dec.compiled and all(getattr(b, "_compiled_call_impl", None) is not None for b in model.encoder.block)
    got = [_until_eos(r) for r in dec.generate(ids, mask, 12, eos_token_id=1, pad_token_id=0).tolist()]
    assert got == want
    one = dec.generate(*_batch([rows[0]]), 12, eos_token_id=1, pad_token_id=0).tolist()[0]
    assert _until_eos(one) == want[0]
