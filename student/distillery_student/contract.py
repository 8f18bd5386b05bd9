"""The Python half of the workload contract (docs/workloads.md; Go side: internal/contract).

train.json is parsed into typed dataclasses here, annotation records are read here, and the files the trainer
hands back (distillery.json, the termination summary, progress reports) are built here. The examples in
testdata/contract are the test vectors both halves read.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from dataclasses import MISSING, asdict, dataclass, field, fields
from types import NoneType, UnionType
from typing import Any, Iterator, get_args, get_type_hints

FORMAT_VERSION = 1
MAX_TERMINATION_MESSAGE_BYTES = 4096

STATUS_OK = "ok"
MODE_STEP_BY_STEP = "step-by-step"
MODE_STANDARD = "standard"
MODE_SINGLE_TASK = "single-task"
MODES = (MODE_STEP_BY_STEP, MODE_STANDARD, MODE_SINGLE_TASK)
ARCH_SEQ2SEQ = "seq2seq"
ARCH_CAUSAL = "causal"
ARCHITECTURES = (ARCH_SEQ2SEQ, ARCH_CAUSAL)
TASK_CLASSIFICATION = "classification"
TASK_GENERATION = "generation"

REASON_INVALID_INPUT = "InvalidInput"
# Exit code of a failure a retry cannot fix (docs/workloads.md): the operator fails the stage Job at once.
EXIT_PERMANENT = 3

# single-task targets hold "<rationale> So the answer is <label>." (train.json has no answer marker).
SINGLE_TASK_MARKER = "So the answer is"


class InvalidInput(Exception):
    """The config or the data cannot be used; the message names the thing and goes to the user."""


_EXTRA_TRIM = "\"'`*"


def _trimmed(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P") or ch in _EXTRA_TRIM


def normalize_label(s: str) -> str:
    """contract.NormalizeLabel: trim spaces, surrounding punctuation and quotes; lower-case; collapse spaces."""
    start, end = 0, len(s)
    while start < end and _trimmed(s[start]):
        start += 1
    while end > start and _trimmed(s[end - 1]):
        end -= 1
    return " ".join(s[start:end].split()).lower()


# ---- train.json ----------------------------------------------------------------------------------------


@dataclass
class Student:
    baseModel: str
    architecture: str


@dataclass
class TrainData:
    annotationsDir: str
    evalFraction: float = 0.0
    evalPath: str = ""
    idField: str = "id"
    inputField: str = "input"
    labelField: str = "label"
    validationFraction: float = 0.1  # of the ok training records: the slice the best checkpoint is chosen on
    fraction: float = 1.0  # of the training records left after eval and validation (nested subsets)
    subsetSeed: int = 0  # seeds the fraction's hash


@dataclass
class TrainTask:
    type: str
    labelPrefix: str
    rationalePrefix: str
    labels: list[str] = field(default_factory=list)


@dataclass
class Lora:
    """training.lora: LoRA adapters instead of full fine-tuning (the saved model holds merged weights)."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    targetModules: list[str] = field(default_factory=list)  # empty: PEFT's defaults for the architecture


CUDA_GRAPHS_AUTO = "auto"
CUDA_GRAPHS_OFF = "off"
CUDA_GRAPHS_ON = "on"  # the trainer's --cuda-graphs only: train.json takes auto or off
STRATEGY_DDP = "DDP"
STRATEGY_FSDP = "FSDP"


@dataclass
class Training:
    mode: str
    rationaleWeight: float
    epochs: int
    maxSteps: int
    batchSize: int
    learningRate: float
    maxInputLength: int
    maxTargetLength: int
    precision: str
    seed: int
    checkpointEverySteps: int
    evalEverySteps: int = 0  # validation every N steps; 0: about 10 times per run; always at the last step
    strategy: str = STRATEGY_DDP
    lora: Lora | None = None
    activationCheckpointing: bool = False
    compile: bool = False  # torch.compile each block where measured (step.compiled_blocks_wanted)
    cudaGraphs: str = CUDA_GRAPHS_AUTO  # auto: the trainer chooses (eagerly today: graphs.wanted); off: eagerly


@dataclass
class TrainOut:
    checkpointDir: str
    modelDir: str
    metricsPath: str
    jobDir: str = ""  # the job run's own folder; claimed for jobUID before anything is read or written
    reportConfigMap: str = ""  # the ConfigMap the trainer patches with report.json and report.svg; "": files only


@dataclass
class Provenance:
    teacherModel: str = ""
    promptHash: str = ""
    datasetPath: str = ""


def train_progress_key(rank: int, point: int | None = None) -> str:
    """A trainer rank's key in ConfigMap <job>-progress: train-<rank>, or point-<index>-train-<rank> for a
    sweep's point (contract.TrainProgressKey, PointProgressKey)."""
    return f"train-{rank}" if point is None else f"point-{point}-train-{rank}"


@dataclass
class Point:
    """A sweep's point: which of `total` configs this one is (absent outside a sweep)."""

    index: int
    total: int


@dataclass
class TrainConfig:
    job: str
    student: Student
    data: TrainData
    task: TrainTask
    training: Training
    output: TrainOut
    provenance: Provenance = field(default_factory=Provenance)
    jobUID: str = ""
    point: Point | None = None


_SECTIONS: dict[str, type] = {
    "student": Student,
    "data": TrainData,
    "task": TrainTask,
    "training": Training,
    "output": TrainOut,
    "provenance": Provenance,
}


def _optional_section(hint: Any) -> type | None:
    """The dataclass of a `Section | None` hint, else None."""
    if not isinstance(hint, UnionType):
        return None
    kinds = [a for a in get_args(hint) if a is not NoneType]
    return kinds[0] if len(kinds) == 1 and hasattr(kinds[0], "__dataclass_fields__") else None


def _typed(value: Any, hint: Any, path: str, file: str = "train.json") -> Any:
    if (section := _optional_section(hint)) is not None:
        return None if value is None else _section(section, value, path, file)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint == list[str] and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if value is None and hint in (str, list[str]):
        return hint()
    name = getattr(hint, "__name__", str(hint))
    raise InvalidInput(f"{file}: field {path} must be of type {name}, got {json.dumps(value)}")


def _section(cls: type, raw: Any, path: str, file: str = "train.json") -> Any:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{file}: {path} must be an object")
    kwargs: dict[str, Any] = {}
    hints = get_type_hints(cls)
    for f in fields(cls):
        if f.name in raw:
            kwargs[f.name] = _typed(raw[f.name], hints[f.name], f"{path}.{f.name}", file)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise InvalidInput(f"{file}: missing field {path}.{f.name}")
    return cls(**kwargs)


def parse_train_config(raw: Any) -> TrainConfig:
    """Builds a TrainConfig from decoded train.json; a missing or invalid field raises InvalidInput naming it."""
    if not isinstance(raw, dict):
        raise InvalidInput("train.json: not a JSON object")
    if not raw.get("job"):
        raise InvalidInput("train.json: missing field job")
    parts: dict[str, Any] = {"job": raw["job"], "jobUID": _typed(raw.get("jobUID", ""), str, "jobUID"),
                             "point": _typed(raw.get("point"), Point | None, "point")}
    for name, cls in _SECTIONS.items():
        if name not in raw:
            if name == "provenance":
                continue
            raise InvalidInput(f"train.json: missing field {name}")
        parts[name] = _section(cls, raw[name], name)
    cfg = TrainConfig(**parts)
    validate_train_config(cfg)
    return cfg


def validate_train_config(cfg: TrainConfig) -> None:
    t, s = cfg.training, cfg.student
    if s.architecture not in ARCHITECTURES:
        raise InvalidInput(f"train.json: student.architecture {s.architecture!r} is not one of {list(ARCHITECTURES)}")
    if not s.baseModel:
        raise InvalidInput("train.json: missing field student.baseModel")
    if t.mode not in MODES:
        raise InvalidInput(f"train.json: training.mode {t.mode!r} is not one of {list(MODES)}")
    if cfg.task.type not in (TASK_CLASSIFICATION, TASK_GENERATION):
        raise InvalidInput(f"train.json: task.type {cfg.task.type!r} is not classification or generation")
    if cfg.task.type == TASK_CLASSIFICATION and not cfg.task.labels:
        raise InvalidInput("train.json: task.labels is required for a classification task")
    if t.batchSize <= 0:
        raise InvalidInput("train.json: training.batchSize must be positive")
    if t.maxSteps <= 0 and t.epochs <= 0:
        raise InvalidInput("train.json: one of training.epochs or training.maxSteps must be positive")
    if t.learningRate <= 0:
        raise InvalidInput("train.json: training.learningRate must be positive")
    if t.maxInputLength <= 0 or t.maxTargetLength <= 0:
        raise InvalidInput("train.json: training.maxInputLength and maxTargetLength must be positive")
    if t.rationaleWeight < 0:
        raise InvalidInput("train.json: training.rationaleWeight must not be negative")
    if t.strategy not in (STRATEGY_DDP, STRATEGY_FSDP):
        raise InvalidInput(f"train.json: training.strategy {t.strategy!r} is not DDP or FSDP")
    if t.cudaGraphs not in (CUDA_GRAPHS_AUTO, CUDA_GRAPHS_OFF):
        raise InvalidInput(f"train.json: training.cudaGraphs {t.cudaGraphs!r} is not auto or off")
    if t.lora is not None:
        if t.lora.rank <= 0 or t.lora.alpha <= 0 or not 0 <= t.lora.dropout < 1:
            raise InvalidInput("train.json: training.lora needs rank > 0, alpha > 0 and dropout in [0, 1)")
        if t.strategy == STRATEGY_FSDP:
            raise InvalidInput("train.json: training.lora is supported with strategy DDP only")
    _validate_data(cfg)
    if t.evalEverySteps < 0:
        raise InvalidInput("train.json: training.evalEverySteps must not be negative (0: about 10 times per run)")
    if cfg.point is not None and not 0 <= cfg.point.index < cfg.point.total:
        raise InvalidInput(f"train.json: point.index {cfg.point.index} is not in [0, point.total {cfg.point.total})")
    for name in ("checkpointDir", "modelDir", "metricsPath"):
        if not getattr(cfg.output, name):
            raise InvalidInput(f"train.json: missing field output.{name}")


def _validate_data(cfg: TrainConfig) -> None:
    d = cfg.data
    if not d.evalPath and not 0 <= d.evalFraction < 1:
        raise InvalidInput("train.json: data.evalFraction must be in [0, 1)")
    if not 0 <= d.validationFraction < 1:
        raise InvalidInput("train.json: data.validationFraction must be in [0, 1)")
    if not 0 < d.fraction <= 1:
        raise InvalidInput("train.json: data.fraction must be in (0, 1]")


def load_train_config(path: str) -> TrainConfig:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise InvalidInput(f"train config {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(f"train config {path} is not valid JSON: {e}") from None
    return parse_train_config(raw)


def train_config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)


# ---- report.json (operator -> the sweep's report Job) -------------------------------------------------


@dataclass
class ReportPoint:
    """One point of a sweep: where its metrics.json is, and its settings."""

    index: int
    metricsPath: str
    mode: str = ""
    rationaleWeight: float = 0.0
    fraction: float = 1.0
    seed: int = 0
    baseModel: str = ""


@dataclass
class ReportConfig:
    """The config of a sweep's report Job (contract.ReportConfig, vector report-config.json)."""

    jobDir: str
    points: list[ReportPoint]
    servedIndex: int
    reportConfigMap: str = ""


def parse_report_config(raw: Any) -> ReportConfig:
    file = "report.json"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{file}: not a JSON object")
    for name in ("jobDir", "points", "servedIndex"):
        if name not in raw:
            raise InvalidInput(f"{file}: missing field {name}")
    if not isinstance(raw["points"], list) or not raw["points"]:
        raise InvalidInput(f"{file}: points must be a non-empty list")
    points = [_section(ReportPoint, p, f"points[{i}]", file) for i, p in enumerate(raw["points"])]
    cfg = ReportConfig(jobDir=_typed(raw["jobDir"], str, "jobDir", file), points=points,
                       servedIndex=_typed(raw["servedIndex"], int, "servedIndex", file),
                       reportConfigMap=_typed(raw.get("reportConfigMap", ""), str, "reportConfigMap", file))
    if cfg.servedIndex not in {p.index for p in points}:
        raise InvalidInput(f"{file}: servedIndex {cfg.servedIndex} is not the index of one of the points")
    return cfg


def load_report_config(path: str) -> ReportConfig:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise InvalidInput(f"report config {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(f"report config {path} is not valid JSON: {e}") from None
    return parse_report_config(raw)


# ---- the job folder (contract.ClaimJobDir) ---------------------------------------------------------------

JOB_FILE_NAME = "job.json"


def claim_job_dir(job_dir: str, job: str, uid: str) -> None:
    """Makes job_dir the folder of the job run `uid`: writes job.json when absent, and raises InvalidInput when
    it names another run, whose files (annotations, checkpoints) must never be resumed."""
    path = os.path.join(job_dir, JOB_FILE_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f)
    except FileNotFoundError:
        write_atomic(path, json.dumps({"job": job, "uid": uid}, separators=(",", ":")) + "\n")
        return
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidInput(
            f"workspace folder {job_dir}: {JOB_FILE_NAME} is unreadable ({e}); its files are not resumed"
        ) from None
    if not isinstance(found, dict) or found.get("uid") != uid:
        other = found if isinstance(found, dict) else {}
        raise InvalidInput(
            f"workspace folder {job_dir} belongs to job {other.get('job')} (uid {other.get('uid')}), "
            f"not to this job {job} (uid {uid}); its files are not resumed"
        )


# ---- annotation records --------------------------------------------------------------------------------


@dataclass
class Record:
    id: str
    input: str
    status: str
    goldLabel: str = ""
    teacherLabel: str = ""
    rationale: str = ""
    error: str = ""
    source: str = ""  # file:line, for error messages

    @property
    def label(self) -> str:
        """The label for the label task: the gold label where the dataset has one, else the teacher's."""
        return self.goldLabel or self.teacherLabel


EVAL_SHARD_PREFIX = "eval-"


def shard_file_name(shard: int, shards: int) -> str:
    """contract.ShardFileName: the annotations of one shard of the training dataset."""
    return f"shard-{shard:05d}-of-{shards:05d}.jsonl"


def eval_shard_file_name(shard: int, shards: int) -> str:
    """contract.EvalShardFileName: the teacher's answers for one shard of the eval file (data.evalPath)."""
    return EVAL_SHARD_PREFIX + shard_file_name(shard, shards)


def _is_eval_shard(name: str) -> bool:
    return name.startswith(EVAL_SHARD_PREFIX) and name.endswith(".jsonl")


def _is_train_shard(name: str) -> bool:
    return name.startswith("shard-") and name.endswith(".jsonl")


def read_records(annotations_dir: str) -> Iterator[Record]:
    """Every record of the training dataset's shard files (annotations/shard-*.jsonl, never eval-shard-*), in
    file-name then line order."""
    return _read_shards(annotations_dir, _is_train_shard)


def read_eval_records(annotations_dir: str) -> Iterator[Record]:
    """The teacher's answers for the eval file's inputs (annotations/eval-shard-*.jsonl)."""
    return _read_shards(annotations_dir, _is_eval_shard)


def has_eval_records(annotations_dir: str) -> bool:
    return os.path.isdir(annotations_dir) and any(_is_eval_shard(n) for n in os.listdir(annotations_dir))


def _read_shards(annotations_dir: str, wanted: Any) -> Iterator[Record]:
    if not os.path.isdir(annotations_dir):
        raise InvalidInput(f"annotations folder {annotations_dir} does not exist")
    for name in sorted(os.listdir(annotations_dir)):
        if wanted(name):
            yield from _read_shard(os.path.join(annotations_dir, name), name)


def _read_shard(path: str, name: str) -> Iterator[Record]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            where = f"{name}:{lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInput(f"annotation record {where} is not valid JSON: {e}") from None
            if not isinstance(raw, dict) or "id" not in raw or "status" not in raw:
                raise InvalidInput(f"annotation record {where} lacks id or status")
            yield Record(
                id=str(raw["id"]),
                input=str(raw.get("input", "")),
                status=str(raw["status"]),
                goldLabel=str(raw.get("goldLabel") or ""),
                teacherLabel=str(raw.get("teacherLabel") or ""),
                rationale=str(raw.get("rationale") or ""),
                error=str(raw.get("error") or ""),
                source=where,
            )


# ---- outputs -------------------------------------------------------------------------------------------


def distillery_json(cfg: TrainConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    """The model directory's distillery.json (testdata/contract/distillery.json)."""
    return {
        "formatVersion": FORMAT_VERSION,
        "job": cfg.job,
        "taskType": cfg.task.type,
        "labels": list(cfg.task.labels),
        "labelPrefix": cfg.task.labelPrefix,
        "rationalePrefix": cfg.task.rationalePrefix,
        "architecture": cfg.student.architecture,
        "baseModel": cfg.student.baseModel,
        "teacherModel": cfg.provenance.teacherModel,
        "promptHash": cfg.provenance.promptHash,
        "datasetPath": cfg.provenance.datasetPath,
        "mode": cfg.training.mode,
        "rationaleWeight": cfg.training.rationaleWeight,
        "maxInputLength": cfg.training.maxInputLength,
        "maxTargetLength": cfg.training.maxTargetLength,
        "metrics": metrics,
    }


@dataclass
class ModelInfo:
    """What the server needs from distillery.json."""

    taskType: str
    labels: list[str]
    labelPrefix: str
    rationalePrefix: str
    architecture: str
    mode: str
    maxInputLength: int
    maxTargetLength: int

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ModelInfo":
        missing = [f.name for f in fields(cls) if f.name not in raw]
        if missing:
            raise InvalidInput(f"distillery.json: missing field {missing[0]}")
        if raw.get("formatVersion") != FORMAT_VERSION:
            raise InvalidInput(f"distillery.json: formatVersion {raw.get('formatVersion')!r} is not {FORMAT_VERSION}")
        return cls(**{f.name: raw[f.name] for f in fields(cls)})


METRIC_ACCURACY = "accuracy"
METRIC_AGREEMENT = "agreement"
METRIC_EXACT_MATCH = "exactMatch"
# the number each primary metric names (evalAccuracy repeats it for one release)
PRIMARY_FIELD = {METRIC_ACCURACY: "studentAccuracy", METRIC_AGREEMENT: "agreement", METRIC_EXACT_MATCH: "exactMatch"}


@dataclass
class Evaluation:
    """The eval split's scores (contract.Evaluation). A score that does not apply is None, and absent from the
    JSON, never 0. Without gold labels only `agreement` is given (metric "agreement"), never called accuracy."""

    metric: str
    examples: int
    studentAccuracy: float | None = None
    teacherAccuracy: float | None = None
    agreement: float | None = None
    exactMatch: float | None = None
    tokenF1: float | None = None

    @property
    def primary(self) -> float:
        """The value of `metric` (0 when the split was empty)."""
        return getattr(self, PRIMARY_FIELD[self.metric]) or 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class TrainResult:
    """The trainer's one-line termination summary (contract.TrainResult)."""

    stage: str = "train"
    steps: int = 0
    trainLoss: float = 0.0
    evalAccuracy: float = 0.0  # the evaluation's primary metric, kept for one release
    evalExamples: int = 0
    modelDir: str = ""
    bestStep: int = 0  # the step whose weights are in modelDir
    wallSeconds: float = 0.0
    evaluation: Evaluation | None = None
    error: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in ("stage", "steps", "trainLoss", "evalAccuracy",
                                                           "evalExamples", "modelDir")}
        d.update({k: getattr(self, k) for k in ("bestStep", "wallSeconds", "error", "reason") if getattr(self, k)})
        if self.evaluation is not None:
            d["evaluation"] = self.evaluation.to_dict()
        return d

    def to_json(self) -> str:
        d = self.to_dict()
        line = json.dumps(d, separators=(",", ":"), ensure_ascii=False)
        while len(line.encode()) > MAX_TERMINATION_MESSAGE_BYTES and d.get("error"):
            over = len(line.encode()) - MAX_TERMINATION_MESSAGE_BYTES
            d["error"] = d["error"][: max(0, len(d["error"]) - over - 4)] + "..."
            line = json.dumps(d, separators=(",", ":"), ensure_ascii=False)
        return line


def write_atomic(path: str, data: str) -> None:
    """Writes a file under a temporary name and renames it into place."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_termination_log(path: str, result: TrainResult | dict[str, Any]) -> None:
    """Writes the summary line; a missing /dev/termination-log (outside Kubernetes) is not an error."""
    line = result.to_json() if isinstance(result, TrainResult) else json.dumps(result, separators=(",", ":"))
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass
