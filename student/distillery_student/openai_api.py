"""The OpenAI-compatible request and response shapes of the student server (docs/workloads.md).

The task input is the last user message (chat) or the prompt (completions); the answer is the label. The
request field `explain: true` adds the rationale, in `choices[i].message.rationale` (chat) or
`choices[i].rationale` (completions). Decoding is always greedy: `temperature`, `top_p` and `seed` are
accepted and change nothing. Anything else the student cannot honour is refused with a 400 naming the
parameter, in OpenAI's error shape.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .modeling import Prediction

MAX_PROMPTS = 256

# Accepted and without effect on a greedy classifier; None is treated as absent for every field.
_NO_EFFECT = {"temperature", "top_p", "seed", "user", "max_tokens", "max_completion_tokens", "metadata", "store"}
CHAT_FIELDS = {"model", "messages", "explain", "n", "stream"} | _NO_EFFECT
COMPLETION_FIELDS = {"model", "prompt", "explain", "n", "stream"} | _NO_EFFECT


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class TaskRequest:
    """What the server runs for one OpenAI request."""

    inputs: list[str]
    explain: bool


def _present(req: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in req.items() if v is not None}


def _check_common(req: dict[str, Any], allowed: set[str], model: str) -> bool:
    unknown = sorted(set(req) - allowed)
    if unknown:
        raise ApiError(400, f"unsupported parameter: {unknown[0]} (the student serves one greedy answer per input)",
                       param=unknown[0], code="unsupported_parameter")
    if "model" not in req:
        raise ApiError(400, "missing required parameter: model", param="model")
    if req["model"] != model:
        raise ApiError(404, f"The model `{req['model']}` does not exist; this server serves `{model}`",
                       param="model", code="model_not_found")
    if req.get("stream", False) is not False:
        raise ApiError(400, "stream is not supported: the answer is a label of a few tokens", param="stream",
                       code="unsupported_parameter")
    n = req.get("n", 1)
    if n != 1 or isinstance(n, bool):
        raise ApiError(400, "n must be 1: greedy decoding gives one answer", param="n", code="unsupported_parameter")
    explain = req.get("explain", False)
    if not isinstance(explain, bool):
        raise ApiError(400, "explain must be true or false", param="explain")
    return explain


def _text_content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"{where}[{i}] must be a text part: only text input is supported", param=where)
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(400, f"{where} must be a string or a list of text parts", param=where)


def _checked(req: Any, allowed: set[str], model: str) -> tuple[dict[str, Any], bool]:
    """The request's present fields, checked against what the route supports, and its explain switch."""
    if not isinstance(req, dict):
        raise ApiError(400, "the body must be a JSON object")
    req = _present(req)
    return req, _check_common(req, allowed, model)


def parse_chat(req: Any, model: str) -> TaskRequest:
    """The last user message of a chat completion request; system and earlier messages are ignored."""
    req, explain = _checked(req, CHAT_FIELDS, model)
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, dict) and m.get("role") == "user":
            return TaskRequest([_text_content(m.get("content"), f"messages[{i}].content")], explain)
    raise ApiError(400, "messages holds no message with role user: its content is the input", param="messages")


def parse_completion(req: Any, model: str) -> TaskRequest:
    """One input per prompt: a string or a list of strings (one choice each, in order)."""
    req, explain = _checked(req, COMPLETION_FIELDS, model)
    prompt = req.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ApiError(400, "prompt must be a string or a non-empty list of strings", param="prompt")
    if len(prompts) > MAX_PROMPTS:
        raise ApiError(400, f"prompt holds {len(prompts)} strings; at most {MAX_PROMPTS}", param="prompt")
    return TaskRequest(prompts, explain)


def usage(preds: Sequence[Prediction]) -> dict[str, int]:
    prompt = sum(p.prompt_tokens for p in preds)
    completion = sum(p.completion_tokens for p in preds)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(p: Prediction) -> str:
    return "stop" if p.finished else "length"


def chat_response(preds: Sequence[Prediction], model: str) -> dict[str, Any]:
    p = preds[0]
    message: dict[str, Any] = {"role": "assistant", "content": p.label}
    if p.rationale is not None:
        message["rationale"] = p.rationale
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": _finish(p),
                                         "logprobs": None}],
            "usage": usage(preds)}


def completion_response(preds: Sequence[Prediction], model: str) -> dict[str, Any]:
    choices = []
    for i, p in enumerate(preds):
        c: dict[str, Any] = {"index": i, "text": p.label, "finish_reason": _finish(p), "logprobs": None}
        if p.rationale is not None:
            c["rationale"] = p.rationale
        choices.append(c)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": choices, "usage": usage(preds)}


def model_card(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": "distillery"}
