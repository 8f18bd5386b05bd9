"""Step-by-step vs standard fine-tuning: the data-efficiency sweep of issue 10, through the trainer's real CLI.

One annotation set from a program that stands in for a perfect teacher (sbs_task.py), one random-weight T5 built
from a config with the ByT5 tokenizer (no downloads), then one `python -m distillery_student train --config
train-<i>.json` per point of {fractions} x {modes} x {seeds}, several at once (--parallel), each config rendered
the way the operator renders a sweep point (controllers/render_config.go; CONTRACT-10: data.fraction,
data.subsetSeed, point). Every point is evaluated on one held-out eval file with gold labels (data.evalPath).
Writes results.json (every point and the settings), table.md (median [min-max] over seeds per fraction x mode)
and curve.svg / curve.png (accuracy against data fraction, one line per mode) under --out.

    python3 bench/sbs_sweep.py --quick --out /tmp/sbs-quick          # CPU smoke test, about a minute
    python3 bench/sbs_sweep.py --out /tmp/sbs --parallel 12          # the full sweep on one GPU (sbs_device.sh)

Data fractions: a trainer that implements data.fraction (CONTRACT-10) subsets the records itself (--subset
trainer); an older one ignores the field, so the harness writes each point's subset to its own annotations
folder with the same hashes (--subset harness). --subset auto (default) asks the installed trainer's contract.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

STUDENT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(STUDENT_DIR)]  # sbs_task; the trainer without pip install
import sbs_task  # noqa: E402
MODES = ("step-by-step", "standard")
JOB_UID = "5b5b0000-0000-4000-8000-000000000010"
# T5 shapes (random weights): d_model, d_ff, layers (encoder = decoder), heads; d_kv = d_model / heads
SHAPES = {"tiny": (64, 128, 2, 4), "mini": (128, 512, 2, 4), "small": (256, 1024, 4, 4), "medium": (384, 1536, 6, 6)}


@dataclass
class Settings:
    """Everything a point depends on; written into results.json."""

    task: str = "sum-compare"
    digits: int = 3
    train_records: int = 4000
    eval_records: int = 1000
    data_seed: int = 0
    shape: str = "mini"  # chosen by the probe (docs/benchmarks.md): "small" had not started learning by step 400
    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 1e-3
    rationale_weight: float = 1.0
    precision: str = "auto"
    max_input_length: int = 64
    max_target_length: int = 64
    validation_fraction: float = 0.1
    eval_every_steps: int = 0
    fractions: list[float] = field(default_factory=lambda: [0.125, 0.25, 0.5, 1.0])
    modes: list[str] = field(default_factory=lambda: list(MODES))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    subset: str = "auto"  # auto, trainer or harness (resolved before the run)


@dataclass(frozen=True)
class Point:
    index: int
    fraction: float
    mode: str
    seed: int


def grid(s: Settings) -> list[Point]:
    """Seed-major, so the first points to finish cover every fraction and mode once."""
    pts = [(seed, f, m) for seed in s.seeds for f in s.fractions for m in s.modes]
    return [Point(i, f, m, seed) for i, (seed, f, m) in enumerate(pts)]


def trainer_features() -> dict[str, bool]:
    """What the installed trainer's contract implements (CONTRACT-10): data.fraction, eval-shard files."""
    from distillery_student import contract

    names = {f.name for f in dataclasses.fields(contract.TrainData)}
    return {"fraction": "fraction" in names and "subsetSeed" in names,
            "evalShards": hasattr(contract, "eval_shard_file_name")}


def job_dir(out: Path, s: Settings) -> Path:
    return out / "workspace" / "jobs" / f"sbs-{s.task}-{JOB_UID}"


def annotations_dir(out: Path, s: Settings, p: Point) -> Path:
    if s.subset == "trainer":
        return job_dir(out, s) / "annotations"
    return job_dir(out, s) / "subsets" / f"f{p.fraction:g}-s{p.seed}"


def prepare_data(out: Path, s: Settings, eval_shards: bool) -> dict[str, Any]:
    """The dataset, the annotations (all of them, or one folder per subset) and the eval file."""
    train, ev = sbs_task.make_samples(s.task, s.train_records, s.eval_records, s.digits, s.data_seed)
    sbs_task.write_jsonl(out / "data" / "train.jsonl", ({"id": x.id, "input": x.input, "label": x.label} for x in train))
    sbs_task.write_eval_file(out / "data" / "eval.jsonl", ev)
    ann = job_dir(out, s) / "annotations"
    sbs_task.write_jsonl(ann / sbs_task.TRAIN_SHARD, map(sbs_task.annotation_record, train))
    if eval_shards:  # the teacher annotates the eval inputs too; the trainer never trains on eval-shard-*
        sbs_task.write_jsonl(ann / sbs_task.EVAL_SHARD, map(sbs_task.annotation_record, ev))
    sizes: dict[str, int] = {}
    for p in grid(s):
        kept = sbs_task.subset(train, p.fraction, p.seed, s.validation_fraction)
        sizes[f"{p.fraction:g}/{p.seed}"] = len(kept)
        if s.subset == "harness":
            sbs_task.write_jsonl(annotations_dir(out, s, p) / sbs_task.TRAIN_SHARD, map(sbs_task.annotation_record, kept))
    return {"majority": sbs_task.majority_rate(ev), "trainRecordsPerSubset": sizes}


def build_base_model(path: Path, shape: str) -> None:
    """A T5 with random weights and the ByT5 tokenizer, saved like a downloaded one (same weights every point)."""
    import torch
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    from distillery_student.modeling import quiet_transformers

    quiet_transformers()
    d_model, d_ff, layers, heads = SHAPES[shape]
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=384, d_model=d_model, d_kv=d_model // heads, d_ff=d_ff, num_layers=layers,
                   num_decoder_layers=layers, num_heads=heads, dropout_rate=0.0, feed_forward_proj="gated-gelu",
                   tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    T5ForConditionalGeneration(cfg).save_pretrained(path)
    ByT5Tokenizer().save_pretrained(path)


def point_dir(out: Path, s: Settings, p: Point) -> Path:
    return job_dir(out, s) / "points" / str(p.index)


def render_train_config(out: Path, s: Settings, p: Point, total: int) -> dict[str, Any]:
    """train-<index>.json as the operator renders a sweep point (testdata/contract/train.json's layout)."""
    jd, pd = job_dir(out, s), point_dir(out, s, p)
    by_trainer = s.subset == "trainer"
    labels = sbs_task.TASKS[s.task][1]
    return {
        "job": f"sbs-{s.task}", "jobUID": JOB_UID,
        "student": {"baseModel": str(out / "base-model"), "architecture": "seq2seq"},
        "data": {"annotationsDir": str(annotations_dir(out, s, p)), "evalPath": str(out / "data" / "eval.jsonl"),
                 "evalFraction": 0.1, "idField": "id", "inputField": "input", "labelField": "label",
                 # harness subsets are cut already, validation records removed: the trainer must not cut again
                 "validationFraction": s.validation_fraction if by_trainer else 0.0,
                 "fraction": p.fraction if by_trainer else 1.0, "subsetSeed": p.seed},
        "task": {"type": "classification", "labels": labels, "labelPrefix": "[label] ",
                 "rationalePrefix": "[rationale] "},
        "training": {"mode": p.mode, "rationaleWeight": s.rationale_weight, "epochs": 0, "maxSteps": s.steps,
                     "batchSize": s.batch_size, "learningRate": s.learning_rate,
                     "maxInputLength": s.max_input_length, "maxTargetLength": s.max_target_length,
                     "precision": s.precision, "seed": p.seed, "checkpointEverySteps": max(s.steps, 1),
                     "strategy": "DDP", "lora": None, "activationCheckpointing": False, "compile": False, "cudaGraphs": "auto",
                     "evalEverySteps": s.eval_every_steps},
        "output": {"jobDir": str(jd), "checkpointDir": str(pd / "checkpoints"), "modelDir": str(pd / "model"),
                   "metricsPath": str(pd / "metrics.json")},
        "provenance": {"teacherModel": f"program:{s.task}", "promptHash": "",
                       "datasetPath": str(out / "data" / "train.jsonl")},
        "point": {"index": p.index, "total": total},
    }


_STEP_RE = re.compile(r"^(\S+ \S+) INFO step (\d+)/(\d+) loss ([\d.]+) label ([\d.]+) rationale ([\d.]+)")


def parse_log(text: str) -> dict[str, Any]:
    """Steps per second and the last losses from the trainer's step lines (also of a point that was cut off)."""
    pts = []
    for line in text.splitlines():
        m = _STEP_RE.match(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            pts.append((t, int(m.group(2)), float(m.group(4)), float(m.group(5)), float(m.group(6))))
    if not pts:
        return {}
    out: dict[str, Any] = {"lastLoggedStep": pts[-1][1], "lastLoss": pts[-1][2], "lastLabelLoss": pts[-1][3],
                           "labelLossCurve": [[p[1], p[3]] for p in pts]}
    if len(pts) > 1 and pts[-1][0] > pts[0][0]:
        out["stepsPerSecond"] = round((pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]), 2)
    return out


def read_outcome(term_path: Path, metrics_path: Path) -> dict[str, Any]:
    """The point's accuracy and steps from the termination summary (and metrics.json for the details)."""
    row: dict[str, Any] = {}
    try:
        term = json.loads(term_path.read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return {"message": f"no termination summary at {term_path}"}
    if term.get("error"):
        row["message"] = term["error"]
    ev = term.get("evaluation") or {}
    acc = ev.get("studentAccuracy", term.get("evalAccuracy"))
    row.update({"accuracy": acc, "examples": ev.get("examples", term.get("evalExamples")),
                "steps": term.get("steps"), "bestStep": term.get("bestStep"),
                "trainerSeconds": term.get("wallSeconds")})
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, ValueError):
        metrics = {}
    row["trainExamples"] = (metrics.get("settings") or {}).get("trainExamples", metrics.get("trainRecords"))
    row["trainerSeconds"] = row["trainerSeconds"] or metrics.get("seconds")
    return row


def child_env(parallel: int, gpu: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if gpu is not None:  # --gpus N: points go round-robin over the host's GPUs, one GPU per trainer process
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    env["PYTHONPATH"] = os.pathsep.join([str(STUDENT_DIR)] + [x for x in [env.get("PYTHONPATH")] if x])
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def time_limit(a: argparse.Namespace, started: float) -> float | None:
    """A point's limit: --point-timeout, cut to what is left of --deadline (seconds since the harness began)."""
    limits = [x for x in (a.point_timeout, a.deadline and a.deadline - (time.monotonic() - started)) if x]
    return max(1.0, min(limits)) if limits else None


def run_point(out: Path, s: Settings, p: Point, total: int, a: argparse.Namespace) -> dict[str, Any]:
    """Renders the point's config, runs the trainer's CLI on it, and returns the point's row."""
    pd = point_dir(out, s, p)
    cfg_path = out / "config" / f"train-{p.index}.json"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(render_train_config(out, s, p, total), indent=1) + "\n")
    pd.mkdir(parents=True, exist_ok=True)
    term, log_path = pd / "termination.json", pd / "train.log"
    cmd = [sys.executable, "-m", "distillery_student", "train", "--config", str(cfg_path),
           "--termination-log", str(term), *(["--device", a.device] if a.device else []), *a.trainer_arg]
    row: dict[str, Any] = {**asdict(p), "state": "Failed"}
    t0, limit = time.monotonic(), time_limit(a, a.started)
    with open(log_path, "w") as logf:
        try:
            gpu = p.index % a.gpus if a.gpus > 1 else None
            rc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=child_env(a.parallel, gpu),
                                timeout=limit).returncode
        except subprocess.TimeoutExpired:
            rc = None
    row["wallSeconds"] = round(time.monotonic() - t0, 1)
    row.update(parse_log(log_path.read_text(errors="replace")))
    if rc is None:
        row.update(state="TimedOut", message=f"cut off after {limit:.0f}s")
    else:
        row.update(read_outcome(term, pd / "metrics.json"))
        if rc == 0 and row.get("accuracy") is not None:
            row["state"] = "Succeeded"
        else:
            row.setdefault("message", f"exit {rc}; see {log_path}")
    if row.get("trainExamples") is None:  # what the harness's subset holds (the trainer's own count if it ran)
        row["trainExamples"] = a.subset_sizes.get(f"{p.fraction:g}/{p.seed}")
    if not a.keep_models:
        shutil.rmtree(pd / "model", ignore_errors=True)
        shutil.rmtree(pd / "checkpoints", ignore_errors=True)
    print(f"point {p.index}: {p.mode} {p.fraction:g} seed {p.seed}: {row['state']} acc={row.get('accuracy')} "
          f"steps/s={row.get('stepsPerSecond')} wall={row['wallSeconds']}s", flush=True)
    return row


def aggregate(rows: Sequence[dict[str, Any]], fractions: Sequence[float], modes: Sequence[str]) -> list[dict[str, Any]]:
    """Per fraction x mode: median, min, max and mean accuracy over the succeeded seeds, and what failed."""
    out = []
    for f in fractions:
        for m in modes:
            mine = [r for r in rows if r["fraction"] == f and r["mode"] == m]
            accs = [r["accuracy"] for r in mine if r["state"] == "Succeeded"]
            n_train = [r["trainExamples"] for r in mine if r.get("trainExamples") is not None]
            out.append({"fraction": f, "mode": m, "n": len(accs), "failed": len(mine) - len(accs),
                        "median": statistics.median(accs) if accs else None, "min": min(accs, default=None),
                        "max": max(accs, default=None), "mean": statistics.fmean(accs) if accs else None,
                        "trainExamples": statistics.median(n_train) if n_train else None})
    return out


def _cell(a: dict[str, Any]) -> str:
    if a["median"] is None:
        return f"no run succeeded ({a['failed']} failed)"
    s = f"{100 * a['median']:.1f} [{100 * a['min']:.1f}-{100 * a['max']:.1f}] (n={a['n']})"
    return s + (f", {a['failed']} failed" if a["failed"] else "")


def table_md(agg: Sequence[dict[str, Any]], modes: Sequence[str], majority: float) -> str:
    """Accuracy % on the eval file, median [min-max] over seeds, one row per fraction."""
    head = "| data | train records | " + " | ".join(modes) + " | " + " - ".join(modes[:2]) + " (medians) |"
    lines = [head, "|" + " --- |" * (len(modes) + 3)]
    for f in sorted({a["fraction"] for a in agg}):
        cells = {a["mode"]: a for a in agg if a["fraction"] == f}
        n = next((c["trainExamples"] for c in cells.values() if c["trainExamples"] is not None), None)
        meds = [cells[m]["median"] for m in modes[:2] if m in cells]
        diff = f"{100 * (meds[0] - meds[1]):+.1f}" if len(meds) == 2 and None not in meds else "-"
        lines.append(f"| {100 * f:g}% | {n if n is not None else '-'} | "
                     + " | ".join(_cell(cells[m]) for m in modes) + f" | {diff} |")
    lines.append(f"\nMajority class on the eval file: {100 * majority:.1f}%. The teacher (the program) is 100%.")
    return "\n".join(lines) + "\n"


def plot(agg: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], majority: float, title: str,
         stem: Path) -> None:
    """The data-efficiency curve: median accuracy per mode against the fraction, min-max bars, seeds as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for i, m in enumerate(sorted({a["mode"] for a in agg}, key=lambda x: MODES.index(x) if x in MODES else 9)):
        pts = [a for a in agg if a["mode"] == m and a["median"] is not None]
        xs = [100 * a["fraction"] for a in pts]
        ys = [100 * a["median"] for a in pts]
        err = [[100 * (a["median"] - a["min"]) for a in pts], [100 * (a["max"] - a["median"]) for a in pts]]
        line = ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, label=f"{m} (median, min-max)")
        seeds = [r for r in rows if r["mode"] == m and r["state"] == "Succeeded"]
        ax.scatter([100 * r["fraction"] * (1 + 0.03 * (i - 0.5)) for r in seeds],
                   [100 * r["accuracy"] for r in seeds], s=12, alpha=0.4, color=line[0].get_color())
    ax.axhline(100 * majority, ls="--", color="grey", lw=1, label="majority class")
    ax.axhline(100.0, ls=":", color="black", lw=1, label="teacher (the program)")
    fr = sorted({a["fraction"] for a in agg})
    ax.set_xscale("log", base=2)
    ax.set_xlim(100 * fr[0] / 1.3, 100 * fr[-1] * 1.3)
    ax.set_ylim(min([40.0] + [100 * r["accuracy"] - 2 for r in rows if r["state"] == "Succeeded"]), 102)
    ax.set_xticks([100 * f for f in fr], [f"{100 * f:g}%" for f in fr])
    ax.set_xlabel("training data (fraction of the annotations)")
    ax.set_ylabel("eval accuracy %")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    for ext in ("svg", "png"):
        fig.savefig(stem.with_suffix("." + ext), dpi=120)
    plt.close(fig)


def write_report(out: Path, s: Settings, rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    agg = aggregate(rows, s.fractions, s.modes)
    (out / "results.json").write_text(json.dumps({"settings": asdict(s), **info, "summary": agg,
                                                  "points": rows}, indent=1) + "\n")
    (out / "table.md").write_text(table_md(agg, s.modes, info["majority"]))
    d_model, _, layers, _ = SHAPES[s.shape]
    title = (f"{s.task} ({s.digits} digits), {s.train_records} records = 100%, {len(s.seeds)} seed(s)\n"
             f"T5 {s.shape} (d={d_model}, {layers}+{layers} layers, random init), {s.steps} steps of {s.batch_size}")
    plot(agg, rows, info["majority"], title, out / "curve")
    print((out / "table.md").read_text(), flush=True)


def settings_from_args(a: argparse.Namespace) -> Settings:
    s = Settings()
    if a.quick:  # CPU smoke test: tiny model and data, few steps, 2 fractions x 2 modes x 1 seed
        s = dataclasses.replace(s, digits=2, train_records=400, eval_records=100, shape="tiny", steps=30,
                                batch_size=32, fractions=[0.5, 1.0], seeds=[0])
    for f in dataclasses.fields(Settings):
        v = getattr(a, f.name, None)
        if v is not None:
            setattr(s, f.name, v)
    return s


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True,
                   help="output folder (data, configs, point folders, report); its earlier contents are replaced")
    p.add_argument("--quick", action="store_true", help="CPU smoke test defaults (flags still override)")
    p.add_argument("--task", choices=sorted(sbs_task.TASKS))
    p.add_argument("--digits", type=int)
    p.add_argument("--train-records", dest="train_records", type=int, help="the 100%% annotation set")
    p.add_argument("--eval-records", dest="eval_records", type=int)
    p.add_argument("--data-seed", dest="data_seed", type=int)
    p.add_argument("--shape", choices=sorted(SHAPES))
    p.add_argument("--steps", type=int, help="training.maxSteps of every point")
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--learning-rate", dest="learning_rate", type=float)
    p.add_argument("--rationale-weight", dest="rationale_weight", type=float)
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"])
    p.add_argument("--eval-every-steps", dest="eval_every_steps", type=int)
    p.add_argument("--fractions", type=float, nargs="+")
    p.add_argument("--modes", nargs="+", choices=list(MODES) + ["single-task"])
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--subset", choices=["auto", "trainer", "harness"],
                   help="who cuts the data fractions: the trainer (data.fraction) or the harness (files)")
    p.add_argument("--parallel", type=int, default=4, help="points trained at once (one process each)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs to spread the points over (round-robin by index)")
    p.add_argument("--device", default="", help="the trainer's --device (cpu or cuda); default: its own choice")
    p.add_argument("--point-timeout", type=float, default=0, help="seconds before a point is cut off; 0: none")
    p.add_argument("--deadline", type=float, default=0,
                   help="seconds after the start by which every point is cut off and the report written; 0: none")
    p.add_argument("--keep-models", action="store_true", help="keep each point's model and checkpoints")
    p.add_argument("--trainer-arg", action="append", default=[], help="passed to the trainer's CLI (repeatable)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    a.started = time.monotonic()
    s = settings_from_args(a)
    if a.quick and not a.device:
        a.device = "cpu"
    out = Path(a.out).resolve()
    for own in ("workspace", "config"):  # a stale checkpoint would be resumed: every run starts afresh
        shutil.rmtree(out / own, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    feats = trainer_features()
    if s.subset == "auto":
        s.subset = "trainer" if feats["fraction"] else "harness"
    if s.subset == "trainer" and not feats["fraction"]:
        sys.exit("--subset trainer: the installed trainer has no data.fraction (CONTRACT-10); use --subset harness")
    info = {"trainer": feats, **prepare_data(out, s, feats["evalShards"] and s.subset == "trainer")}
    a.subset_sizes = info["trainRecordsPerSubset"]
    build_base_model(out / "base-model", s.shape)
    points = grid(s)
    print(f"{len(points)} points, {a.parallel} at a time, subsets cut by the {s.subset}", flush=True)
    with ThreadPoolExecutor(max_workers=a.parallel) as pool:
        rows = list(pool.map(lambda p: run_point(out, s, p, len(points), a), points))
    info["sweepSeconds"] = round(time.monotonic() - a.started, 1)
    write_report(out, s, rows, info)
    print(f"sweep: {info['sweepSeconds']}s; report in {out}", flush=True)
    return 0 if any(r["state"] == "Succeeded" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
