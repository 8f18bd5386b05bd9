"""torchrun: two CPU processes (gloo) end with the weights of one process on the same batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import torchrun_train
from distillery_student.contract import train_config_to_dict
from distillery_student.train import TrainOptions, train


@pytest.mark.parametrize("packing", ["off", "on"])
def test_torchrun_two_processes_match_one(make_config, tmp_path: Path, packing: str) -> None:
    """Packed, each rank packs its own share of the batch; the weights still match one process packing it all."""
    from transformers import AutoModelForSeq2SeqLM

    common = dict(maxSteps=4, batchSize=8, learningRate=1e-3, checkpointEverySteps=2)
    single = make_config(out="single", **common)
    one = train(single, TrainOptions(packing=packing))

    cfg = make_config(out="ddp", **common)
    path = tmp_path / "train.json"
    path.write_text(json.dumps(train_config_to_dict(cfg)))
    p = torchrun_train(path, tmp_path / "term", "--packing", packing, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((tmp_path / "term").read_text())
    assert summary["steps"] == 4 and "error" not in summary
    a = AutoModelForSeq2SeqLM.from_pretrained(single.output.modelDir).state_dict()
    b = AutoModelForSeq2SeqLM.from_pretrained(cfg.output.modelDir).state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0, msg=k)
    assert sorted(os.listdir(cfg.output.checkpointDir)) == ["best", "step-00000002"]
    assert summary["bestStep"] == one.bestStep  # every rank learned the same scores


def test_a_rank_exits_with_its_code_and_its_output_flushed(tmp_path: Path) -> None:
    """exit_rank skips interpreter finalization (gloo's teardown race) but loses nothing written before it."""
    script = ("import logging, sys\n"
              "from distillery_student.parallel import exit_rank\n"
              f"logging.basicConfig(filename={str(tmp_path / 'log')!r}, level=logging.INFO)\n"
              "logging.getLogger('x').info('done: the summary')\n"
              "sys.stdout.write('buffered, no newline')\n"
              "exit_rank(3)\n"
              "print('not reached')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout to a pipe: block-buffered
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                       cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 3, p.stderr
    assert p.stdout == "buffered, no newline"
    assert "done: the summary" in (tmp_path / "log").read_text()
