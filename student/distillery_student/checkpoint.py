"""Atomic training checkpoints: model, optimizer, scheduler, RNG (one file per rank) and data position.

A checkpoint is written under checkpointDir/.tmp-step-NNNNNNNN and renamed to step-NNNNNNNN once complete,
so a folder named step-* is always whole. A restarted trainer loads the newest one.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from typing import Any

import torch

_NAME = re.compile(r"^step-(\d{8})$")
KEEP = 2


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def newest_checkpoint(checkpoint_dir: str) -> str | None:
    if not os.path.isdir(checkpoint_dir):
        return None
    steps = []
    for name in os.listdir(checkpoint_dir):
        m = _NAME.match(name)
        if m and os.path.exists(os.path.join(checkpoint_dir, name, "state.pt")):
            steps.append((int(m.group(1)), name))
    return os.path.join(checkpoint_dir, max(steps)[1]) if steps else None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def tmp_path(checkpoint_dir: str, step: int) -> str:
    return os.path.join(checkpoint_dir, ".tmp-" + checkpoint_name(step))


def write_rank_rng(checkpoint_dir: str, step: int, rank: int) -> None:
    torch.save(rng_state(), os.path.join(tmp_path(checkpoint_dir, step), f"rng-{rank}.pt"))


def begin(checkpoint_dir: str, step: int) -> None:
    """Rank 0: a fresh temporary folder for the checkpoint of `step`."""
    tmp = tmp_path(checkpoint_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)


def commit(checkpoint_dir: str, step: int, state: dict[str, Any]) -> str:
    """Rank 0, after every rank wrote its RNG: the state, then the rename that makes the checkpoint count."""
    tmp = tmp_path(checkpoint_dir, step)
    path = os.path.join(tmp, "state.pt")
    with open(path, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    final = os.path.join(checkpoint_dir, checkpoint_name(step))
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    _fsync_dir(checkpoint_dir)
    _prune(checkpoint_dir)
    return final


def load(path: str, rank: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    state = torch.load(os.path.join(path, "state.pt"), map_location="cpu", weights_only=False)
    rng_file = os.path.join(path, f"rng-{rank}.pt")
    rng = torch.load(rng_file, weights_only=False) if os.path.exists(rng_file) else None
    return state, rng


def _prune(checkpoint_dir: str) -> None:
    names = sorted(n for n in os.listdir(checkpoint_dir) if _NAME.match(n))
    for name in names[:-KEEP]:
        shutil.rmtree(os.path.join(checkpoint_dir, name), ignore_errors=True)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
