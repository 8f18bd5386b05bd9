"""Automatic micro-batches: the memory estimate, the split under a budget, and that a split step still
gives the gradient of the whole batch."""

from __future__ import annotations

import pytest
import torch

from distillery_student.microbatch import (MEMORY_FRACTION, Shape, activation_bytes_per_token, split_by_bisection,
                                           split_by_budget, split_even, static_bytes)
from distillery_student.train import TrainOptions, train

T5_LARGE = Shape(layers=24, hidden=1024, ffn=4096, heads=16, vocab=32128, eager_attention=True)
QWEN_1_5B = Shape(layers=28, hidden=1536, ffn=8960, heads=12, vocab=151936, eager_attention=False)


def test_split_by_budget_keeps_order_and_each_chunk_within_the_budget() -> None:
    items = [5, 1, 7, 3, 3, 9, 2]
    chunks = split_by_budget(items, sum, 10)
    assert [x for c in chunks for x in c] == items
    assert chunks == [[5, 1], [7, 3], [3], [9], [2]]
    # an item over the budget on its own still gets a chunk: one record is never split
    assert split_by_budget([20, 1], sum, 10) == [[20], [1]]
    assert split_by_budget([1, 2, 3], sum, 100) == [[1, 2, 3]]


def test_split_by_bisection_takes_the_longest_prefix_within_the_budget() -> None:
    items = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    calls: list[int] = []

    def cost(c):  # type: ignore[no-untyped-def]
        calls.append(len(c))
        return sum(c)

    chunks = split_by_bisection(items, cost, 10)
    assert [x for c in chunks for x in c] == items
    assert all(sum(c) <= 10 or len(c) == 1 for c in chunks)
    assert chunks == split_by_budget(items, sum, 10)  # the same chunks as adding one item at a time
    assert split_by_bisection([20, 1], sum, 10) == [[20], [1]]  # an item over the budget goes alone


def test_split_even_gives_n_non_empty_chunks() -> None:
    assert split_even(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_even([1, 2], 5) == [[1], [2]]


def test_estimate_grows_with_length_for_eager_attention_and_shrinks_with_checkpointing() -> None:
    short, long = (activation_bytes_per_token(T5_LARGE, s, False) for s in (64, 512))
    assert long > short
    assert activation_bytes_per_token(QWEN_1_5B, 64, False) == activation_bytes_per_token(QWEN_1_5B, 512, False)
    assert activation_bytes_per_token(T5_LARGE, 512, True) < long / 5


@pytest.mark.parametrize("packing", ["off", "on"])
def test_automatic_micro_batches_give_the_gradient_of_the_whole_batch(make_config, packing) -> None:
    """Also packed (packing.py): each micro-batch is packed on its own, and the weights still match."""
    from transformers import AutoModelForSeq2SeqLM

    common = dict(maxSteps=3, batchSize=8, learningRate=1e-3)
    whole = make_config(out="whole", **common)
    train(whole, TrainOptions(packing=packing))
    split = make_config(out="split", **common)
    chunk_counts: list[int] = []
    from distillery_student import step as step_mod

    original = step_mod.Stepper.micro_batches

    def spy(self, records, fixed):  # type: ignore[no-untyped-def]
        chunks = original(self, records, fixed)
        chunk_counts.append(len(chunks))
        return chunks

    step_mod.Stepper.micro_batches = spy  # type: ignore[method-assign]
    try:
        # a card just larger than the tiny model's weights and optimizer state: a few records per micro-batch
        train(split, TrainOptions(memory_gb=0.0045, packing=packing))
    finally:
        step_mod.Stepper.micro_batches = original  # type: ignore[method-assign]
    assert chunk_counts and min(chunk_counts) > 1
    a = AutoModelForSeq2SeqLM.from_pretrained(whole.output.modelDir).state_dict()
    b = AutoModelForSeq2SeqLM.from_pretrained(split.output.modelDir).state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0, msg=k)


def test_under_cuda_graphs_a_micro_batch_gets_half_the_budget(t5_dir) -> None:
    """Stepper.budget_bytes: with CUDA graphs the graphs' pool keeps the largest captured shape's activations
    while a new shape runs eagerly beside it, so a micro-batch may use half (docs/workloads.md). On the CPU
    no graphs are made (cuda_graphs asks for them, _graphs declines), so a stub stands in for them."""
    from distillery_student.data import TASK_LABEL, TASK_RATIONALE
    from distillery_student.modeling import Encoder, Row, load_student
    from distillery_student.parallel import Dist
    from distillery_student.step import StepOptions, Stepper

    model, tok = load_student(t5_dir, "seq2seq")
    records = [[Row([5] * (10 + i), [6] * 3, TASK_LABEL), Row([5] * (10 + i), [7] * 12, TASK_RATIONALE)]
               for i in range(16)]
    probe = Stepper(model, "seq2seq", Encoder(tok, "seq2seq", 64, 64), torch.device("cpu"), Dist(),
                    StepOptions(), lambda s: 1.0)
    static = static_bytes(probe.trainable, probe.frozen, 1, False)
    card = (static + 4 * probe.memory_cost(records[-1:])) / MEMORY_FRACTION  # about 4 records a micro-batch
    stepper = Stepper(model, "seq2seq", Encoder(tok, "seq2seq", 64, 64), torch.device("cpu"), Dist(),
                      StepOptions(memory_bytes=card, cuda_graphs=True), lambda s: 1.0)
    assert stepper.graphs is None  # none on the CPU: the whole budget
    full = stepper.budget_bytes()
    assert full == pytest.approx(card * MEMORY_FRACTION - static) and full > 0
    eager_chunks = stepper.micro_batches(records, 0)

    stepper.graphs = object()  # what budget_bytes reads: whether the stepper has graphs
    assert stepper.budget_bytes() == pytest.approx(full / 2)
    graph_chunks = stepper.micro_batches(records, 0)
    for chunks, budget in ((eager_chunks, full), (graph_chunks, full / 2)):
        assert [r for c in chunks for r in c] == records  # every record once, in order
        assert all(stepper.memory_cost(c) <= budget or len(c) == 1 for c in chunks)
    assert len(graph_chunks) > len(eager_chunks) > 1
    assert max(stepper.memory_cost(c) for c in graph_chunks) <= full / 2 < max(stepper.memory_cost(c)
                                                                                for c in eager_chunks)


@pytest.mark.parametrize("packing_flag", ["off", "auto"])
@pytest.mark.parametrize("name", ["t5-base", "t5-large", "qwen-1.5b"])
def test_the_trainers_plan_for_the_worst_default_batch_fits_an_80_gb_card(name: str, packing_flag: str) -> None:
    """docs/operating.md: a default spec (batchSize 64, inputs up to 512 tokens, rationales up to 256) is planned
    within an 80 GB card for t5-base, t5-large and a Qwen2.5-1.5B shape, padded and packed. The trainer's own
    planning (Stepper.micro_batches, memory_cost, budget_bytes) on bench/memory_fit.py's `worst` batch and model
    configs, with the options train() passes on a GPU: --memory-gb 80, lengths padded to 16, packing as
    packing.wanted picks it (auto: PACK_LENGTH for these models; off: padded). The models are built on the meta
    device (shapes, no data) and so is the Stepper: model.to(meta), the fp32 master copies and AdamW's
    construction touch no data; on the CPU model.to() would need the weights."""
    import sys
    from pathlib import Path

    from transformers import Qwen2Config, Qwen2ForCausalLM, T5Config, T5ForConditionalGeneration

    from distillery_student import packing
    from distillery_student.modeling import Encoder
    from distillery_student.parallel import Dist
    from distillery_student.step import StepOptions, Stepper

    bench = str(Path(__file__).resolve().parents[1] / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    from common import DECODER_SHAPES, T5_SHAPES, T5_VOCAB, Tok
    from memory_fit import BATCH, uniform_records

    card = 80 * 2**30
    meta = torch.device("meta")
    with meta:  # the configs of train_step.new_t5 and decoder_step.new_decoder, as memory_fit.py builds them
        if name.startswith("t5"):
            arch = "seq2seq"
            model = T5ForConditionalGeneration(T5Config(
                vocab_size=T5_VOCAB, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.1,
                tie_word_embeddings=False, **T5_SHAPES[name]))
        else:
            arch = "causal"
            shape = {k: v for k, v in DECODER_SHAPES[name].items() if k != "kind"}
            model = Qwen2ForCausalLM(Qwen2Config(pad_token_id=0, eos_token_id=1, bos_token_id=None,
                                                 max_position_embeddings=4096, **shape))
    pack_length, _ = packing.wanted(packing_flag, arch, "cuda", model.config)
    assert pack_length == (packing.PACK_LENGTH if packing_flag == "auto" else 0)
    enc = Encoder(Tok(), arch, 512, 256, pad_multiple=16)  # maxInputLength/maxTargetLength defaults; 16 on a GPU
    stepper = Stepper(model, arch, enc, meta, Dist(), StepOptions(
        bf16=True, learning_rate=1e-5, memory_bytes=card, pack_length=pack_length), lambda s: 1.0)
    assert all(p.is_meta for p in model.parameters())  # nothing was materialised
    assert enc.pack_length == pack_length and stepper.graphs is None

    records = uniform_records(BATCH, 512)  # memory_fit.py's `worst`: 512-token sources, a 256-token rationale
    assert len(records) == 64 and all(len(r.source) == 512 for rs in records for r in rs)
    assert sorted(len(r.target) for r in records[0]) == [3, 256]
    static = static_bytes(stepper.trainable, stepper.frozen, 1, False)
    budget = stepper.budget_bytes()
    assert budget == pytest.approx(card * MEMORY_FRACTION - static) and budget > 0

    chunks = stepper.micro_batches(records, 0)
    # (a) every record in exactly one micro-batch, in order (by identity: the records are equal to each other)
    assert all(chunks) and [id(r) for c in chunks for r in c] == [id(r) for r in records]
    # (b) every micro-batch within the budget, single records included
    costs = [stepper.memory_cost(c) for c in chunks]
    assert all(cost <= budget for cost in costs), (name, packing_flag, costs, budget)
    # (c) the weights and optimizer state beside the largest micro-batch fill at most 80% of the card
    assert static + max(costs) <= card * MEMORY_FRACTION
    # the plan measured on an H200 (docs/benchmarks.md, Memory: every peak within 80 GiB); a changed estimate
    # changes these, and that table must be measured again
    assert len(chunks) == {"t5-base": 2, "t5-large": 5, "qwen-1.5b": 7}[name], [len(c) for c in chunks]
