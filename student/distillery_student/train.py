"""The step-by-step trainer: train(config) -> TrainResult.

One process on a CPU, or one process per GPU under torchrun (training.strategy DDP or FSDP); the same code
either way. Each optimizer step takes `batchSize` records in a length-bucketed order fixed by (seed, epoch);
the records are split over the ranks and, per rank, into micro-batches (gradient accumulation) that fit the
GPU, or of `micro_batch_size` records. Token counts of the whole step normalise the loss, so any split gives
the gradient of one big batch. The step itself (precision, wrapping, optimizer) is step.Stepper.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import checkpoint
from . import lora as lora_mod
from .contract import (
    InvalidInput,
    TrainConfig,
    TrainResult,
    claim_job_dir,
    distillery_json,
    normalize_label,
    write_atomic,
)
from .data import TASK_LABEL, epoch_batches, build_examples, load_splits
from .progress import ProgressReporter
from .modeling import Encoder, Predictor, load_student, model_info_from_config
from .parallel import Dist, init_distributed
from .step import BF16_MASTER, StepOptions, Stepper, lr_lambda

log = logging.getLogger("distillery_student")


@dataclass
class TrainOptions:
    """Runtime settings that are not part of train.json (flags of `train`)."""

    micro_batch_size: int = 0  # records per micro-batch on one rank; 0: picked to fit the GPU (whole share on CPU)
    memory_gb: float = 0.0  # the GPU memory the automatic micro-batches plan for; 0: the card's own
    bf16_impl: str = BF16_MASTER  # master: bf16 weights + fp32 master weights; autocast: fp32 weights + autocast
    compile: bool = False  # torch.compile the loss module (bench/train_step.py measures it)
    schedule: str = "linear"  # linear or cosine decay after warmup
    warmup_steps: int = -1  # -1: 5% of the steps, at most 100
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    eval_batch_size: int = 64
    pad_multiple: int = 0  # round padded lengths up to this; 0: 16 on GPU, 1 on CPU
    concat_tasks: bool = True  # one forward pass over both tasks' rows (see Encoder.collate_tasks)
    device: str = ""  # "" picks cuda when available
    stop_after_steps: int = 0  # stop (as if preempted) after this step, without the final save; tests use it
    progress: Any = None  # a ProgressReporter; None logs progress
    log_every: int = 50
    # test hook: called after each optimizer step with (step, model)
    on_step: Callable[[int, torch.nn.Module], None] | None = field(default=None, repr=False)


class _Preempted:
    """Turns SIGTERM (node drain, preemption) into a checkpoint and a clean stop at the next step."""

    def __init__(self) -> None:
        self.flag = False
        self._old: Any = None

    def __enter__(self) -> "_Preempted":
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (tests)
            self._old = None
        return self

    def _handle(self, *_: Any) -> None:
        self.flag = True

    def __exit__(self, *_: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def train(cfg: TrainConfig, opts: TrainOptions | None = None) -> TrainResult:
    """Trains the student as train.json says; returns the termination summary. Raises InvalidInput on bad
    input before anything is written."""
    opts = opts or TrainOptions()
    t = cfg.training
    device_type = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dd = init_distributed(device_type)
    device = torch.device(f"cuda:{dd.local_rank}" if device_type == "cuda" else device_type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    use_bf16 = device.type == "cuda" and t.precision in ("bf16", "auto")  # auto: bf16 on GPU, fp32 on CPU

    if cfg.output.jobDir:  # never resume another job run's checkpoints (docs/workloads.md)
        claim_job_dir(cfg.output.jobDir, cfg.job, cfg.jobUID)
    random.seed(t.seed)
    torch.manual_seed(t.seed)
    splits = load_splits(cfg)
    if len(splits.train) < dd.world:
        raise InvalidInput(f"{len(splits.train)} training records cannot be split over {dd.world} ranks")
    model, tokenizer = _load(cfg, use_bf16)
    enc = Encoder(tokenizer, cfg.student.architecture, t.maxInputLength, t.maxTargetLength,
                  pad_multiple=opts.pad_multiple or (16 if device.type == "cuda" else 1))
    rows = [[enc.row(ex) for ex in exs] for exs in build_examples(splits.train, cfg)]
    # bucket on source and rationale lengths only: label targets differ in length by label, so counting them
    # would sort records into single-label batches and the model would chase the label of the last batch
    lengths = [sum(len(r.source) + (len(r.target) if r.task != TASK_LABEL else 0) for r in rs) for rs in rows]

    # the number of batches is the same in every epoch (it depends on the record count and sizes only)
    steps_per_epoch = len(epoch_batches(lengths, t.batchSize, t.seed, 0, min_batch=dd.world))
    total = t.maxSteps if t.maxSteps > 0 else t.epochs * steps_per_epoch
    warmup = opts.warmup_steps if opts.warmup_steps >= 0 else min(100, total // 20)
    stepper = Stepper(model, cfg.student.architecture, enc, device, dd, StepOptions(
        strategy=t.strategy, bf16=use_bf16, bf16_impl=opts.bf16_impl, learning_rate=t.learningRate,
        weight_decay=opts.weight_decay, max_grad_norm=opts.max_grad_norm, concat_tasks=opts.concat_tasks,
        compile=opts.compile, activation_checkpointing=t.activationCheckpointing,
        memory_bytes=_memory_bytes(device, opts.memory_gb)), lr_lambda(opts.schedule, warmup, total))

    step = 0
    window: deque[float] = deque(maxlen=max(1, min(100, total // 10)))  # trainLoss: the mean of the last steps
    resumed = checkpoint.newest_checkpoint(cfg.output.checkpointDir)
    if resumed:
        state, rng = checkpoint.load(resumed, dd.rank)
        stepper.load_state_dict(state)
        step = int(state["step"])
        window.extend(state.get("lossWindow", []))
        if rng is not None:
            checkpoint.set_rng_state(rng)
        log.info("resumed from %s at step %d of %d", resumed, step, total)

    progress = opts.progress or ProgressReporter(f"train-{dd.rank}", None)
    model.train()
    batches_epoch, batches = -1, []
    last_parts = (0.0, 0.0, 0.0)
    started = time.monotonic()
    with _Preempted() as preempted:
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != batches_epoch:
                batches = epoch_batches(lengths, t.batchSize, t.seed, epoch, min_batch=dd.world)
                batches_epoch = epoch
            mine = [rows[i] for i in batches[pos][dd.rank :: dd.world]]
            norm = torch.tensor(
                [sum(len(r.target) for rs in mine for r in rs if r.task == task) for task in (TASK_LABEL, 1)],
                dtype=torch.float32, device=device,
            )
            dd.all_sum(norm)
            parts = stepper.step(stepper.micro_batches(mine, opts.micro_batch_size), norm, t.rationaleWeight)
            step += 1
            dd.all_sum(parts)
            last_parts = tuple(float(x) for x in parts.tolist())  # type: ignore[assignment]
            window.append(last_parts[0])
            if opts.on_step:
                opts.on_step(step, model)
            prog = {"step": step, "totalSteps": total, "loss": last_parts[0], "labelLoss": last_parts[1],
                    "rationaleLoss": last_parts[2]}
            progress.report(prog)
            if dd.rank == 0 and (step % opts.log_every == 0 or step == total):
                log.info("step %d/%d loss %.4f label %.4f rationale %.4f lr %.2e", step, total, *last_parts,
                         stepper.sched.get_last_lr()[0])
            stop = torch.tensor([float(preempted.flag or 0 < opts.stop_after_steps <= step)], device=device)
            stopping = bool(dd.all_sum(stop).item())  # every rank stops at the same step, or barriers hang
            every = t.checkpointEverySteps
            if step < total and ((every > 0 and step % every == 0) or stopping):
                save_checkpoint(cfg, dd, step, stepper, window)
            if stopping:
                progress.report(prog, True)
                msg = "stopped by SIGTERM" if preempted.flag else f"stopped after step {step}"
                return TrainResult(steps=step, trainLoss=_mean(window), modelDir="", error=msg)

    train_loss = _mean(window)
    result = TrainResult(steps=total, trainLoss=train_loss, modelDir=cfg.output.modelDir)
    final = stepper.export(lambda: _load(cfg, False)[0])  # rank 0 only
    if final is not None:
        predictor = Predictor(final, tokenizer, model_info_from_config(cfg), device,
                              torch.bfloat16 if use_bf16 else None)
        with (torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else nullcontext()):
            acc, n = evaluate(predictor, splits.eval, opts.eval_batch_size)
        result.evalAccuracy, result.evalExamples = acc, n
        metrics = {"evalAccuracy": acc, "evalExamples": n, "steps": total, "trainLoss": train_loss}
        detail = {**metrics, "labelLoss": last_parts[1], "rationaleLoss": last_parts[2],
                  "trainRecords": len(rows), "mode": t.mode, "seconds": round(time.monotonic() - started, 1)}
        write_atomic(cfg.output.metricsPath, json.dumps(detail, indent=1) + "\n")
        save_final_model(cfg, final, tokenizer, metrics)
        log.info("done: %s", result.to_json())
    progress.report({"step": total, "totalSteps": total, "loss": last_parts[0], "labelLoss": last_parts[1],
            "rationaleLoss": last_parts[2]}, True)
    progress.flush()
    dd.barrier()
    return result


def _load(cfg: TrainConfig, bf16: bool) -> tuple[torch.nn.Module, Any]:
    """The student (with LoRA adapters when training.lora is set) and its tokenizer. A LoRA base is loaded
    in bf16 on a GPU: it stays frozen, and only the adapters get fp32 master weights."""
    lora_cfg = cfg.training.lora
    dtype = torch.bfloat16 if (bf16 and lora_cfg is not None) else torch.float32
    try:
        model, tokenizer = load_student(cfg.student.baseModel, cfg.student.architecture, dtype=dtype)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInput(f"student.baseModel {cfg.student.baseModel!r} could not be loaded: {first}") from None
    if lora_cfg is not None:
        try:
            model = lora_mod.apply(model, lora_cfg.rank, lora_cfg.alpha, lora_cfg.dropout, lora_cfg.targetModules)
        except ValueError as e:
            raise InvalidInput(f"train.json: {e}") from None
    return model, tokenizer


def _memory_bytes(device: torch.device, memory_gb: float) -> float:
    """The memory the automatic micro-batches plan for: memory_gb, else the whole card; 0 (no split) on CPU."""
    if memory_gb > 0:
        return memory_gb * 2**30
    if device.type != "cuda":
        return 0.0
    return float(torch.cuda.get_device_properties(device).total_memory)


def _mean(xs: Any) -> float:
    xs = list(xs)
    return float(sum(xs) / len(xs)) if xs else 0.0


def save_checkpoint(cfg: TrainConfig, dd: Dist, step: int, stepper: Stepper, window: Any) -> None:
    d = cfg.output.checkpointDir
    if dd.rank == 0:
        os.makedirs(d, exist_ok=True)
        checkpoint.begin(d, step)
    dd.barrier()
    checkpoint.write_rank_rng(d, step, dd.rank)
    state = stepper.state_dict()  # collective under FSDP
    dd.barrier()
    if dd.rank == 0:
        state.update({"step": step, "lossWindow": list(window), "job": cfg.job})
        path = checkpoint.commit(d, step, state)
        log.info("checkpoint %s", path)
    dd.barrier()


@torch.no_grad()
def evaluate(predictor: Predictor, examples: Any, batch_size: int) -> tuple[float, int]:
    """Exact-match label accuracy after normalisation, generating the label task only."""
    examples = sorted(examples, key=lambda e: len(e.input))
    correct = 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        preds = predictor.predict([e.input for e in chunk], explain=False)
        correct += sum(normalize_label(p["label"]) == normalize_label(e.label) for p, e in zip(preds, chunk))
    return (correct / len(examples) if examples else 0.0), len(examples)


def save_final_model(cfg: TrainConfig, model: torch.nn.Module, tokenizer: Any, metrics: dict[str, Any]) -> None:
    """save_pretrained + tokenizer + distillery.json under a temporary name, then renamed into modelDir."""
    final = os.path.abspath(cfg.output.modelDir)
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_atomic(os.path.join(tmp, "distillery.json"), json.dumps(distillery_json(cfg, metrics), indent=1) + "\n")
    old = f"{final}.old-{os.getpid()}"
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
