"""The student model: loading, tokenising, the multi-task loss and label/rationale generation.

Both architectures run the same tasks. Seq2seq (T5): source -> encoder, target -> decoder. Causal
(decoder-only): source, a newline, target, EOS in one sequence; the loss counts target tokens only.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .contract import ARCH_CAUSAL, ARCH_SEQ2SEQ, MODE_SINGLE_TASK, TASK_CLASSIFICATION, ModelInfo
from . import packing
from .data import TASK_LABEL, TASK_RATIONALE, Example, canonical_label, split_single_task_output

IGNORE = -100
CAUSAL_SEPARATOR = "\n"
log = logging.getLogger("distillery_student")


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_student(name_or_dir: str, architecture: str, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Any]:
    """Model and tokenizer through from_pretrained (a hub id or a local directory)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
    if architecture == ARCH_SEQ2SEQ:
        # T5's learned relative-position bias is an additive float mask with a gradient: SDPA then falls back
        # to its unfused math kernel, which on an H200 ran a t5-base step 2x slower than eager (bench/README.md)
        model = AutoModelForSeq2SeqLM.from_pretrained(name_or_dir, dtype=dtype, attn_implementation="eager")
    else:
        model = AutoModelForCausalLM.from_pretrained(name_or_dir, dtype=dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


# ---- tokenising ----------------------------------------------------------------------------------------


@dataclass
class Row:
    """One tokenised example."""

    source: list[int]
    target: list[int]
    task: int

    def __len__(self) -> int:
        return len(self.source) + len(self.target)


class Encoder:
    """Turns examples into token rows and rows into padded tensors for one architecture."""

    def __init__(self, tokenizer: Any, architecture: str, max_input: int, max_target: int, pad_multiple: int = 1,
                 pick_multiple: int = 1, pack_length: int = 0):
        # pad_multiple > 1 rounds padded lengths up (GPU: T5's attention bias then meets the alignment the
        # memory-efficient SDPA kernel needs, instead of falling back to the O(S^2) fp32 math kernel)
        self.pad_multiple = max(1, pad_multiple)
        # pick_multiple > 1 rounds the number of picked target positions up (CUDA graphs: fewer shapes)
        self.pick_multiple = max(1, pick_multiple)
        # pack_length > 0: each micro-batch is packed, several examples to a row of about this many source (T5)
        # or sequence (decoder-only) tokens (packing.py); both tasks in one forward
        self.pack_length = pack_length
        self.tokens = [0, 0]  # [real, computed] tokens of the training batches collated (collate_tasks)
        self.tok = tokenizer
        self.arch = architecture
        self.max_input = max_input
        self.max_target = max_target
        self.pad = tokenizer.pad_token_id
        self.eos = tokenizer.eos_token_id
        self._byte_offset = getattr(tokenizer, "offset", None) if type(tokenizer).__name__ == "ByT5Tokenizer" else None

    def source_ids(self, source: str) -> list[int]:
        return self.sources_ids([source])[0]

    def sources_ids(self, sources: Sequence[str]) -> list[list[int]]:
        """The source ids of each text, in one tokenizer call (a fast tokenizer does the batch in Rust)."""
        if self.arch == ARCH_SEQ2SEQ:
            fast = self._bytes(sources, eos=True, limit=self.max_input)
            if fast is not None:
                return fast
            return [list(r) for r in self.tok(list(sources), truncation=True, max_length=self.max_input)["input_ids"]]
        texts = [s + CAUSAL_SEPARATOR for s in sources]
        rows = self._bytes(texts, eos=False) or self.tok(texts, add_special_tokens=False)["input_ids"]
        bos = [self.tok.bos_token_id] if self.tok.bos_token_id is not None else []
        return [(bos + list(r))[-self.max_input :] for r in rows]

    def _bytes(self, texts: Sequence[str], eos: bool, limit: int = 0) -> list[list[int]] | None:
        """ByT5's ids (UTF-8 bytes + 3, then EOS, truncated to limit) without its Python tokenizer, which costs
        ~50x more; None for other tokenizers, or where a text holds "<" (ByT5's special tokens start with it)."""
        if self._byte_offset is None or any("<" in t for t in texts):
            return None
        off = self._byte_offset
        rows = [[b + off for b in t.encode("utf-8")] for t in texts]
        if eos:
            rows = [(r[: limit - 1] if limit else r) + [self.eos] for r in rows]
        return rows

    def target_ids(self, target: str) -> list[int]:
        ids = list(self.tok(target, add_special_tokens=False)["input_ids"])[: self.max_target - 1]
        return ids + [self.eos]

    def row(self, ex: Example) -> Row:
        return Row(self.source_ids(ex.source), self.target_ids(ex.target), ex.task)

    def _round(self, n: int) -> int:
        m = self.pad_multiple
        return (n + m - 1) // m * m

    def collate(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        """Right-padded tensors: input_ids, attention_mask, labels (IGNORE outside targets), task."""
        task = torch.tensor([r.task for r in rows], dtype=torch.long)
        if self.arch == ARCH_SEQ2SEQ:
            s = self._round(max(len(r.source) for r in rows))
            t = self._round(max(len(r.target) for r in rows))
            ids = torch.full((len(rows), s), self.pad, dtype=torch.long)
            mask = torch.zeros((len(rows), s), dtype=torch.long)
            labels = torch.full((len(rows), t), IGNORE, dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r.source)] = torch.tensor(r.source)
                mask[i, : len(r.source)] = 1
                labels[i, : len(r.target)] = torch.tensor(r.target)
            return {"input_ids": ids, "attention_mask": mask, "labels": labels, "task": task,
                    **self._picks(labels, self._label_rows(task, labels))}
        n = self._round(max(len(r) for r in rows))
        ids = torch.full((len(rows), n), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        labels = torch.full((len(rows), n), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            seq = r.source + r.target
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            labels[i, len(r.source) : len(seq)] = torch.tensor(r.target)
        target = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "task": task,
                **self._picks(target, self._label_rows(task, target))}

    @staticmethod
    def _label_rows(task: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (task == TASK_LABEL).unsqueeze(1).expand_as(target)

    def collate_packed(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        """Rows of both tasks packed (packing.py): input_ids, segments, labels, the picks, and target_segments
        (T5) or position_ids (decoder-only)."""
        if self.arch == ARCH_SEQ2SEQ:
            b = packing.collate(rows, self.pack_length, self._round, self.pad, IGNORE)
            return {**b, **self._picks(b["labels"], b.pop("label_task"))}
        b = packing.collate_causal(rows, self.pack_length, self._round, self.pad, IGNORE)
        target, label_task = F.pad(b["labels"][:, 1:], (0, 1), value=IGNORE), F.pad(b.pop("label_task")[:, 1:], (0, 1))
        return {**b, **self._picks(target, label_task)}

    def _picks(self, target: torch.Tensor, label_task: torch.Tensor) -> dict[str, torch.Tensor]:
        """Where the output layer runs, found on the host so the step never waits for the GPU: `pick`, the flat
        positions of the target tokens in `target` ([rows, positions], the id each position must predict),
        their ids (`pick_target`) and whether each is a label-task token (`pick_label`; label_task holds that
        for every position of target). Padded up to pick_multiple with position 0 and IGNORE, which add nothing
        to any sum."""
        keep = (target != IGNORE).flatten()
        pick = keep.nonzero().squeeze(1)
        is_label = label_task.flatten()[pick].float()
        extra = -len(pick) % self.pick_multiple
        return {"pick": F.pad(pick, (0, extra)), "pick_target": F.pad(target.flatten()[pick], (0, extra), value=IGNORE),
                "pick_label": F.pad(is_label, (0, extra))}

    def collate_tasks(self, rows: Sequence[Row], concat: bool) -> list[dict[str, torch.Tensor]]:
        """concat: one batch of both tasks (one forward pass: fewer kernel launches, but label targets padded
        to rationale length); else one batch per task. Packed (pack_length), always one batch."""
        if self.pack_length:
            out = [self.collate_packed(rows)]
        else:
            out = [self.collate(rows)] if concat else self.collate_by_task(rows)
        self.tokens[0] += sum(len(r) for r in rows)
        self.tokens[1] += sum(b["input_ids"].numel() + (b["labels"].numel() if self.arch == ARCH_SEQ2SEQ else 0)
                              for b in out)
        return out

    def padding_summary(self) -> str:
        """The share of the computed tokens that were real, for the log (packing's effect, or padding's cost)."""
        real, computed = self.tokens
        how = "packed" if self.pack_length else "padded"
        return f"{real} real tokens of {computed} computed ({100 * real / max(1, computed):.1f}%, {how} batches)"

    def collate_by_task(self, rows: Sequence[Row]) -> list[dict[str, torch.Tensor]]:
        """One padded batch per task present, so short label targets are not padded to rationale length."""
        out = []
        for task in (TASK_LABEL, TASK_RATIONALE):
            sub = [r for r in rows if r.task == task]
            if sub:
                out.append(self.collate(sub))
        return out


# ---- the loss ------------------------------------------------------------------------------------------


class TaskLosses(nn.Module):
    """Wraps the student so one forward (what DDP wraps) returns the summed token losses and token counts of
    each task over a list of per-task batches."""

    def __init__(self, model: nn.Module, architecture: str):
        super().__init__()
        self.model = model
        self.arch = architecture

    def token_losses(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy (1-D, fp32) at each picked position (Encoder._picks; 0 where the pick is padding).

        The output layer runs on target positions only: padding and (causal) source positions never reach
        it, so neither their logits nor an fp32 copy of them is made. Every shape is known before the step
        (no boolean indexing), so the step can be captured as a CUDA graph (graphs.py)."""
        hidden = self.hidden_states(batch)
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["pick"])
        logits = output_layer(self.model)(picked)
        return F.cross_entropy(logits.float(), batch["pick_target"], reduction="none", ignore_index=IGNORE)

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last hidden states before the output layer, [rows, positions, d]: position j predicts the
        token at labels[:, j] (seq2seq) or labels[:, j + 1] (causal; Encoder._picks shifts the same way)."""
        m, labels = self.model, batch["labels"]
        if self.arch == ARCH_SEQ2SEQ:
            enc_mask, causal, cross, dec_in = self._seq2seq_inputs(batch)
            enc = m.encoder(input_ids=batch["input_ids"], attention_mask=enc_mask).last_hidden_state
            h = m.decoder(input_ids=dec_in, attention_mask=causal, encoder_hidden_states=enc,
                          encoder_attention_mask=cross, use_cache=False).last_hidden_state
            if scales_decoder_outputs(m.config):  # as the model's own forward (T5/UMT5ForConditionalGeneration)
                h = h * (m.config.d_model**-0.5)
            return h
        backbone = getattr(m, m.base_model_prefix)
        if "segments" in batch:  # packed: each segment attends within itself, positions restart per segment
            mask = packing.causal_mask(batch["segments"], next(m.parameters()).dtype)
            h = backbone(input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                         use_cache=False)
        else:
            h = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        return h.last_hidden_state

    def _seq2seq_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """T5's encoder mask, decoder self-attention mask, cross-attention mask and decoder input ids, for a
        padded batch or a packed one (packing.py: `segments` instead of `attention_mask`)."""
        m, labels = self.model, batch["labels"]
        dtype = next(m.parameters()).dtype
        if "segments" in batch:
            enc_mask, causal, cross = packing.masks(batch["segments"], batch["target_segments"], dtype)
            start, pad = m.config.decoder_start_token_id, m.config.pad_token_id
            return enc_mask, causal, cross, packing.decoder_inputs(labels, batch["target_segments"], start, pad, IGNORE)
        mask, causal = additive_masks(batch["attention_mask"], labels.shape[1], dtype)
        return mask, causal, mask, m.prepare_decoder_input_ids_from_labels(labels=labels)

    def forward(self, batches: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
        """[label loss sum, label tokens, rationale loss sum, rationale tokens]: one forward pass per batch
        given, whatever tasks its rows hold."""
        total = torch.zeros(4, device=_device_of(self.model))
        for b in batches:
            loss = self.token_losses(b)
            is_label = b["pick_label"]
            is_rationale = (b["pick_target"] != IGNORE).float() - is_label
            total = total + torch.stack([(loss * is_label).sum(), is_label.sum(),
                                         (loss * is_rationale).sum(), is_rationale.sum()])
        return total


def scales_decoder_outputs(config: Any) -> bool:
    """Whether the seq2seq model's own forward multiplies the decoder's output by d_model**-0.5 before the
    output layer (transformers 5): T5 as its config's scale_decoder_outputs says, UMT5 when the embeddings are
    tied (its config always ties them), mT5 never (MT5ForConditionalGeneration.forward does not scale)."""
    if hasattr(config, "scale_decoder_outputs"):
        return bool(config.scale_decoder_outputs)
    return getattr(config, "model_type", None) == "umt5" and bool(getattr(config, "tie_word_embeddings", False))


def additive_masks(mask: torch.Tensor, target_len: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """T5's attention masks in the 4-D additive form its eager attention adds to the scores, as Hugging Face
    builds them from a 2-D mask: the padding mask [rows, 1, 1, source] (encoder and cross-attention) and the
    decoder's causal mask [1, 1, target, target]. Made here because Hugging Face's own builder copies a
    host scalar to the GPU, which a CUDA graph cannot capture (graphs.py); a 4-D mask is used as given."""
    low = torch.finfo(dtype).min
    padding = (mask[:, None, None, :] == 0).to(dtype) * low
    future = torch.ones(target_len, target_len, dtype=torch.bool, device=mask.device).triu(1)
    return padding, (future.to(dtype) * low)[None, None]


def output_layer(model: nn.Module) -> nn.Module:
    """The language-model head (lm_head) of a Hugging Face model, LoRA-wrapped or not."""
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output layer")
    return head


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclass
class LossParts:
    loss: torch.Tensor
    label_loss: torch.Tensor
    rationale_loss: torch.Tensor


def combine_losses(sums: torch.Tensor, weight: float, norm: torch.Tensor | None = None) -> LossParts:
    """L = L_label + weight * L_rationale, each the mean over its target tokens. norm, when given, holds the
    token counts [label, rationale] of the whole optimizer step (all micro-batches, all ranks), so that
    accumulating micro-batches or ranks gives the same gradient as one big batch."""
    label_n = norm[0] if norm is not None else sums[1]
    rat_n = norm[1] if norm is not None else sums[3]
    label_loss = sums[0] / label_n.clamp(min=1)
    rationale_loss = sums[2] / rat_n.clamp(min=1)
    return LossParts(label_loss + weight * rationale_loss, label_loss, rationale_loss)


def compute_loss(losses: nn.Module, batches: Sequence[dict[str, torch.Tensor]], weight: float,
                 norm: torch.Tensor | None = None) -> LossParts:
    """The step-by-step loss of a batch (list of per-task batches). In `standard` and `single-task` mode the
    batches hold label-task rows only, so the rationale term is zero."""
    return combine_losses(losses(batches), weight, norm)


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """The batch on the device; to a GPU through page-locked memory, so the copy does not wait for the
    GPU's queued work (a copy from pageable memory does, and the host could not run ahead of the GPU)."""
    if torch.device(device).type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) if v.device.type == "cpu" else v for k, v in batch.items()}


# ---- generation ----------------------------------------------------------------------------------------


DECODERS = ("auto", "hf", "static")
DECODE_CACHE = 4096  # generated id sequences whose text is remembered


@dataclass
class Generated:
    """One generated sequence: its text and token counts (for OpenAI `usage`)."""

    text: str
    prompt_tokens: int
    completion_tokens: int  # generated tokens, EOS included
    finished: bool  # ended with EOS within the token budget


@dataclass
class Prediction:
    label: str
    rationale: str | None
    prompt_tokens: int
    completion_tokens: int
    finished: bool

    def as_dict(self) -> dict[str, str]:
        """The /v1/predict form: label, and rationale only when it was asked for."""
        return {"label": self.label} if self.rationale is None else {"label": self.label, "rationale": self.rationale}


# generation_config fields that change what greedy decoding picks; the static decoders implement none of them
_GREEDY_NEUTRAL = {"repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0), "min_length": (None, 0),
                   "min_new_tokens": (None, 0), "bad_words_ids": (None,), "suppress_tokens": (None,),
                   "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
                   "sequence_bias": (None,), "encoder_repetition_penalty": (None, 1.0)}


def static_decoder_unsupported(model: nn.Module, info: ModelInfo) -> str:
    """Why the static decoders cannot give this student's greedy tokens; "" when one can."""
    gen = getattr(model, "generation_config", None)
    for name, neutral in _GREEDY_NEUTRAL.items():
        if getattr(gen, name, None) not in neutral:
            return f"its generation_config sets {name}={getattr(gen, name)!r}"
    if info.architecture == ARCH_SEQ2SEQ:
        kind = getattr(model.config, "model_type", "")
        return "" if kind == "t5" else f"the seq2seq static decoder serves T5 only, not model_type {kind!r}"
    from .causal_decoding import unsupported_reason

    return unsupported_reason(model)


def static_decoder(model: nn.Module, info: ModelInfo, decoder: str, compile_layers: bool = False) -> Any:
    """The static decoder that decoder ("auto", "hf", "static") picks for this student, or None for HF generate.
    compile_layers: T5's layers through torch.compile (decoding.compiled_layers; ignored for decoder-only)."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, not {decoder!r}")
    if decoder == "hf":
        return None
    why = static_decoder_unsupported(model, info)
    if why and decoder == "static":
        raise ValueError(f"the static decoder cannot serve this student: {why}; use decoder 'hf' or 'auto'")
    if why:
        log.info("decoding with Hugging Face generate: the static decoder cannot serve this student (%s)", why)
        return None
    if info.architecture == ARCH_SEQ2SEQ:
        from .decoding import StaticT5Greedy

        return StaticT5Greedy(model, compile_layers=compile_layers)
    from .causal_decoding import StaticCausalGreedy

    return StaticCausalGreedy(model)


class Predictor:
    """Generates labels (and, on request, rationales) for raw inputs with the student's prefixes.

    decoder: "hf" is Hugging Face generate; "static" is decoding.StaticT5Greedy for T5 and
    causal_decoding.StaticCausalGreedy for Llama/Qwen-style decoders (CUDA graphs on a GPU), an error for other
    students; "auto" picks static where it applies and hf otherwise. Both are greedy and give the same tokens."""

    def __init__(self, model: nn.Module, tokenizer: Any, info: ModelInfo, device: torch.device | str = "cpu",
                 autocast_dtype: torch.dtype | None = None, decoder: str = "hf", compile_layers: bool = False):
        self.model = model.eval()
        self.tok = tokenizer
        self.info = info
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.enc = Encoder(tokenizer, info.architecture, info.maxInputLength, info.maxTargetLength)
        self.static = static_decoder(model, info, decoder, compile_layers)
        self.stream: Any = None  # a lane's own CUDA stream (lane()); None: the caller's current stream
        self._decoded: dict[tuple[int, ...], str] = {}
        if info.taskType == TASK_CLASSIFICATION and info.mode != MODE_SINGLE_TASK:
            longest = max(len(self.enc.target_ids(lab)) for lab in info.labels)
            self.label_tokens = longest + 2
        else:
            self.label_tokens = info.maxTargetLength

    @classmethod
    def from_dir(cls, model_dir: str, info: ModelInfo, device: str | None = None, decoder: str = "auto",
                 compile_layers: bool = False) -> "Predictor":
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        model, tok = load_student(model_dir, info.architecture, dtype=dtype)
        return cls(model.to(dev), tok, info, dev, decoder=decoder, compile_layers=compile_layers)

    def lane(self) -> "Predictor":
        """Another predictor over the same weights for another model thread: its own static decoder (buffers,
        CUDA graphs and their memory pool) and, on a GPU, its own CUDA stream, so that two batches run on the GPU
        at once (serve.py's lanes). A T5-base batch's kernels are small: one batch leaves most of the SMs idle."""
        other = copy.copy(self)
        compiled = getattr(self.static, "compiled", False)
        other.static = static_decoder(self.model, self.info, "static", compiled) if self.static else None
        other.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        other._decoded = {}
        return other

    def capture_graphs(self, rows: int, deadline: float = math.inf) -> int:
        """Captures the static decoder's CUDA graphs for every label-task bucket of up to `rows` inputs until
        `deadline` (time.monotonic(); a server's warm-up; rationales, asked for less often, are captured when
        first seen). Returns how many."""
        if self.static is None:
            return 0
        with self._on_stream():
            return self.static.capture_all(rows, self.info.maxInputLength, self.label_tokens, deadline)

    def _on_stream(self) -> Any:
        """The context the device work runs in: the lane's stream, ordered after what the caller queued."""
        if self.stream is None:
            return nullcontext()
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        return torch.cuda.stream(self.stream)

    def _batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids and mask on the device: right padding for seq2seq, left for causal (generation continues at
        the right edge). Built in numpy: torch.tensor of Python lists took 20 ms for 64 rows of 300."""
        n, left = max(len(r) for r in rows), self.info.architecture == ARCH_CAUSAL
        ids = np.full((len(rows), n), self.enc.pad, dtype=np.int64)
        mask = np.zeros((len(rows), n), dtype=np.int64)
        for i, r in enumerate(rows):
            at = slice(n - len(r), n) if left else slice(0, len(r))
            ids[i, at] = r
            mask[i, at] = 1
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def _generate_ids(self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """[n, <= max_new_tokens] generated ids only, pad after EOS."""
        pad, eos = self.enc.pad, self.enc.eos
        if self.static is not None:
            return self.static.generate(ids, mask, max_new_tokens, eos, pad)
        out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                  do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=eos)
        return out[:, ids.shape[1] :] if self.info.architecture == ARCH_CAUSAL else out[:, 1:]

    @torch.no_grad()
    def generate_detailed(self, sources: Sequence[str], max_new_tokens: int) -> list[Generated]:
        if not sources:
            return []
        rows = self.enc.sources_ids(sources)
        with self._on_stream():
            ids, mask = self._batch(rows)
            out = self._generate_ids(ids, mask, max_new_tokens).cpu().tolist()
        result = []
        for row, gen in zip(rows, out):
            finished = self.enc.eos in gen
            used = gen.index(self.enc.eos) + 1 if finished else len(gen)
            result.append(Generated(self._decode(tuple(gen[:used])), len(row), used, finished))
        return result

    def _decode(self, ids: tuple[int, ...]) -> str:
        """The text of generated ids, remembered: a classifier answers the same few labels over and over."""
        text = self._decoded.get(ids)
        if text is None:
            text = self.tok.decode(list(ids), skip_special_tokens=True).strip()
            if len(self._decoded) >= DECODE_CACHE:
                self._decoded.clear()
            self._decoded[ids] = text
        return text

    def generate(self, sources: Sequence[str], max_new_tokens: int) -> list[str]:
        return [g.text for g in self.generate_detailed(sources, max_new_tokens)]

    def _label(self, text: str) -> str:
        if self.info.taskType == TASK_CLASSIFICATION:
            return canonical_label(text, self.info.labels) or text
        return text

    def predict_detailed(self, inputs: Sequence[str], explain: bool | Sequence[bool] = False) -> list[Prediction]:
        """One Prediction per input, with the rationale where explain is set (one flag, or one per input). All
        labels come from one generate pass; the rationales asked for, from a second."""
        flags = [explain] * len(inputs) if isinstance(explain, bool) else list(explain)
        info = self.info
        if info.mode == MODE_SINGLE_TASK:
            outs = self.generate_detailed([info.labelPrefix + x for x in inputs], info.maxTargetLength)
            preds = []
            for g, want in zip(outs, flags):
                rationale, label = split_single_task_output(g.text)
                preds.append(Prediction(self._label(label), rationale if want else None, g.prompt_tokens,
                                        g.completion_tokens, g.finished))
            return preds
        labels = self.generate_detailed([info.labelPrefix + x for x in inputs], self.label_tokens)
        preds = [Prediction(self._label(g.text), None, g.prompt_tokens, g.completion_tokens, g.finished) for g in labels]
        asked = [i for i, want in enumerate(flags) if want]
        if asked:
            rationales = self.generate_detailed([info.rationalePrefix + inputs[i] for i in asked], info.maxTargetLength)
            for i, r in zip(asked, rationales):
                p = preds[i]
                p.rationale = r.text
                p.prompt_tokens += r.prompt_tokens
                p.completion_tokens += r.completion_tokens
        return preds

    def predict(self, inputs: Sequence[str], explain: bool | Sequence[bool] = False) -> list[dict[str, str]]:
        """[{"label": ...}] per input, with "rationale" where explain is set."""
        return [p.as_dict() for p in self.predict_detailed(inputs, explain)]

    def labels(self, inputs: Sequence[str], batch_size: int) -> list[str]:
        """The label of each input, in order; batched by input length (evaluation)."""
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        out = [""] * len(inputs)
        for at in range(0, len(order), batch_size):
            chunk = order[at : at + batch_size]
            for i, p in zip(chunk, self.predict_detailed([inputs[i] for i in chunk])):
                out[i] = p.label
        return out


def model_info_from_config(cfg: Any) -> ModelInfo:
    return ModelInfo(
        taskType=cfg.task.type, labels=list(cfg.task.labels), labelPrefix=cfg.task.labelPrefix,
        rationalePrefix=cfg.task.rationalePrefix, architecture=cfg.student.architecture, mode=cfg.training.mode,
        maxInputLength=cfg.training.maxInputLength, maxTargetLength=cfg.training.maxTargetLength,
    )


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v else default
