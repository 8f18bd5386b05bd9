"""The step-by-step trainer: train(config) -> TrainResult.

One process on a CPU, or one process per GPU under torchrun (training.strategy DDP or FSDP); the same code
either way. Each optimizer step takes `batchSize` records in a length-bucketed order fixed by (seed, epoch);
the records are split over the ranks and, per rank, into micro-batches (gradient accumulation) that fit the
GPU, or of `micro_batch_size` records. Token counts of the whole step normalise the loss, so any split gives
the gradient of one big batch. The step itself (precision, wrapping, optimizer) is step.Stepper.

The validation slice is scored every `evalEverySteps` steps and at the end; the best weights (selection.py),
not necessarily the last, are written to modelDir and scored on the eval split (evaluation.py). metrics.json,
the report (report.py) and the model card (modelcard.py) are written from those scores.
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

from . import checkpoint, evaluation, modelcard, packing, report, results, selection
from . import graphs as graph_policy
from . import lora as lora_mod
from .buckets import epoch_batches
from .contract import (
    CUDA_GRAPHS_AUTO,
    TASK_CLASSIFICATION,
    InvalidInput,
    Record,
    TrainConfig,
    TrainResult,
    claim_job_dir,
    distillery_json,
    normalize_label,
    write_atomic,
)
from .data import TASK_LABEL, build_examples
from .history import History
from .modeling import Encoder, Predictor, Row, load_student, model_info_from_config
from .parallel import Dist, init_distributed, sharded
from .progress import ProgressReporter
from .split import Splits, load_splits
from .step import BF16_MASTER, CompileCase, StepOptions, Stepper, compiled_blocks_wanted, lr_lambda

log = logging.getLogger("distillery_student")


@dataclass
class TrainOptions:
    """Runtime settings that are not part of train.json (flags of `train`)."""

    micro_batch_size: int = 0  # records per micro-batch on one rank; 0: picked to fit the GPU (whole share on CPU)
    memory_gb: float = 0.0  # the GPU memory the automatic micro-batches plan for; 0: the card's own
    bf16_impl: str = BF16_MASTER  # master: bf16 weights + fp32 master weights; autocast: fp32 weights + autocast
    compile: bool = False  # torch.compile each transformer block (step.compile_blocks; docs/benchmarks.md)
    cuda_graphs: str = CUDA_GRAPHS_AUTO  # auto, on or off: replay each batch shape's forward+backward as a CUDA graph
    packing: str = "auto"  # auto, on or off: pack micro-batches, several examples to a row (packing.wanted)
    schedule: str = "linear"  # linear or cosine decay after warmup
    warmup_steps: int = -1  # -1: 5% of the steps, at most 100
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    eval_batch_size: int = 64
    pad_multiple: int = 0  # round padded lengths up to this; 0: 16 on GPU, 1 on CPU
    concat_tasks: bool | None = None  # both tasks' rows in one forward pass; None: the Stepper picks
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


class _LateLosses:
    """Each step's [loss, label loss, rationale loss], read one step late. The copy to the host is queued behind
    the step and read once the next step is queued, so the host prepares step n+1 while the GPU runs step n
    instead of waiting for it (on a CPU the values are there at once; the order is the same)."""

    def __init__(self) -> None:
        self.pending: deque[tuple[int, torch.Tensor, Any, float]] = deque()

    def push(self, step: int, parts: torch.Tensor, lr: float) -> None:
        event = None
        if parts.is_cuda:
            host = torch.empty(parts.shape, dtype=parts.dtype, pin_memory=True)
            host.copy_(parts, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            parts = host
        self.pending.append((step, parts, event, lr))

    def take(self, keep: int) -> list[tuple[int, tuple[float, float, float], float]]:
        """The steps read, oldest first, leaving the newest `keep` in flight."""
        out = []
        while len(self.pending) > keep:
            step, parts, event, lr = self.pending.popleft()
            if event is not None:
                event.synchronize()
            out.append((step, tuple(float(x) for x in parts.tolist()), lr))
        return out  # type: ignore[return-value]


@dataclass
class _Run:
    """What the phases of one train() call share."""

    cfg: TrainConfig
    opts: TrainOptions
    dd: Dist
    device: torch.device
    use_bf16: bool
    splits: Splits
    tokenizer: Any
    stepper: Stepper
    total: int
    started: float
    history: History
    interval: int  # steps between validations
    bucket_window: int = 50  # batches per length-ordered window (epoch_batches); 1 when packing
    step: int = 0
    wall_before: float = 0.0  # seconds of earlier pods of this run (from the checkpoint)
    window: deque[float] = field(default_factory=deque)  # trainLoss: the mean of the last steps
    last_parts: tuple[float, float, float] = (0.0, 0.0, 0.0)  # of the last step read (_settle)
    late: _LateLosses = field(default_factory=_LateLosses)

    @property
    def wall_seconds(self) -> float:
        return round(self.wall_before + time.monotonic() - self.started, 1)

    def autocast(self) -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else nullcontext()


def train(cfg: TrainConfig, opts: TrainOptions | None = None) -> TrainResult:
    """Trains the student as train.json says; returns the termination summary. Raises InvalidInput on bad
    input before anything is written."""
    opts = opts or TrainOptions()
    started = time.monotonic()
    t = cfg.training
    dd, device = _devices(opts)
    use_bf16 = device.type == "cuda" and t.precision in ("bf16", "auto")  # auto: bf16 on GPU, fp32 on CPU

    if cfg.output.jobDir:  # never resume another job run's checkpoints (docs/workloads.md)
        claim_job_dir(cfg.output.jobDir, cfg.job, cfg.jobUID)
    random.seed(t.seed)
    torch.manual_seed(t.seed)
    splits = load_splits(cfg)
    if len(splits.train) < dd.world:
        raise InvalidInput(f"{len(splits.train)} training records cannot be split over {dd.world} ranks")
    if t.batchSize < dd.world:  # a rank with no records would leave the others waiting in its collectives
        raise InvalidInput(f"training.batchSize {t.batchSize} is smaller than the {dd.world} ranks; each rank needs "
                           "at least one record per step")
    model, tokenizer = _load(cfg, use_bf16)
    enc = Encoder(tokenizer, cfg.student.architecture, t.maxInputLength, t.maxTargetLength,
                  pad_multiple=opts.pad_multiple or (16 if device.type == "cuda" else 1))
    rows = [[enc.row(ex) for ex in exs] for exs in build_examples(splits.train, cfg)]
    # bucket on source and rationale lengths only: label targets differ in length by label; and batches are
    # drawn across labels (buckets.py), since a rationale's length can track its label too. Packed batches
    # are drawn at random (windows of one batch): packing fills rows better from mixed lengths
    pack_length, pack_why = packing.wanted(opts.packing, cfg.student.architecture, device.type, model.config)
    log.info("packing %s", pack_why)
    bucket_window = 1 if pack_length else 50
    lengths = [sum(len(r.source) + (len(r.target) if r.task != TASK_LABEL else 0) for r in rs) for rs in rows]
    labels = _label_classes(splits.train, cfg)

    # the number of batches is the same in every epoch (it depends on the record count and sizes only)
    steps_per_epoch = len(epoch_batches(lengths, t.batchSize, t.seed, 0, min_batch=dd.world, window=bucket_window,
                                        labels=labels))
    total = t.maxSteps if t.maxSteps > 0 else t.epochs * steps_per_epoch
    stepper = _stepper(cfg, opts, model, enc, dd, device, use_bf16, pack_length, total)
    run = _Run(cfg, opts, dd, device, use_bf16, splits, tokenizer, stepper, total, started, History.for_steps(total),
               selection.eval_interval(t.evalEverySteps, total), bucket_window=bucket_window,
               window=deque(maxlen=max(1, min(100, total // 10))))
    _resume(run)

    progress = opts.progress or ProgressReporter(f"train-{dd.rank}", None)
    model.train()
    stopped = _loop(run, rows, lambda epoch: epoch_batches(lengths, t.batchSize, t.seed, epoch, min_batch=dd.world,
                                                           window=run.bucket_window, labels=labels),
                    steps_per_epoch, progress)
    if stopped is not None:
        return stopped
    _settle(run, keep=0)
    stepper.release_graphs()  # their memory pool is not needed for the export and the evaluation
    log.info("training batches: %s", enc.padding_summary())
    with stepper.eager():
        result = _finish(run)
    progress.report(_progress(run), True)
    progress.flush()
    dd.barrier()
    return result


def _devices(opts: TrainOptions) -> tuple[Dist, torch.device]:
    """The process group (one process on a CPU, or torchrun's) and this rank's device."""
    device_type = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dd = init_distributed(device_type)
    device = torch.device(f"cuda:{dd.local_rank}" if device_type == "cuda" else device_type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    return dd, device


def _stepper(cfg: TrainConfig, opts: TrainOptions, model: Any, enc: Encoder, dd: Dist, device: torch.device,
             use_bf16: bool, pack_length: int, total: int) -> Stepper:
    """The Stepper as train.json and the flags ask, with what it turned on said in the log."""
    t = cfg.training
    warmup = opts.warmup_steps if opts.warmup_steps >= 0 else min(100, total // 20)
    graphs, why = graph_policy.wanted(opts.cuda_graphs, t.cudaGraphs)
    compiled, compile_why = compiled_blocks_wanted(opts.compile, t.compile, CompileCase(
        getattr(model.config, "model_type", ""), device.type, dd.world, sharded(t.strategy, dd), t.lora is not None,
        t.activationCheckpointing))
    stepper = Stepper(model, cfg.student.architecture, enc, device, dd, StepOptions(
        strategy=t.strategy, bf16=use_bf16, bf16_impl=opts.bf16_impl, learning_rate=t.learningRate,
        weight_decay=opts.weight_decay, max_grad_norm=opts.max_grad_norm, concat_tasks=opts.concat_tasks,
        compile=compiled, cuda_graphs=graphs, pack_length=pack_length,
        activation_checkpointing=t.activationCheckpointing,
        memory_bytes=_memory_bytes(device, opts.memory_gb)), lr_lambda(opts.schedule, warmup, total))
    log.info("compiled blocks %s", compile_why)
    if device.type == "cuda":
        log.info("CUDA graphs %s", why if graphs == (stepper.graphs is not None) else
                 "off: they apply to a T5 student in one process, without autocast or activation checkpointing")
    return stepper


def _loop(run: _Run, rows: list[list[Row]], batches_of: Callable[[int], list[list[int]]], steps_per_epoch: int,
          progress: ProgressReporter) -> TrainResult | None:
    """The steps from run.step to run.total, validating and checkpointing on the way; the summary of a run
    stopped early (SIGTERM or --stop-after-steps) after its checkpoint, None when every step ran."""
    t, opts, dd = run.cfg.training, run.opts, run.dd
    batches_epoch, batches, first = -1, [], True
    with _Preempted() as preempted:
        while run.step < run.total:
            epoch, pos = divmod(run.step, steps_per_epoch)
            if epoch != batches_epoch:
                batches, batches_epoch = batches_of(epoch), epoch
            _train_step(run, [rows[i] for i in batches[pos][dd.rank :: dd.world]])
            step = run.step
            _settle(run, keep=0 if first else 1)  # the losses shown are those of the last step read
            first = False
            progress.report(_progress(run))
            if run.splits.validation and selection.validation_due(step, run.total, run.interval):
                _settle(run, keep=0)
                _validate(run)
            stopping = _all_stop(run, preempted.flag or 0 < opts.stop_after_steps <= step)
            every = t.checkpointEverySteps
            if step < run.total and ((every > 0 and step % every == 0) or stopping):
                _settle(run, keep=0)
                save_checkpoint(run)
            if stopping:
                _settle(run, keep=0)
                progress.report(_progress(run), True)
                msg = "stopped by SIGTERM" if preempted.flag else f"stopped after step {step}"
                return TrainResult(steps=step, trainLoss=_mean(run.window), modelDir="", error=msg)
    return None


def _label_classes(records: list[Record], cfg: TrainConfig) -> list[str] | None:
    """Each record's label class, which batches are drawn across; None for generation (no classes)."""
    if cfg.task.type != TASK_CLASSIFICATION:
        return None
    return [normalize_label(r.label) for r in records]


def _resume(run: _Run) -> None:
    """Continues from the newest checkpoint of checkpointDir, if any: weights, optimizer, data position, RNG,
    loss window, curves and the wall time so far."""
    resumed = checkpoint.newest_checkpoint(run.cfg.output.checkpointDir)
    if not resumed:
        return
    state, rng = checkpoint.load(resumed, run.dd.rank)
    run.stepper.load_state_dict(state)
    run.step = int(state["step"])
    run.window.extend(state.get("lossWindow", []))
    run.history = History.from_state(state.get("history"), run.total)
    run.wall_before = float(state.get("wallSeconds", 0.0))
    saved = int(state.get("bucketWindow", 50))  # checkpoints from before packing drew windows of 50
    if saved != run.bucket_window:  # --packing changed (or a new image): keep the first run's batch order
        log.warning("resumed with the batch order of the run that wrote the checkpoint (windows of %d batches, "
                    "not %d); the batches are %s", saved, run.bucket_window,
                    "packed" if run.stepper.enc.pack_length else "padded")
        run.bucket_window = saved
    if rng is not None:
        checkpoint.set_rng_state(rng)
    log.info("resumed from %s at step %d of %d", resumed, run.step, run.total)


def _train_step(run: _Run, mine: list[Any]) -> None:
    """One optimizer step over this rank's share of a batch; updates the step, losses and curves."""
    counts = [sum(len(r.target) for rs in mine for r in rs if r.task == task) for task in (TASK_LABEL, 1)]
    norm = torch.tensor(counts, dtype=torch.float32)
    # to a GPU from page-locked memory: a copy from pageable memory would wait for the queued steps
    norm = norm.pin_memory().to(run.device, non_blocking=True) if run.device.type == "cuda" else norm.to(run.device)
    run.dd.all_sum(norm)
    stepper = run.stepper
    lr = stepper.sched.get_last_lr()[0]
    parts = stepper.step(stepper.micro_batches(mine, run.opts.micro_batch_size), norm,
                         run.cfg.training.rationaleWeight)
    run.step += 1
    run.dd.all_sum(parts)
    run.late.push(run.step, parts, lr)
    if run.opts.on_step:
        run.opts.on_step(run.step, stepper.model)


def _progress(run: _Run) -> dict[str, Any]:
    """The trainer's progress report: the step, and the losses of the last step read."""
    return {"step": run.step, "totalSteps": run.total, "loss": run.last_parts[0], "labelLoss": run.last_parts[1],
            "rationaleLoss": run.last_parts[2]}


def _settle(run: _Run, keep: int) -> None:
    """Books the losses of the steps read (all but the newest `keep`): curves, the loss window, the log."""
    for step, parts, lr in run.late.take(keep):
        run.last_parts = parts
        run.window.append(parts[0])
        run.history.add_step(step, parts, last=step == run.total)
        if run.dd.rank == 0 and (step % run.opts.log_every == 0 or step == run.total):
            log.info("step %d/%d loss %.4f label %.4f rationale %.4f lr %.2e", step, run.total, *parts, lr)


def _all_stop(run: _Run, mine: bool) -> bool:
    """Whether to stop now; every rank stops at the same step, or barriers hang (one process: no sync)."""
    if not run.dd.enabled:
        return mine
    return bool(run.dd.all_sum(torch.tensor([float(mine)], device=run.device)).item())


def _validate(run: _Run) -> None:
    """Scores the validation slice (on rank 0); weights at least as good as the best so far go to
    checkpointDir/best. Every rank learns the score, so every rank knows the best step."""
    cfg, dd, stepper = run.cfg, run.dd, run.stepper
    weights = stepper.weights() if stepper.sharded else None  # collective under FSDP
    score = torch.zeros(1, dtype=torch.float64, device=run.device)
    if dd.rank == 0:
        model = stepper.eval_model(weights, lambda: _load(cfg, False)[0])
        try:
            predictor = Predictor(model, run.tokenizer, model_info_from_config(cfg), run.device)
            with run.autocast(), stepper.eager():
                score += selection.validation_accuracy(predictor, run.splits.validation, run.opts.eval_batch_size)
        finally:
            stepper.model.train()
    accuracy = float(dd.all_sum(score).item())
    best = run.history.best()
    run.history.add_validation(run.step, accuracy)
    if dd.rank == 0:
        log.info("step %d: validation accuracy %.4f on %d records", run.step, accuracy, len(run.splits.validation))
        if best is None or accuracy >= best[1]:
            selection.save_best(cfg.output.checkpointDir, run.step, accuracy, weights if weights is not None else stepper.weights())
    dd.barrier()


def _served_step(run: _Run) -> int:
    """Loads the best validated weights into the model (every rank) and returns their step; the last step
    when there is no validation, or when checkpointDir/best does not hold the best step (a run that resumed
    differently after a crash)."""
    best = run.history.best() if run.splits.validation else None
    if best is None or best[0] == run.total:
        return run.total
    ckpt = run.cfg.output.checkpointDir
    if selection.best_step(ckpt) != best[0]:
        log.warning("checkpointDir/best does not hold step %d; serving the last step", best[0])
        return run.total
    run.stepper.load_weights(selection.load_best(ckpt))
    log.info("serving step %d (validation accuracy %.4f), not the last step %d", best[0], best[1], run.total)
    return best[0]


def _finish(run: _Run) -> TrainResult:
    """The served weights to modelDir, scored on the eval split; metrics.json, the report and the summary."""
    cfg = run.cfg
    result = TrainResult(steps=run.total, trainLoss=_mean(run.window), modelDir=cfg.output.modelDir,
                         bestStep=_served_step(run))
    final = run.stepper.export(lambda: _load(cfg, False)[0])  # rank 0 only
    if final is None:
        return result
    predictor = Predictor(final, run.tokenizer, model_info_from_config(cfg), run.device)
    ev = run.splits.eval
    with run.autocast():
        predictions = predictor.labels([e.input for e in ev], run.opts.eval_batch_size)
    scores = evaluation.evaluate(ev, predictions, cfg.task.type, cfg.task.labels, run.splits.teacher_known)
    result.evaluation, result.evalExamples = scores.summary, scores.summary.examples
    result.evalAccuracy, result.wallSeconds = scores.summary.primary, run.wall_seconds
    metrics = results.metrics_document(cfg, result, scores, run.history, run.last_parts,
                                       results.Sizes(len(run.splits.train), len(run.splits.validation)))
    write_atomic(cfg.output.metricsPath, json.dumps(metrics, indent=1) + "\n")
    save_final_model(cfg, final, run.tokenizer, results.model_metrics(result), modelcard.model_card(cfg, metrics))
    report.publish_run(cfg, metrics)
    log.info("done: %s", result.to_json())
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


def save_checkpoint(run: _Run) -> None:
    cfg, dd, step = run.cfg, run.dd, run.step
    d = cfg.output.checkpointDir
    if dd.rank == 0:
        os.makedirs(d, exist_ok=True)
        checkpoint.begin(d, step)
    dd.barrier()
    checkpoint.write_rank_rng(d, step, dd.rank)
    state = run.stepper.state_dict()  # collective under FSDP
    dd.barrier()
    if dd.rank == 0:
        state.update({"step": step, "lossWindow": list(run.window), "job": cfg.job, "bucketWindow": run.bucket_window,
                      "history": run.history.state(), "wallSeconds": run.wall_seconds})
        path = checkpoint.commit(d, step, state)
        log.info("checkpoint %s", path)
    dd.barrier()


def save_final_model(cfg: TrainConfig, model: torch.nn.Module, tokenizer: Any, metrics: dict[str, Any],
                     card: str = "") -> None:
    """save_pretrained + tokenizer + distillery.json (+ the model card README.md) under a temporary name, then
    renamed into modelDir."""
    final = os.path.abspath(cfg.output.modelDir)
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_atomic(os.path.join(tmp, "distillery.json"), json.dumps(distillery_json(cfg, metrics), indent=1) + "\n")
    if card:
        write_atomic(os.path.join(tmp, "README.md"), card)
    old = f"{final}.old-{os.getpid()}"
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
