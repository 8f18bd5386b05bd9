"""The server in-process: /v1/predict (batching, explain, errors), readiness, metrics, and the OpenAI surface
through the official `openai` client (chat, completions, models, explain on and off, errors, auth)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import openai
import pytest
from conftest import CONTRACT

from distillery_student.serve import ServerConfig, StudentServer, uvicorn_server

MODEL = "compare-numbers"


def _call(port: int, method: str, path: str, body: Any = None, raw: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if r.headers.get_content_type() == "application/json" else text)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


class Running:
    """A StudentServer served by uvicorn on a thread, on a free port."""

    def __init__(self, cfg: ServerConfig, loader: Callable[[], Any] | None = None, load: bool = True):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        cfg.port = self.port
        self.server = StudentServer(cfg, loader=loader)
        self.http = uvicorn_server(self.server)
        threading.Thread(target=self.http.run, kwargs={"sockets": [self.sock]}, daemon=True).start()
        self._wait_listening()
        if load:
            threading.Thread(target=self.server.load, daemon=True).start()

    def _wait_listening(self, seconds: float = 30) -> None:
        """Until uvicorn has started serving: before then the bound socket refuses connections."""
        deadline = time.monotonic() + seconds
        while not self.http.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.http.started, "uvicorn did not start"

    def wait_ready(self, seconds: float = 60) -> "Running":
        deadline = time.monotonic() + seconds
        while not self.server.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.ready, self.server.status
        return self

    def stop(self) -> None:
        self.http.should_exit = True


def _config(model_dir: str, **kw: Any) -> ServerConfig:
    return ServerConfig(model_dir=model_dir, model_name=MODEL, host="127.0.0.1", max_batch_size=16,
                        max_wait_ms=50, device="cpu", **kw)


@pytest.fixture(scope="module")
def running(served_model_dir: str) -> Iterator[Running]:
    r = Running(_config(served_model_dir)).wait_ready()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def client(running: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{running.port}/v1", api_key="unused", max_retries=0)


INPUTS = ["3 7", "9 1", "12 5", "0 4", "6 2", "8 88", "5 3", "1 2 3 4 5"]


def _batches(r: Running) -> float:
    return r.server.metrics.registry.get_sample_value("distillery_student_batch_size_count") or 0.0


def test_batched_predictions_equal_one_by_one(running: Running) -> None:
    one_by_one = []
    for x in INPUTS:
        code, body = _call(running.port, "POST", "/v1/predict", {"inputs": [x]})
        assert code == 200
        one_by_one += body["predictions"]
    code, body = _call(running.port, "POST", "/v1/predict", {"inputs": INPUTS})
    assert code == 200 and body["predictions"] == one_by_one
    # concurrent single-input requests are grouped into shared generate passes
    before = _batches(running)
    with ThreadPoolExecutor(len(INPUTS)) as pool:
        results = list(pool.map(lambda x: _call(running.port, "POST", "/v1/predict", {"inputs": [x]}), INPUTS))
    assert [b["predictions"][0] for _, b in results] == one_by_one
    assert _batches(running) - before < len(INPUTS)
    assert all(set(p) == {"label"} for p in one_by_one)


def test_explain_returns_a_rationale(running: Running) -> None:
    req = json.loads((CONTRACT / "predict-request.json").read_text())
    code, body = _call(running.port, "POST", "/v1/predict", req)
    assert code == 200 and len(body["predictions"]) == len(req["inputs"])
    want_keys = set(json.loads((CONTRACT / "predict-response.json").read_text())["predictions"][0])
    for p in body["predictions"]:
        assert set(p) == want_keys and isinstance(p["rationale"], str) and p["rationale"]
    _, plain = _call(running.port, "POST", "/v1/predict", {"inputs": req["inputs"]})
    assert [p["label"] for p in plain["predictions"]] == [p["label"] for p in body["predictions"]]


@pytest.mark.parametrize("raw, status, says", [
    (b"not json", 400, "not valid JSON"),
    (b"", 400, "empty"),
    (b"[1,2]", 400, "JSON object"),
    (b'{"inputs":[]}', 400, "non-empty list"),
    (b'{"inputs":"x"}', 400, "non-empty list"),
    (b'{"inputs":[1]}', 400, "not a string"),
    (b'{"inputs":["a"],"explain":"yes"}', 400, "explain"),
    (json.dumps({"inputs": ["x"] * 257}).encode(), 400, "at most 256"),
    (json.dumps({"inputs": ["x" * 20000]}).encode(), 400, "at most 16384"),
], ids=["not-json", "empty", "array", "no-inputs", "inputs-string", "input-number", "explain-string",
        "257-inputs", "long-input"])
def test_bad_predict_requests_get_4xx_and_the_server_keeps_serving(running: Running, raw: bytes, status: int,
                                                                   says: str) -> None:
    code, body = _call(running.port, "POST", "/v1/predict", raw=raw)
    assert code == status and says in body["error"]
    assert _call(running.port, "POST", "/v1/predict", {"inputs": ["1 2"]})[0] == 200
    assert _call(running.port, "GET", "/nope")[0] == 404


def test_a_body_over_the_limit_gets_413(running: Running, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * (2 << 20)}])
    assert e.value.status_code == 413 and e.value.body["code"] == "body_too_large"
    code, body = _call(running.port, "POST", "/v1/predict", raw=b'{"inputs":["' + b"x" * (1 << 20) + b'"]}')
    assert code == 413 and "over the limit" in body["error"]


def _sample(text: str, name: str) -> float:
    """The value of one unlabelled sample in a Prometheus exposition."""
    [value] = [line.split()[1] for line in text.splitlines() if line.split(" ")[0] == name]
    return float(value)


def test_metrics(running: Running) -> None:
    before = _call(running.port, "GET", "/metrics")[1]
    _call(running.port, "POST", "/v1/predict", {"inputs": ["1 2", "3 4"]})
    code, text = _call(running.port, "GET", "/metrics")
    assert code == 200
    assert _sample(text, "distillery_student_inputs_total") - _sample(before, "distillery_student_inputs_total") == 2
    assert _sample(text, "distillery_student_queued_inputs") == 0  # answered: nothing waits
    assert 'distillery_student_requests_total{code="200",route="predict"}' in text
    assert "distillery_student_request_duration_seconds_bucket" in text
    assert "distillery_student_batch_size_count" in text
    assert 'distillery_student_tokens_total{kind="completion"}' in text
    assert 'distillery_student_tokens_total{kind="prompt"}' in text
    assert "distillery_student_batch_duration_seconds_count" in text
    assert "distillery_student_ready 1.0" in text


def _slow_loader(model_dir: str, release: threading.Event) -> Callable[[], Any]:
    def load() -> Any:
        from distillery_student.contract import ModelInfo
        from distillery_student.modeling import Predictor

        release.wait(30)
        info = ModelInfo.from_dict(json.load(open(f"{model_dir}/distillery.json")))
        return Predictor.from_dir(model_dir, info, "cpu")

    return load


def test_healthz_is_503_until_loaded_and_warmed_up(served_model_dir: str) -> None:
    release = threading.Event()
    r = Running(_config(served_model_dir), loader=_slow_loader(served_model_dir, release))
    try:
        time.sleep(0.3)
        assert _call(r.port, "GET", "/healthz") == (503, {"status": "loading"})
        code, body = _call(r.port, "POST", "/v1/predict", {"inputs": ["1 2"]})
        assert code == 503 and "not loaded" in body["error"]
        release.set()
        r.wait_ready()
        assert _call(r.port, "GET", "/healthz") == (200, {"status": "ok"})
        assert _call(r.port, "POST", "/v1/predict", {"inputs": ["1 2"]})[0] == 200
    finally:
        release.set()
        r.stop()


def test_healthz_shows_no_internal_error_text(served_model_dir: str) -> None:
    def broken() -> Any:
        raise RuntimeError("secret internal detail /etc/passwd")

    r = Running(_config(served_model_dir), loader=broken)
    try:
        for _ in range(100):
            if r.server.status == "failed":
                break
            time.sleep(0.05)
        assert _call(r.port, "GET", "/healthz") == (503, {"status": "failed"})
    finally:
        r.stop()


def test_chunked_request_body(running: Running) -> None:
    """Proxies (the apiserver's service proxy among them) forward bodies chunked, without a length."""
    import http.client

    body = json.dumps({"inputs": ["3 5"], "explain": False}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
    conn.putrequest("POST", "/v1/predict")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for part in (body[:7], body[7:]):
        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    payload = json.loads(resp.read())
    assert resp.status == 200, payload
    assert payload["predictions"][0]["label"] in ("first", "second")
    assert payload == _call(running.port, "POST", "/v1/predict", {"inputs": ["3 5"], "explain": False})[1]


# ---- the OpenAI surface, through the official client ----


def test_openai_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "distillery"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_openai_chat_answers_the_label_and_the_rationale_on_request(running: Running, client: openai.OpenAI) -> None:
    _, want = _call(running.port, "POST", "/v1/predict", {"inputs": INPUTS[:3], "explain": True})
    for x, p in zip(INPUTS[:3], want["predictions"]):
        messages = [{"role": "system", "content": "Say which number is larger."}, {"role": "user", "content": x}]
        plain = client.chat.completions.create(model=MODEL, messages=messages, temperature=0)
        assert plain.object == "chat.completion" and plain.model == MODEL
        c = plain.choices[0]
        assert c.message.role == "assistant" and c.message.content == p["label"]
        assert c.finish_reason in ("stop", "length") and "rationale" not in (c.message.model_extra or {})
        u = plain.usage
        assert u.prompt_tokens > 0 and u.completion_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens
        explained = client.chat.completions.create(model=MODEL, messages=messages, extra_body={"explain": True})
        m = explained.choices[0].message
        assert m.content == p["label"] and m.model_extra["rationale"] == p["rationale"]
        assert explained.usage.completion_tokens > u.completion_tokens


def test_openai_chat_takes_text_parts(running: Running, client: openai.OpenAI) -> None:
    _, want = _call(running.port, "POST", "/v1/predict", {"inputs": ["12 5"]})
    r = client.chat.completions.create(model=MODEL, messages=[
        {"role": "user", "content": [{"type": "text", "text": "12 "}, {"type": "text", "text": "5"}]}])
    assert r.choices[0].message.content == want["predictions"][0]["label"]


def test_openai_completions(running: Running, client: openai.OpenAI) -> None:
    _, want = _call(running.port, "POST", "/v1/predict", {"inputs": INPUTS[:4], "explain": True})
    r = client.completions.create(model=MODEL, prompt=INPUTS[:4])
    assert r.object == "text_completion"
    assert [c.text for c in r.choices] == [p["label"] for p in want["predictions"]]
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    one = client.completions.create(model=MODEL, prompt=INPUTS[0], extra_body={"explain": True})
    assert one.choices[0].text == want["predictions"][0]["label"]
    assert one.choices[0].model_extra["rationale"] == want["predictions"][0]["rationale"]
    assert one.usage.total_tokens == one.usage.prompt_tokens + one.usage.completion_tokens


@pytest.mark.parametrize("kwargs, error, param", [
    ({"n": 2}, openai.BadRequestError, "n"),
    ({"stream": True}, openai.BadRequestError, "stream"),
    ({"logprobs": True}, openai.BadRequestError, "logprobs"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, openai.BadRequestError, "tools"),
    ({"extra_body": {"explain": "yes"}}, openai.BadRequestError, "explain"),
    ({"model": "gpt-4o"}, openai.NotFoundError, "model"),
    ({"messages": [{"role": "system", "content": "hi"}]}, openai.BadRequestError, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     openai.BadRequestError, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x" * 1_000_000}]}, openai.BadRequestError, "messages"),
], ids=["n", "stream", "logprobs", "tools", "explain", "model", "no-user", "image", "1MB-input"])
def test_openai_chat_errors(client: openai.OpenAI, kwargs: dict[str, Any], error: type, param: str) -> None:
    args: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "1 2"}], **kwargs}
    with pytest.raises(error) as e:
        client.chat.completions.create(**args)
    assert e.value.body["param"] == param and e.value.body["message"]
    assert e.value.body["type"] == "invalid_request_error"


def test_openai_completion_errors(client: openai.OpenAI) -> None:
    for kwargs, param in (({"n": 3}, "n"), ({"echo": True}, "echo"), ({"prompt": []}, "prompt"),
                          ({"prompt": ["x"] * 257}, "prompt")):
        with pytest.raises(openai.BadRequestError) as e:
            client.completions.create(**{"model": MODEL, "prompt": "1 2", **kwargs})
        assert e.value.body["param"] == param


def test_bearer_token_auth(served_model_dir: str) -> None:
    r = Running(_config(served_model_dir, api_key="s3cret")).wait_ready()
    try:
        base = f"http://127.0.0.1:{r.port}/v1"
        with pytest.raises(openai.AuthenticationError) as e:
            openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
        assert "s3cret" not in str(e.value.body)
        good = openai.OpenAI(base_url=base, api_key="s3cret", max_retries=0)
        assert good.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "1 2"}]).choices
        assert _call(r.port, "POST", "/v1/predict", {"inputs": ["1 2"]})[0] == 401
        assert _call(r.port, "POST", "/v1/predict", {"inputs": ["1 2"]},
                     headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert _call(r.port, "GET", "/healthz")[0] == 200  # probes need no key
    finally:
        r.stop()


def test_two_lanes_answer_as_one_lane_does(running: Running, served_model_dir: str) -> None:
    """--lanes 2: two model threads, each with its own decoder over the same weights, give the same answers."""
    with ThreadPoolExecutor(len(INPUTS)) as pool:
        want = list(pool.map(lambda x: _call(running.port, "POST", "/v1/predict", {"inputs": [x]}), INPUTS))
    r = Running(_config(served_model_dir, lanes=2)).wait_ready()
    try:
        assert r.server.batcher is not None and len(r.server.batcher.lanes) == 2
        with ThreadPoolExecutor(len(INPUTS)) as pool:
            got = list(pool.map(lambda x: _call(r.port, "POST", "/v1/predict", {"inputs": [x]}), INPUTS))
        assert got == want
    finally:
        r.stop()


def test_a_lane_shares_the_weights_but_not_the_decoder(served_model_dir: str) -> None:
    from distillery_student.contract import ModelInfo
    from distillery_student.modeling import Predictor

    info = ModelInfo.from_dict(json.load(open(f"{served_model_dir}/distillery.json", encoding="utf-8")))
    p = Predictor.from_dir(served_model_dir, info, "cpu")
    lane = p.lane()
    assert lane.model is p.model and lane.static is not None and lane.static is not p.static
    assert lane.stream is None  # a CPU has no streams
    assert lane.predict(INPUTS, True) == p.predict(INPUTS, True)


def test_warm_up_on_a_gpu_sizes_the_buffers_for_rationales_and_captures_within_one_budget() -> None:
    """On a GPU each lane first answers a full batch of the longest inputs with rationales (its decoder's buffers
    reach their largest size, so no later batch grows them and drops the captured graphs), then captures the
    label graphs; every lane shares one deadline."""
    from distillery_student.serve import warm_up

    calls: list[tuple[Any, ...]] = []

    class Lane:
        def predict_detailed(self, inputs: list[str], flags: list[bool]) -> None:
            calls.append(("predict", len(inputs), all(flags), min(len(x) for x in inputs)))

        def capture_graphs(self, rows: int, deadline: float) -> int:
            calls.append(("capture", rows, deadline))
            return 3

    before = time.monotonic()
    warm_up([Lane(), Lane()], 8, gpu=True, capture=True, budget_s=60)
    assert [c[0] for c in calls] == ["predict", "capture"] * 2
    assert all(c[1:3] == (8, True) and c[3] >= 16384 for c in calls if c[0] == "predict")
    deadlines = {c[2] for c in calls if c[0] == "capture"}
    assert len(deadlines) == 1 and before + 60 <= deadlines.pop() <= time.monotonic() + 60


@pytest.mark.parametrize("mode, gpu, compiler, want", [
    ("auto", True, True, True),  # the GPU server's default
    ("auto", True, False, False),  # Triton could not build its launcher: decode uncompiled, not fail the warm-up
    ("auto", False, True, False),  # a CPU: eager is what make dev measured
    ("on", False, False, True),
    ("off", True, True, False),
])
def test_the_decoder_is_compiled_on_a_gpu_with_a_c_compiler(monkeypatch: pytest.MonkeyPatch, caplog: Any,
                                                             mode: str, gpu: bool, compiler: bool, want: bool) -> None:
    from distillery_student import decoding
    from distillery_student.serve import compile_wanted

    monkeypatch.setattr(decoding, "compiler_missing", lambda: "" if compiler else "no C compiler for Triton")
    with caplog.at_level(logging.WARNING, logger="distillery_student"):
        assert compile_wanted(mode, gpu) is want
    assert ("no C compiler" in caplog.text) is (mode == "auto" and gpu and not compiler)
    with pytest.raises(ValueError, match="compile_decoder"):
        compile_wanted("true", gpu)


@pytest.mark.parametrize("mode, compiled, status, attempts", [
    ("auto", True, "ready", ["auto", "off"]),  # falls back: an Inductor or Triton failure must not keep pods unready
    ("on", True, "failed", ["on"]),  # an explicit on fails as asked
    ("auto", False, "failed", ["auto"]),  # nothing was compiled: the failure is another one, loading again won't help
])
def test_a_compiled_decoder_that_fails_to_warm_up_is_loaded_again_uncompiled_under_auto(
        served_model_dir: str, mode: str, compiled: bool, status: str, attempts: list[str]) -> None:
    import types

    release = threading.Event()
    release.set()
    working = _slow_loader(served_model_dir, release)
    cfg = _config(served_model_dir)
    cfg.compile_decoder = mode
    server = StudentServer(cfg)
    calls: list[str] = []

    def fail(*_: Any) -> Any:
        raise RuntimeError("InductorError: no kernel for this shape")

    def loader() -> Any:
        calls.append(server.cfg.compile_decoder)
        if len(calls) == 1:  # a predictor whose decoder was compiled and whose warm-up fails
            return types.SimpleNamespace(static=types.SimpleNamespace(compiled=compiled), predict_detailed=fail)
        return working()

    server.loader = loader
    server.load()
    assert server.status == status
    assert calls == attempts
    if server.batcher is not None:
        server.batcher.stop()


def test_compiler_missing_looks_for_cc_then_gcc_or_clang(monkeypatch: pytest.MonkeyPatch) -> None:
    """As Triton looks for the compiler of its launcher."""
    from distillery_student import decoding

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(decoding.shutil, "which", lambda name: None)
    assert "no C compiler" in decoding.compiler_missing()
    monkeypatch.setattr(decoding.shutil, "which", lambda name: "/usr/bin/clang" if name == "clang" else None)
    assert decoding.compiler_missing() == ""
    monkeypatch.setattr(decoding.shutil, "which", lambda name: name if name == "/opt/cc" else None)
    monkeypatch.setenv("CC", "/opt/cc")
    assert decoding.compiler_missing() == ""
    monkeypatch.setattr(decoding.shutil, "which", lambda name: "/usr/bin/gcc" if name == "gcc" else None)
    assert "$CC names no executable" in decoding.compiler_missing()  # Triton would take $CC, not gcc
