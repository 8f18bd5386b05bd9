"""Shared fixtures: tiny random students saved like real ones, synthetic annotations, train configs."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from distillery_student.contract import parse_train_config
from distillery_student.modeling import quiet_transformers

CONTRACT = Path(__file__).resolve().parents[2] / "testdata" / "contract"

torch.set_num_threads(1)  # tiny models: threads only add sync overhead, worse on a busy machine
quiet_transformers()


def _tokenizer() -> Any:
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()  # byte-level: needs no files


@pytest.fixture(scope="session")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny T5 with random weights and the ByT5 tokenizer, saved with save_pretrained."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=384, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
                   dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    d = tmp_path_factory.mktemp("t5")
    T5ForConditionalGeneration(cfg).save_pretrained(d)
    _tokenizer().save_pretrained(d)
    return str(d)


@pytest.fixture(scope="session")
def causal_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny Llama-style decoder with random weights and the ByT5 tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      pad_token_id=0, eos_token_id=1, bos_token_id=None)
    d = tmp_path_factory.mktemp("llama")
    LlamaForCausalLM(cfg).save_pretrained(d)
    _tokenizer().save_pretrained(d)
    return str(d)


def comparison_records(n: int, seed: int = 0, lo: int = 0, hi: int = 10) -> list[dict[str, Any]]:
    """Which of two numbers is larger, with a rationale that states both."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.sample(range(lo, hi), 2)
        label = "first" if a > b else "second"
        out.append({"id": f"r{i}", "input": f"{a} {b}", "goldLabel": label, "teacherLabel": label,
                    "rationale": f"{a} is {'more' if a > b else 'less'} than {b}", "status": "ok",
                    "usage": {"promptTokens": 1, "completionTokens": 1}})
    return out


def write_records(d: Path, records: list[dict[str, Any]]) -> str:
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "shard-00000-of-00001.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return str(d)


@pytest.fixture
def make_config(tmp_path: Path, t5_dir: str) -> Callable[..., Any]:
    """train.json for the synthetic task in tmp_path; keyword overrides go into the training section."""

    def make(records: list[dict[str, Any]] | None = None, base: str | None = None, arch: str = "seq2seq",
             out: str = "run", data: dict[str, Any] | None = None, **training: Any) -> Any:
        ann = write_records(tmp_path / "annotations", records if records is not None else comparison_records(64))
        raw = json.loads((CONTRACT / "train.json").read_text())
        raw["student"] = {"baseModel": base or t5_dir, "architecture": arch}
        raw["data"] = {"annotationsDir": ann, "evalFraction": 0.2, "idField": "id", "inputField": "input",
                       "labelField": "label", **(data or {})}
        raw["task"] = {"type": "classification", "labels": ["first", "second"], "labelPrefix": "[label] ",
                       "rationalePrefix": "[rationale] "}
        raw["training"].pop("lora")  # the vector's LoRA applies only where a test asks for it
        raw.pop("point")  # a single run, not a sweep's point
        raw["training"].update({"epochs": 0, "maxSteps": 10, "batchSize": 8, "learningRate": 1e-3,
                                "maxInputLength": 32, "maxTargetLength": 32, "precision": "bf16",
                                "checkpointEverySteps": 0, **training})
        o = tmp_path / out
        raw["output"] = {"jobDir": str(o), "checkpointDir": str(o / "checkpoints"), "modelDir": str(o / "model"),
                         "metricsPath": str(o / "metrics.json")}
        return parse_train_config(raw)

    return make


@pytest.fixture(scope="session")
def served_model_dir(tmp_path_factory: pytest.TempPathFactory, t5_dir: str) -> str:
    """A tiny T5 student trained for 40 steps on the comparison task (labels first/second), as the server
    loads it: model, tokenizer and distillery.json."""
    from distillery_student.train import train

    tmp = tmp_path_factory.mktemp("serve")
    raw = json.loads((CONTRACT / "train.json").read_text())
    raw["student"]["baseModel"] = t5_dir
    raw["data"] = {"annotationsDir": write_records(tmp / "ann", comparison_records(64)), "evalFraction": 0.1}
    raw["task"] = {"type": "classification", "labels": ["first", "second"], "labelPrefix": "[label] ",
                   "rationalePrefix": "[rationale] "}
    raw["training"].pop("lora", None)  # full fine-tuning
    raw["training"].update(maxSteps=40, batchSize=16, learningRate=3e-3, maxInputLength=32, maxTargetLength=24,
                           checkpointEverySteps=0)
    raw["output"] = {"checkpointDir": str(tmp / "ck"), "modelDir": str(tmp / "model"), "metricsPath": str(tmp / "m.json")}
    train(parse_train_config(raw))
    return str(tmp / "model")


def torchrun_train(config: Path, termination_log: Path, *flags: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m distillery_student train` under torchrun with two CPU processes (gloo), configured the
    operator's way (PET_* variables). A run past its timeout is stopped, ranks and all (_stop_torchrun), so a
    hung run leaves none behind to load the rest of the suite."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PET_NNODES": "1", "PET_NPROC_PER_NODE": "2", "PET_NODE_RANK": "0",
           "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "-m", "distillery_student", "train",
           "--config", str(config), "--termination-log", str(termination_log), *flags]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1]) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException:
            _stop_torchrun(p)
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def _stop_torchrun(p: subprocess.Popen) -> None:
    """SIGTERM to the launcher, which forwards it to every rank (each runs in a session of its own, out of reach
    of a process-group kill) and kills them after its grace period; SIGKILL to the launcher after 60 s."""
    p.terminate()
    try:
        p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
