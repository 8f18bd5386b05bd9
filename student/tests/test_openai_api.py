"""OpenAI request parsing: what is accepted, what is refused and how the error names it."""

from __future__ import annotations

from typing import Any

import pytest

from distillery_student.openai_api import ApiError, parse_chat, parse_completion

USER = [{"role": "user", "content": "1 2"}]


def test_nulls_count_as_absent_and_no_effect_parameters_are_accepted() -> None:
    req = {"model": "m", "messages": USER, "n": None, "stream": None, "tools": None, "temperature": 0.7,
           "top_p": 1, "seed": 3, "max_tokens": 5, "user": "u"}
    assert parse_chat(req, "m").inputs == ["1 2"]


def test_the_last_user_message_is_the_input() -> None:
    msgs = [{"role": "user", "content": "old"}, {"role": "assistant", "content": "x"}, {"role": "user", "content": "new"},
            {"role": "assistant", "content": "prefill"}]
    assert parse_chat({"model": "m", "messages": msgs}, "m").inputs == ["new"]


@pytest.mark.parametrize("req, status, param", [
    ({"messages": USER}, 400, "model"),
    ({"model": "m", "messages": USER, "n": True}, 400, "n"),
    ({"model": "m", "messages": USER, "stream": False, "stop": ["\n"]}, 400, "stop"),
    ({"model": "m", "messages": []}, 400, "messages"),
    ({"model": "other", "messages": USER}, 404, "model"),
], ids=["no-model", "n-true", "stop", "no-messages", "other-model"])
def test_chat_refusals_name_the_parameter(req: dict[str, Any], status: int, param: str) -> None:
    with pytest.raises(ApiError) as e:
        parse_chat(req, "m")
    assert e.value.status == status and e.value.body()["error"]["param"] == param


def test_completion_prompts() -> None:
    assert parse_completion({"model": "m", "prompt": ["a", "b"], "explain": True}, "m").explain
    with pytest.raises(ApiError) as e:
        parse_completion({"model": "m", "prompt": [1]}, "m")
    assert e.value.param == "prompt"
