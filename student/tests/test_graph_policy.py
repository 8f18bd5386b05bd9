"""When the trainer replays its steps as CUDA graphs (graphs.wanted): off wins, on forces, auto needs a long job."""

import pytest

from distillery_student.graphs import MIN_STEPS, wanted


@pytest.mark.parametrize("flag, spec, steps, want", [
    ("auto", "auto", MIN_STEPS, True),  # a long job pays back its captures
    ("auto", "auto", MIN_STEPS - 1, False),  # a short one does not
    ("on", "auto", 10, True),  # the flag forces them (benchmarks)
    ("on", "off", 10_000, False),  # the spec's off wins over the flag
    ("off", "auto", 10_000, False),
    ("auto", "off", 10_000, False),
])
def test_graphs_are_wanted_for_long_jobs_unless_turned_off(flag: str, spec: str, steps: int, want: bool) -> None:
    on, why = wanted(flag, spec, steps)
    assert on is want
    assert why  # the log says why


def test_a_short_job_is_told_why_it_trains_eagerly() -> None:
    assert wanted("auto", "auto", 120) == (False, f"off for a job of 120 steps (auto: at least {MIN_STEPS} pay back the captures)")
