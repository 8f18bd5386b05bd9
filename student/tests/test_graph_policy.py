"""When the trainer replays its steps as CUDA graphs (graphs.wanted): off wins, on forces, auto trains eagerly.
When it compiles the blocks (step.compile_wanted): on a GPU when asked, never under FSDP."""

import logging

import pytest

from distillery_student.graphs import wanted
from distillery_student.step import compile_wanted
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


@pytest.mark.parametrize("flag, spec, device, fsdp, want", [
    (False, False, "cuda", False, False),
    (False, True, "cuda", False, True),  # training.compile on a GPU
    (False, True, "cpu", False, False),  # ... not on a CPU
    (True, False, "cpu", False, True),  # the flag forces it (benchmarks, tests)
    (True, True, "cuda", True, False),  # never under FSDP
])
def test_blocks_compile_on_a_gpu_when_asked_and_never_under_fsdp(flag: bool, spec: bool, device: str, fsdp: bool,
                                                                  want: bool) -> None:
    on, why = compile_wanted(flag, spec, device, fsdp)
    assert on is want and why


def test_training_compile_on_a_cpu_trains_uncompiled_and_says_so(make_config, caplog) -> None:
    """train.json's training.compile (spec.training.compile) on a CPU: the blocks stay eager and the log says why."""
    caplog.set_level(logging.INFO, logger="distillery_student")
    result = train(make_config(maxSteps=2, compile=True), TrainOptions())
    assert not result.error
    assert "compiled blocks off: training.compile applies on a GPU" in caplog.text
