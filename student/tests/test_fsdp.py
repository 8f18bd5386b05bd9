"""training.strategy FSDP (FSDP2, fully_shard) under torchrun with two CPU processes (gloo): the same losses
and weights as DDP at a fixed seed, and a resumed FSDP run ends where an uninterrupted one did; with padded
micro-batches and with packed ones (--packing on, as on a GPU)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from distillery_student.contract import train_config_to_dict


def _torchrun(cfg: Any, tmp_path: Path, name: str, *flags: str) -> dict[str, Any]:
    from conftest import torchrun_train

    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(train_config_to_dict(cfg)))
    term = tmp_path / f"{name}.term"
    p = torchrun_train(path, term, *flags)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads(term.read_text())
    assert "error" not in summary, summary
    summary["log"] = p.stderr
    return summary


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(model_dir).state_dict()


def _metrics(cfg: Any) -> dict[str, Any]:
    return json.loads(Path(cfg.output.metricsPath).read_text())


@pytest.fixture(scope="module", params=["off", "on"])
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, t5_dir: str) -> dict[str, Any]:
    """A DDP and an FSDP run of the same config (4 steps, a checkpoint at step 2), two processes each."""
    from conftest import comparison_records, write_records
    from distillery_student.contract import parse_train_config

    tmp = tmp_path_factory.mktemp("fsdp")
    ann = write_records(tmp / "annotations", comparison_records(64))
    out: dict[str, Any] = {"tmp": tmp, "flags": ("--packing", request.param)}
    for strategy in ("DDP", "FSDP"):
        raw = json.loads((Path(__file__).resolve().parents[2] / "testdata/contract/train.json").read_text())
        raw["training"].pop("lora")
        raw["student"] = {"baseModel": t5_dir, "architecture": "seq2seq"}
        raw["data"] = {"annotationsDir": ann, "evalFraction": 0.2}
        raw["task"] = {"type": "classification", "labels": ["first", "second"], "labelPrefix": "[label] ",
                       "rationalePrefix": "[rationale] "}
        raw["training"].update({"epochs": 0, "maxSteps": 4, "batchSize": 8, "learningRate": 1e-3,
                                "maxInputLength": 32, "maxTargetLength": 32, "checkpointEverySteps": 2,
                                "strategy": strategy})
        o = tmp / strategy
        raw["output"] = {"checkpointDir": str(o / "checkpoints"), "modelDir": str(o / "model"),
                         "metricsPath": str(o / "metrics.json")}
        cfg = parse_train_config(raw)
        out[strategy] = (cfg, _torchrun(cfg, tmp, strategy, *out["flags"]))
    return out


def test_fsdp_trains_like_ddp_at_a_fixed_seed(runs: dict[str, Any]) -> None:
    (ddp_cfg, ddp), (fsdp_cfg, fsdp) = runs["DDP"], runs["FSDP"]
    assert ddp["steps"] == fsdp["steps"] == 4
    a, b = _metrics(ddp_cfg), _metrics(fsdp_cfg)
    for key in ("trainLoss", "labelLoss", "rationaleLoss"):
        assert b[key] == pytest.approx(a[key], rel=1e-5), key
    wa, wb = _weights(ddp_cfg.output.modelDir), _weights(fsdp_cfg.output.modelDir)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], atol=1e-5, rtol=0, msg=k)
    assert sorted(os.listdir(fsdp_cfg.output.checkpointDir)) == ["best", "step-00000002"]
    assert a["bestStep"] == b["bestStep"] and a["curves"]["validationAccuracy"] == b["curves"]["validationAccuracy"]


def test_fsdp_resumes_from_its_checkpoint(runs: dict[str, Any]) -> None:
    cfg, _ = runs["FSDP"]
    first = {k: v.clone() for k, v in _weights(cfg.output.modelDir).items()}
    shutil.rmtree(cfg.output.modelDir)  # as if the pod died after the step-2 checkpoint: run it again
    summary = _torchrun(cfg, runs["tmp"], "FSDP-again", *runs["flags"])
    assert summary["steps"] == 4 and "resumed from" in summary["log"] and "step-00000002" in summary["log"]
    again = _weights(cfg.output.modelDir)
    for k, v in first.items():
        torch.testing.assert_close(again[k], v, atol=1e-5, rtol=0, msg=k)
