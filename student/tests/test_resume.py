"""Checkpoints: a stopped and restarted run ends with the weights of an uninterrupted one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from distillery_student import checkpoint
from distillery_student.contract import InvalidInput
from distillery_student.train import TrainOptions, train


@pytest.fixture(scope="module")
def t5_dropout_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny T5 with dropout, so a resumed run must restore the RNG to match."""
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    torch.manual_seed(1)
    cfg = T5Config(vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4,
                   dropout_rate=0.1, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    d = tmp_path_factory.mktemp("t5drop")
    T5ForConditionalGeneration(cfg).save_pretrained(d)
    ByT5Tokenizer().save_pretrained(d)
    return str(d)


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSeq2SeqLM

    return {k: v.clone() for k, v in AutoModelForSeq2SeqLM.from_pretrained(model_dir).state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


class _Reports:
    """A progress reporter that keeps what it is given."""

    def __init__(self) -> None:
        self.values: list[dict] = []

    def report(self, value: dict, force: bool = False) -> None:
        self.values.append(dict(value))

    def flush(self) -> None:
        pass


# every: validation at every step (every step's losses read at once), or every 5 (steps between validations
# and checkpoints have their losses read one step late)
@pytest.mark.parametrize("every,validations", [(0, 12), (5, 3)])
def test_resume_continues_the_same_run(make_config, t5_dropout_dir: str, every: int, validations: int) -> None:
    common = dict(base=t5_dropout_dir, maxSteps=12, batchSize=8, checkpointEverySteps=4, learningRate=1e-3,
                  evalEverySteps=every)
    straight = make_config(out="straight", **common)
    train(straight)

    cfg = make_config(out="resumed", **common)
    stopped = train(cfg, TrainOptions(stop_after_steps=6))
    assert stopped.error and stopped.steps == 6
    assert not os.path.exists(cfg.output.modelDir), "a stopped run must not leave a final model"
    ckpts = sorted(os.listdir(cfg.output.checkpointDir))
    assert ckpts == ["best", "step-00000004", "step-00000006"]  # best: the best validated weights so far
    # a half-written checkpoint (a crash mid-write) is ignored
    os.makedirs(os.path.join(cfg.output.checkpointDir, ".tmp-" + checkpoint.checkpoint_name(9)))
    os.makedirs(os.path.join(cfg.output.checkpointDir, checkpoint.checkpoint_name(10)))  # no state.pt
    assert checkpoint.newest_checkpoint(cfg.output.checkpointDir).endswith("step-00000006")

    before = checkpoint.load(os.path.join(cfg.output.checkpointDir, "step-00000006"), 0)[0]["wallSeconds"]
    resumed_steps: list[int] = []
    reports = _Reports()
    result = train(cfg, TrainOptions(on_step=lambda s, m: resumed_steps.append(s), progress=reports))
    assert reports.values[0]["step"] == 7 and reports.values[0]["loss"] > 0  # the resumed pod's first report
    assert result.wallSeconds > before > 0  # the wall time of every pod of the run
    assert resumed_steps[0] == 7 and result.steps == 12
    _assert_same(_weights(straight.output.modelDir), _weights(cfg.output.modelDir), atol=1e-5)
    # the checkpoint carried the curves and the validation history: the same best step, the same curves
    a, b = (json.loads(Path(c.output.metricsPath).read_text()) for c in (straight, cfg))
    assert a["bestStep"] == b["bestStep"] and len(b["curves"]["validationAccuracy"]) == validations
    assert b["curves"]["step"] == list(range(1, 13))
    for key in ("loss", "labelLoss", "rationaleLoss"):
        assert b["curves"][key] == pytest.approx(a["curves"][key], rel=1e-4), key
    assert b["curves"]["validationAccuracy"] == a["curves"]["validationAccuracy"]


def test_micro_batches_give_the_gradient_of_the_whole_batch(make_config, t5_dir: str) -> None:
    common = dict(maxSteps=3, batchSize=8, learningRate=1e-3)
    whole = make_config(out="whole", **common)
    train(whole)
    micro = make_config(out="micro", **common)
    train(micro, TrainOptions(micro_batch_size=3))
    _assert_same(_weights(whole.output.modelDir), _weights(micro.output.modelDir), atol=1e-5)
    assert Path(micro.output.modelDir, "distillery.json").exists()


def test_another_job_runs_checkpoints_are_never_resumed(make_config) -> None:
    cfg = make_config(out="shared", maxSteps=4)
    os.makedirs(cfg.output.checkpointDir)
    other = '{"job":"%s","uid":"an-earlier-run"}\n' % cfg.job
    Path(cfg.output.jobDir, "job.json").write_text(other)
    with pytest.raises(InvalidInput, match="belongs to job .* \\(uid an-earlier-run\\)"):
        train(cfg)
    assert os.listdir(cfg.output.checkpointDir) == [] and not os.path.exists(cfg.output.modelDir)
    assert Path(cfg.output.jobDir, "job.json").read_text() == other


def test_a_resume_with_packing_turned_on_keeps_the_batch_order_of_the_checkpoint(make_config, t5_dir: str,
                                                                                  caplog) -> None:
    """A run checkpointed with padded, length-bucketed batches (as every run before packing) and resumed with
    packing (an upgrade, or --packing changed) keeps its batches: the checkpoint says how they were drawn.
    Packing alone changes no loss (no dropout here), so the weights equal an uninterrupted padded run's."""
    common = dict(maxSteps=10, batchSize=8, checkpointEverySteps=5, learningRate=1e-3)
    straight = make_config(out="straight", **common)
    train(straight, TrainOptions(packing="off"))
    cfg = make_config(out="resumed", **common)
    assert train(cfg, TrainOptions(stop_after_steps=5, packing="off")).steps == 5
    with caplog.at_level("WARNING", logger="distillery_student"):
        result = train(cfg, TrainOptions(packing="on"))
    assert result.steps == 10 and not result.error
    assert "resumed with the batch order of the run that wrote the checkpoint" in caplog.text
    _assert_same(_weights(straight.output.modelDir), _weights(cfg.output.modelDir), atol=1e-4)
