"""The run's curves for metrics.json and the report: losses per step (averaged over at most MAX_POINTS
intervals, so a long run's curves stay small enough for a ConfigMap) and the validation accuracy at each
evaluation. A checkpoint holds the history, so a resumed run keeps its curves."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_POINTS = 500
LOSS_KEYS = ("loss", "labelLoss", "rationaleLoss")


@dataclass
class History:
    every: int = 1  # steps per curve point
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    labelLoss: list[float] = field(default_factory=list)
    rationaleLoss: list[float] = field(default_factory=list)
    validationAccuracy: list[list[float]] = field(default_factory=list)  # [[step, accuracy], ...]
    pending: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # sums since the last point
    pendingSteps: int = 0

    @classmethod
    def for_steps(cls, total: int) -> "History":
        return cls(every=max(1, math.ceil(total / MAX_POINTS)))

    def add_step(self, step: int, parts: tuple[float, float, float], last: bool = False) -> None:
        """One optimizer step's [loss, label loss, rationale loss]; a point every `every` steps and at `last`."""
        self.pending = [s + p for s, p in zip(self.pending, parts)]
        self.pendingSteps += 1
        if step % self.every == 0 or last:
            self.step.append(step)
            for key, s in zip(LOSS_KEYS, self.pending):
                getattr(self, key).append(s / self.pendingSteps)
            self.pending, self.pendingSteps = [0.0, 0.0, 0.0], 0

    def add_validation(self, step: int, accuracy: float) -> None:
        self.validationAccuracy.append([step, accuracy])

    def best(self) -> tuple[int, float] | None:
        """(step, accuracy) of the best validation; a tie goes to the later step, which trained longer."""
        if not self.validationAccuracy:
            return None
        step, acc = max(self.validationAccuracy, key=lambda sa: (sa[1], sa[0]))
        return int(step), acc

    def curves(self) -> dict[str, Any]:
        return {"step": list(self.step), **{k: list(getattr(self, k)) for k in LOSS_KEYS},
                "validationAccuracy": [[int(s), a] for s, a in self.validationAccuracy]}

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, total: int) -> "History":
        return cls(**state) if state else cls.for_steps(total)
