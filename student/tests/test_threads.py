"""Serving on a CPU: torch threads follow the CPUs the pod may use, not the node's cores."""

from __future__ import annotations

import os
from pathlib import Path

from distillery_student.serve import cpu_threads


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def test_a_cpu_limit_sets_the_threads_less_one_for_the_event_loop(tmp_path: Path) -> None:
    limit = tmp_path / "cpu.max"
    limit.write_text("300000 100000\n")  # a limit of 3 CPUs
    assert cpu_threads(str(limit)) == max(1, min(3, _cpus()) - 1)
    limit.write_text("150000 100000\n")  # 1.5 CPUs: 1 thread
    assert cpu_threads(str(limit)) == 1


def test_without_a_limit_the_affinity_counts(tmp_path: Path) -> None:
    limit = tmp_path / "cpu.max"
    limit.write_text("max 100000\n")
    assert cpu_threads(str(limit)) == max(1, _cpus() - 1)
    assert cpu_threads(str(tmp_path / "missing")) == max(1, _cpus() - 1)
