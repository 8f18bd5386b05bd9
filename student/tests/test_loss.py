"""The multi-task loss: step-by-step = label loss + weight x rationale loss; standard ignores rationales."""

from __future__ import annotations

import pytest
import torch
from conftest import comparison_records

from distillery_student.contract import Record
from distillery_student.data import TASK_LABEL, TASK_RATIONALE, build_examples
from distillery_student.modeling import Encoder, TaskLosses, compute_loss, load_student


def _records(n: int = 6) -> list[Record]:
    return [Record(id=r["id"], input=r["input"], status="ok", goldLabel=r["goldLabel"], rationale=r["rationale"])
            for r in comparison_records(n)]


@pytest.mark.parametrize("arch", ["seq2seq", "causal"])
def test_step_by_step_loss_is_label_plus_weighted_rationale(make_config, t5_dir, causal_dir, arch) -> None:
    weight = 0.7
    cfg = make_config(base=t5_dir if arch == "seq2seq" else causal_dir, arch=arch, rationaleWeight=weight)
    model, tok = load_student(cfg.student.baseModel, arch)
    model.eval()
    enc = Encoder(tok, arch, 32, 32)
    rows = [enc.row(ex) for exs in build_examples(_records(), cfg) for ex in exs]
    assert {r.task for r in rows} == {TASK_LABEL, TASK_RATIONALE}
    losses = TaskLosses(model, arch)
    with torch.no_grad():
        both = compute_loss(losses, enc.collate_by_task(rows), weight)
        mixed = compute_loss(losses, [enc.collate(rows)], weight)  # one padded batch of both tasks
        label = compute_loss(losses, [enc.collate([r for r in rows if r.task == TASK_LABEL])], weight)
        rationale = compute_loss(losses, [enc.collate([r for r in rows if r.task == TASK_RATIONALE])], weight)
    assert float(rationale.label_loss) == 0 and float(label.rationale_loss) == 0
    expected = float(label.loss) + weight * float(rationale.rationale_loss)
    assert float(both.loss) == pytest.approx(expected, rel=1e-5)
    assert float(mixed.loss) == pytest.approx(expected, rel=1e-5)
    # the label loss is the mean token cross-entropy of the label targets, as Hugging Face computes it
    if arch == "seq2seq":
        b = enc.collate([r for r in rows if r.task == TASK_LABEL])
        with torch.no_grad():
            hf = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
        assert float(label.label_loss) == pytest.approx(float(hf), rel=1e-5)


def test_standard_mode_ignores_rationales(make_config, t5_dir) -> None:
    cfg = make_config(mode="standard")
    model, tok = load_student(t5_dir, "seq2seq")
    enc = Encoder(tok, "seq2seq", 32, 32)
    records = _records()
    rows = [enc.row(ex) for exs in build_examples(records, cfg) for ex in exs]
    assert all(r.task == TASK_LABEL for r in rows) and len(rows) == len(records)
    changed = [Record(**{**r.__dict__, "rationale": "something else entirely"}) for r in records]
    rows2 = [enc.row(ex) for exs in build_examples(changed, cfg) for ex in exs]
    losses = TaskLosses(model.eval(), "seq2seq")
    with torch.no_grad():
        a = compute_loss(losses, enc.collate_by_task(rows), 1.0)
        b = compute_loss(losses, enc.collate_by_task(rows2), 1.0)
    assert float(a.loss) == float(b.loss) == float(a.label_loss)
    assert float(a.rationale_loss) == 0


def test_single_task_target_holds_rationale_and_label(make_config) -> None:
    cfg = make_config(mode="single-task")
    [[ex]] = build_examples(_records(1), cfg)
    r = _records(1)[0]
    assert ex.source == "[label] " + r.input
    assert ex.target == f"{r.rationale} So the answer is {r.label}."


@pytest.mark.parametrize("arch", ["seq2seq", "causal"])
def test_padding_to_a_multiple_does_not_change_the_loss(make_config, t5_dir, causal_dir, arch) -> None:
    cfg = make_config(base=t5_dir if arch == "seq2seq" else causal_dir, arch=arch)
    model, tok = load_student(cfg.student.baseModel, arch)
    losses = TaskLosses(model.eval(), arch)
    exs = [ex for exs in build_examples(_records(), cfg) for ex in exs]
    plain, padded = Encoder(tok, arch, 32, 32), Encoder(tok, arch, 32, 32, pad_multiple=16)
    with torch.no_grad():
        a = compute_loss(losses, plain.collate_tasks([plain.row(e) for e in exs], concat=False), 1.0)
        b = compute_loss(losses, padded.collate_tasks([padded.row(e) for e in exs], concat=True), 1.0)
    assert padded.collate([padded.row(exs[0])])["input_ids"].shape[1] % 16 == 0
    assert float(a.loss) == pytest.approx(float(b.loss), rel=1e-5)


@pytest.mark.parametrize("arch", ["seq2seq", "causal"])
def test_padded_picks_leave_the_loss_unchanged(make_config, t5_dir, causal_dir, arch) -> None:
    """CUDA graphs pad the picked target positions to a fixed multiple (graphs.PICK_MULTIPLE); the padding
    points at position 0 with IGNORE as its target, so the sums and counts are those of the exact picks."""
    cfg = make_config(base=t5_dir if arch == "seq2seq" else causal_dir, arch=arch)
    model, tok = load_student(cfg.student.baseModel, arch)
    rows = [Encoder(tok, arch, 32, 32).row(ex) for exs in build_examples(_records(), cfg) for ex in exs]
    exact = Encoder(tok, arch, 32, 32).collate(rows)
    padded = Encoder(tok, arch, 32, 32, pick_multiple=64).collate(rows)
    targets = sum(len(r.target) for r in rows)
    assert len(exact["pick"]) == targets and len(padded["pick"]) % 64 == 0 and len(padded["pick"]) > targets
    losses = TaskLosses(model.eval(), arch)
    with torch.no_grad():
        a, b = losses([exact]), losses([padded])
    assert torch.allclose(a, b, rtol=1e-6)
    assert float(a[1] + a[3]) == targets  # label + rationale token counts
