"""The report's figures, drawn with matplotlib (Agg backend) and written as SVG text.

- a single run: its loss curves (with the validation accuracy and the served step) and the confusion matrix;
- a sweep: the data-efficiency curve, the student's score against the data fraction, one line per mode (and
  per rationale weight or base model where those vary), mean and standard deviation over seeds as error bars,
  the teacher's accuracy as a horizontal line.
SVG text stays text (svg.fonttype none) and carries no date, so a report is small, searchable and repeatable.
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

_RC = {"svg.fonttype": "none", "svg.hashsalt": "distillery", "font.size": 9}


def to_svg(fig: Figure) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _loss_axes(ax: Any, curves: dict[str, Any], best_step: int | None) -> None:
    for key, name in (("loss", "loss"), ("labelLoss", "label loss"), ("rationaleLoss", "rationale loss")):
        if any(curves.get(key, [])):
            ax.plot(curves["step"], curves[key], label=name, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Training")
    if best_step:
        ax.axvline(best_step, linestyle="--", color="grey", linewidth=1, label=f"served step {best_step}")
    handles, names = ax.get_legend_handles_labels()
    val = curves.get("validationAccuracy", [])
    if val:
        acc = ax.twinx()
        acc.plot([s for s, _ in val], [a for _, a in val], "o-", color="black", markersize=3,
                 label="validation accuracy")
        acc.set_ylabel("validation accuracy")
        acc.set_ylim(0, 1.02)
        more = acc.get_legend_handles_labels()
        handles, names = handles + more[0], names + more[1]
    ax.legend(handles, names, loc="center right", fontsize=7)


def _confusion_axes(ax: Any, confusion: dict[str, Any]) -> None:
    labels, matrix = confusion["labels"], confusion["matrix"]
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion matrix (eval split)")
    top = max((v for row in matrix for v in row), default=0)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")


def run_figure(metrics: dict[str, Any]) -> str:
    """A single run: loss curves, and the confusion matrix where there are gold labels."""
    confusion = metrics.get("confusion")
    fig, axes = plt.subplots(1, 2 if confusion else 1, figsize=(11 if confusion else 6, 4), squeeze=False,
                             layout="constrained")
    _loss_axes(axes[0][0], metrics.get("curves", {}), metrics.get("bestStep"))
    if confusion:
        _confusion_axes(axes[0][1], confusion)
    return to_svg(fig)


def _line_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The settings that vary between the sweep's points (always the mode)."""
    varying = [k for k in ("rationaleWeight", "baseModel") if len({r.get(k) for r in rows}) > 1]
    return ["mode"] + varying


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def sweep_figure(rows: Sequence[dict[str, Any]], score_key: str, score_name: str, teacher: float | None) -> str:
    """The data-efficiency curve of a sweep's rows (each with fraction, seed, the settings and score_key)."""
    names = _line_names(rows)
    lines: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get(score_key) is not None:
            lines[tuple(r.get(n) for n in names)][float(r["fraction"])].append(float(r[score_key]))
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    for key, by_fraction in sorted(lines.items(), key=lambda kv: str(kv[0])):
        xs = sorted(by_fraction)
        means, errs = zip(*(_spread(by_fraction[x]) for x in xs))
        label = ", ".join(str(v) if n == "mode" else f"{n} {v}" for n, v in zip(names, key))
        ax.errorbar(xs, means, yerr=errs, marker="o", capsize=3, label=label)
    if teacher is not None:
        ax.axhline(teacher, linestyle="--", color="black", linewidth=1, label=f"teacher ({teacher:.3f})")
    fractions = sorted({float(r["fraction"]) for r in rows})
    if len(fractions) > 1:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(fractions))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{100 * f:g}%" for f in fractions])
    ax.margins(y=0.1)
    ax.set_xlabel("data fraction (nested subsets)")
    ax.set_ylabel(score_name)
    ax.set_title("Data efficiency (error bars: standard deviation over seeds)")
    ax.legend(fontsize=7)
    return to_svg(fig)
