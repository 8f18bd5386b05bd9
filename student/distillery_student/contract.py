"""The Python half of the workload contract (docs/workloads.md; Go side: internal/contract).

train.json is parsed into typed dataclasses here, annotation records are read here, and the files the trainer
hands back (distillery.json, the termination summary, progress reports) are built here. The examples in
testdata/contract are the test vectors both halves read.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Iterator, get_type_hints

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
    strategy: str = STRATEGY_DDP
    lora: Lora | None = None
    activationCheckpointing: bool = False


@dataclass
class TrainOut:
    checkpointDir: str
    modelDir: str
    metricsPath: str
    jobDir: str = ""  # the job run's own folder; claimed for jobUID before anything is read or written


@dataclass
class Provenance:
    teacherModel: str = ""
    promptHash: str = ""
    datasetPath: str = ""


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


_SECTIONS: dict[str, type] = {
    "student": Student,
    "data": TrainData,
    "task": TrainTask,
    "training": Training,
    "output": TrainOut,
    "provenance": Provenance,
}


def _typed(value: Any, hint: Any, path: str) -> Any:
    if hint == (Lora | None):
        return None if value is None else _section(Lora, value, path)
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
    raise InvalidInput(f"train.json: field {path} must be of type {name}, got {json.dumps(value)}")


def _section(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise InvalidInput(f"train.json: {path} must be an object")
    kwargs: dict[str, Any] = {}
    hints = get_type_hints(cls)
    for f in fields(cls):
        if f.name in raw:
            kwargs[f.name] = _typed(raw[f.name], hints[f.name], f"{path}.{f.name}")
        elif f.default is MISSING and f.default_factory is MISSING:
            raise InvalidInput(f"train.json: missing field {path}.{f.name}")
    return cls(**kwargs)


def parse_train_config(raw: Any) -> TrainConfig:
    """Builds a TrainConfig from decoded train.json; a missing or invalid field raises InvalidInput naming it."""
    if not isinstance(raw, dict):
        raise InvalidInput("train.json: not a JSON object")
    if not raw.get("job"):
        raise InvalidInput("train.json: missing field job")
    parts: dict[str, Any] = {"job": raw["job"], "jobUID": _typed(raw.get("jobUID", ""), str, "jobUID")}
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
    if t.lora is not None:
        if t.lora.rank <= 0 or t.lora.alpha <= 0 or not 0 <= t.lora.dropout < 1:
            raise InvalidInput("train.json: training.lora needs rank > 0, alpha > 0 and dropout in [0, 1)")
        if t.strategy == STRATEGY_FSDP:
            raise InvalidInput("train.json: training.lora is supported with strategy DDP only")
    if not cfg.data.evalPath and not 0 <= cfg.data.evalFraction < 1:
        raise InvalidInput("train.json: data.evalFraction must be in [0, 1)")
    for name in ("checkpointDir", "modelDir", "metricsPath"):
        if not getattr(cfg.output, name):
            raise InvalidInput(f"train.json: missing field output.{name}")


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


_SHARD_RE = re.compile(r".*\.jsonl$")


def read_records(annotations_dir: str) -> Iterator[Record]:
    """Every record of annotations/*.jsonl, in file-name then line order."""
    if not os.path.isdir(annotations_dir):
        raise InvalidInput(f"annotations folder {annotations_dir} does not exist")
    for name in sorted(os.listdir(annotations_dir)):
        if not _SHARD_RE.match(name):
            continue
        path = os.path.join(annotations_dir, name)
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


@dataclass
class TrainResult:
    """The trainer's one-line termination summary (contract.TrainResult)."""

    stage: str = "train"
    steps: int = 0
    trainLoss: float = 0.0
    evalAccuracy: float = 0.0
    evalExamples: int = 0
    modelDir: str = ""
    error: str = ""
    reason: str = ""

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if k not in ("error", "reason") or v}
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


def write_termination_log(path: str, result: TrainResult) -> None:
    """Writes the summary line; a missing /dev/termination-log (outside Kubernetes) is not an error."""
    line = result.to_json()
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass
