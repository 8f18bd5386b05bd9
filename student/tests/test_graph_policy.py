"""When the trainer replays its steps as CUDA graphs (graphs.wanted): off wins, on forces, auto trains eagerly."""

import pytest

from distillery_student.graphs import wanted


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
