"""When the trainer replays its steps as CUDA graphs (graphs.wanted): off wins, on forces, auto trains eagerly.
When it compiles the blocks (step.compiled_blocks_wanted): where measured, when asked; never under sharded FSDP."""

import dataclasses
import logging

import pytest

from distillery_student.graphs import wanted
from distillery_student import step
from distillery_student.train import TrainOptions, train


@pytest.mark.parametrize("flag, spec, want", [
    ("auto", "auto", False),  # graphs did not shorten a measured job through train() (docs/benchmarks.md)
    ("on", "auto", True),  # the flag forces them (benchmarks)
    ("on", "off", False),  # the spec's off wins over the flag
    ("off", "auto", False),
    ("auto", "off", False),
])
def test_graphs_only_when_forced_and_not_turned_off(flag: str, spec: str, want: bool) -> None:
    on, why = wanted(flag, spec)
    assert on is want
    assert why  # the log says why


def test_auto_is_told_why_it_trains_eagerly() -> None:
    on, why = wanted("auto", "auto")
    assert not on and "--cuda-graphs on" in why


T5_ONE_GPU = step.CompileCase("t5", "cuda", processes=1, fsdp=False, lora=False, checkpointing=False)


@pytest.mark.parametrize("flag, spec, case, want, why", [
    (False, False, {}, False, "off"),
    (False, True, {}, True, "on (training.compile)"),
    (False, True, {"device": "cpu"}, False, "off: training.compile applies on a GPU"),
    (False, True, {"model_type": "qwen2"}, False, "off: training.compile was measured for T5 students only"),
    (False, True, {"model_type": "bart"}, False, "off: training.compile was measured for T5 students only"),
    (False, True, {"processes": 2}, False, "off: training.compile was measured in one process only"),
    (False, True, {"lora": True}, False, "off: training.compile was not measured with LoRA"),
    (False, True, {"checkpointing": True}, False, "off: training.compile was not measured with activation"),
    # the flag forces it (benchmarks, tests), except where FSDP shards the model
    (True, False, {"model_type": "qwen2", "device": "cpu", "checkpointing": True, "lora": True}, True, "on (--compile)"),
    (True, False, {"processes": 2}, True, "on (--compile)"),
    (True, False, {"processes": 2, "fsdp": True}, False, "off: not when FSDP shards the model"),
    (False, True, {"processes": 2, "fsdp": True}, False, "off: not when FSDP shards the model"),
])
def test_blocks_compile_where_measured_when_asked(monkeypatch, flag: bool, spec: bool, case: dict, want: bool,
                                                  why: str) -> None:
    monkeypatch.setattr(step, "compiler_missing", lambda: "")
    on, reason = step.compiled_blocks_wanted(flag, spec, dataclasses.replace(T5_ONE_GPU, **case))
    assert on is want and reason.startswith(why)


def test_training_compile_without_a_c_compiler_is_turned_off(monkeypatch) -> None:
    """Triton builds its launcher with a C compiler: without one the first compiled step would fail the job."""
    monkeypatch.setattr(step, "compiler_missing", lambda: "no C compiler for Triton ($CC, gcc or clang)")
    assert step.compiled_blocks_wanted(False, True, T5_ONE_GPU) == (
        False, "off: no C compiler for Triton ($CC, gcc or clang)")


def test_training_compile_on_a_cpu_trains_uncompiled_and_says_so(make_config, caplog) -> None:
    """train.json's training.compile (spec.training.compile) on a CPU: the blocks stay eager and the log says why."""
    caplog.set_level(logging.INFO, logger="distillery_student")
    result = train(make_config(maxSteps=2, compile=True), TrainOptions())
    assert not result.error
    assert "compiled blocks off: training.compile applies on a GPU" in caplog.text
