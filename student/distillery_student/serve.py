"""The student server: OpenAI-compatible chat/completions/models, /v1/predict, /healthz, /metrics.

Starlette on uvicorn (httptools' C parser and uvloop where installed, as requirements.txt has them; h11 and
asyncio's loop otherwise): the HTTP parsing, keep-alive and graceful shutdown are theirs; this file adds the
limits a model server needs on top (body size, request head size, input length, read timeouts, a bounded queue
that refuses with 429 + Retry-After, a drain on SIGTERM that turns readiness false before the listener closes)
and one model thread fed by batching.Batcher. The routes and shapes are specified in docs/workloads.md.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import threading
import time
import dataclasses
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from .batching import Batcher, QueueFull
from .contract import InvalidInput, ModelInfo
from .openai_api import ApiError, chat_response, completion_response, model_card, parse_chat, parse_completion

log = logging.getLogger("distillery_student")

MAX_INPUTS = 256
API_KEY_ENV = "DISTILLERY_STUDENT_API_KEY"


@dataclass
class ServerConfig:
    """Everything `serve` takes (the CLI flags of `python -m distillery_student serve`)."""

    model_dir: str
    model_name: str = ""  # the id in /v1/models and the `model` requests must name; default: "student"
    host: str = "0.0.0.0"
    port: int = 8080
    max_batch_size: int = 32  # inputs per generate pass
    max_wait_ms: float = 5.0  # how long a batch waits for more inputs once it has one
    max_queue: int = 1024  # inputs waiting; more are refused with 429
    max_body_bytes: int = 1 << 20
    max_input_chars: int = 16384  # per input; the model reads at most maxInputLength tokens anyway
    read_timeout_s: float = 10.0  # a request head or body that takes longer is dropped (408 for a body)
    idle_timeout_s: float = 5.0  # keep-alive connections idle for longer are closed
    drain_delay_s: float = 5.0  # after SIGTERM: readiness false, still serving, then the listener closes
    graceful_timeout_s: float = 20.0  # then in-flight requests have this long to finish
    max_connections: int = 2048  # beyond this uvicorn answers 503
    device: str = ""
    decoder: str = "auto"
    api_key: str = ""  # when set, /v1/* need "Authorization: Bearer <key>"
    threads: int = 0  # torch threads on a CPU; 0: cpu_threads()
    # model threads, each with its own decoder and CUDA stream. A second lane on a GPU starts the next batch beside
    # the running one: with the compiled decoder, 0.98x one lane's requests at 64 clients and 1.20x at 256, for
    # 1.6x the startup and twice the decoder memory (docs/benchmarks.md); so 1 unless asked.
    lanes: int = 1
    capture_graphs: bool = True  # on a GPU, every label-task batch shape's graphs before readiness (warm_up)
    # T5's decoder layers and encoder blocks through torch.compile ("auto": on a GPU only; decoding.compiled_layers)
    compile_decoder: str = "auto"
    http: str = "auto"  # uvicorn's HTTP parser: httptools (C) when installed, else h11
    loop: str = "auto"  # uvicorn's event loop: uvloop when installed, else asyncio's

    @property
    def served_name(self) -> str:
        return self.model_name or "student"


def _release_compiled() -> None:
    """Before loading again uncompiled: Dynamo's caches (which hold the first model's compiled code) and the
    failed attempt's GPU memory go."""
    import gc

    import torch

    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def compile_wanted(mode: str, gpu: bool) -> bool:
    """Whether to compile the decoder (--compile-decoder): on and off as said; auto on a GPU with a C compiler
    for Triton (without one, compiling would fail the warm-up: the server decodes uncompiled and says why)."""
    from .decoding import compiler_missing

    if mode not in ("auto", "on", "off"):
        raise ValueError(f"compile_decoder must be auto, on or off, not {mode!r}")
    if mode != "auto":
        return mode == "on"
    missing = compiler_missing() if gpu else ""
    if missing:
        log.warning("the decoder is not compiled (--compile-decoder auto): %s; it runs 1.5-1.7x slower", missing)
    return gpu and not missing


def cpu_threads(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """Threads for the model on a CPU: the CPUs this process may use (its cgroup's quota where one is set, as
    in a pod with a CPU limit; else its affinity), less one for the event loop; at least 1. torch's default
    is every core of the machine: a pod limited to 2 CPUs would then run as many threads as the node has, and
    even on a 2-core machine, 2 threads ran the make-dev student 3x slower than 1 (docs/benchmarks.md)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open(cpu_max, encoding="utf-8").read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus - 1)


CAPTURE_BUDGET_S = 300.0  # half the StudentModel's startup probe (120 x 5 s); later shapes are captured when seen


def warm_up(lanes: list[Any], batch: int, gpu: bool, capture: bool, budget_s: float = CAPTURE_BUDGET_S) -> None:
    """Each lane answers both tasks before the server is ready. On a GPU: a full batch of inputs as long as the
    model reads, rationales included, so that its decoder's buffers have their largest size from the start
    (growing them later drops every captured graph); then, with `capture`, the label task's graphs for every batch
    shape, smallest first, within budget_s for all lanes together."""
    deadline = time.monotonic() + budget_s
    for lane in lanes:
        started = time.monotonic()
        if not gpu:
            lane.predict_detailed(["warm-up"], [True])
            lane.predict_detailed(["warm-up"] * batch, [False] * batch)
            continue
        lane.predict_detailed(["warm-up " * 4096] * batch, [True] * batch)
        if capture:
            shapes = lane.capture_graphs(batch, deadline)
            log.info("captured the CUDA graphs of %d batch shapes in %.1f s%s", shapes, time.monotonic() - started,
                     "; the capture budget ran out: the rest are captured when first seen"
                     if time.monotonic() > deadline else "")


# ---- metrics ----


class Metrics:
    """Prometheus metrics in the server's own registry (several servers can live in one test process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        p = "distillery_student_"
        self.requests = Counter(p + "requests", "Requests by route and HTTP status code.", ["route", "code"], registry=r)
        self.latency = Histogram(p + "request_duration_seconds", "Latency of successful requests.", ["route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.batch = Histogram(p + "batch_size", "Inputs per generate pass.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
                               registry=r)
        self.batch_seconds = Histogram(p + "batch_duration_seconds", "Time of one generate pass.", registry=r)
        self.inputs = Counter(p + "inputs", "Inputs predicted.", registry=r)
        self.tokens = Counter(p + "tokens", "Tokens read and generated.", ["kind"], registry=r)
        self.queued = Gauge(p + "queued_inputs", "Inputs waiting for the model.", registry=r)
        self.ready = Gauge(p + "ready", "1 when the model is loaded and warmed up and the server is not draining.",
                           registry=r)

    def batched(self, size: int, seconds: float) -> None:
        self.batch.observe(size)
        self.batch_seconds.observe(seconds)
        self.inputs.inc(size)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


# ---- the application state ----


class StudentServer:
    """The model, its batcher and readiness. Ready only once the model is loaded and has answered a warm-up."""

    def __init__(self, cfg: ServerConfig, loader: Callable[[], Any] | None = None):
        self.cfg = cfg
        self.metrics = Metrics()
        self.batcher: Batcher | None = None
        self.status = "loading"  # loading | ready | failed | draining
        self.loader = loader or self._load_predictor
        self.compiled = False  # whether the loaded decoder was compiled (_load_predictor)
        self.created = int(time.time())
        self.metrics.queued.set_function(lambda: self.batcher.queued if self.batcher else 0)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def _load_predictor(self) -> Any:
        import torch

        from .modeling import Predictor

        with open(os.path.join(self.cfg.model_dir, "distillery.json"), encoding="utf-8") as f:
            info = ModelInfo.from_dict(json.load(f))
        device = self.cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        compile_layers = compile_wanted(self.cfg.compile_decoder, torch.device(device).type == "cuda")
        predictor = Predictor.from_dir(self.cfg.model_dir, info, device, decoder=self.cfg.decoder,
                                       compile_layers=compile_layers)
        if predictor.device.type == "cpu":
            torch.set_num_threads(self.cfg.threads or cpu_threads())
            log.info("decoding on the CPU with %d threads", torch.get_num_threads())
        return predictor

    def load(self) -> None:
        """Loads and warms up every lane (warm_up: their CUDA graphs are captured before the first request). If
        the decoder was compiled because of `--compile-decoder auto` and that fails, loads again uncompiled."""
        try:
            retry = False
            try:
                self._start()
            except Exception:
                if not (self.compiled and self.cfg.compile_decoder == "auto"):
                    raise
                log.exception("warming up the compiled decoder failed; loading again without compiling it")
                retry = True  # outside this block: its traceback holds the first predictor's GPU memory
            if retry:
                self.cfg = dataclasses.replace(self.cfg, compile_decoder="off")
                _release_compiled()
                self._start()
        except Exception:  # noqa: BLE001 - stays unready; the log says why, /healthz only that it failed
            log.exception("loading the model failed")
            self.status = "failed"

    def _start(self) -> None:
        """Loads the predictor, makes its lanes, warms them up, then serves: status ready."""
        predictor = self.loader()
        # compiled only where a static T5 decoder took compile_layers (not for --decoder hf, nor decoder-only)
        self.compiled = bool(getattr(getattr(predictor, "static", None), "compiled", False))
        count = max(1, self.cfg.lanes)
        lanes = [predictor] if count == 1 else [predictor.lane() for _ in range(count)]
        n = self.cfg.max_batch_size
        gpu = getattr(getattr(predictor, "device", None), "type", "cpu") == "cuda"
        warm_up(lanes, n, gpu, self.cfg.capture_graphs)
        self.batcher = Batcher([self._predict_fn(lane) for lane in lanes], n, self.cfg.max_wait_ms / 1000,
                               self.cfg.max_queue, self.metrics.batched)
        self.created = int(os.path.getmtime(self.cfg.model_dir)) if os.path.isdir(self.cfg.model_dir) else self.created
        if self.status == "loading":
            self.status = "ready"
            self.metrics.ready.set(1)
        log.info("model %s loaded and warmed up on %d lane(s); serving as %r", self.cfg.model_dir, count,
                 self.cfg.served_name)

    def _predict_fn(self, predictor: Any) -> Callable[..., list[Any]]:
        def predict(inputs: Any, flags: Any) -> list[Any]:
            preds = predictor.predict_detailed(list(inputs), list(flags))
            self.metrics.tokens.labels("prompt").inc(sum(p.prompt_tokens for p in preds))
            self.metrics.tokens.labels("completion").inc(sum(p.completion_tokens for p in preds))
            return preds

        return predict

    def start_draining(self) -> None:
        self.status = "draining"
        self.metrics.ready.set(0)
        log.info("draining: readiness is false; the listener closes in %.1f s", self.cfg.drain_delay_s)


# ---- request handling ----


def _legacy_error(e: ApiError) -> dict[str, Any]:
    return {"error": e.message}


async def read_body(request: Any, limit: int, timeout: float) -> bytes:
    """The body, at most limit bytes, within timeout seconds; ApiError 413/408 otherwise. An oversized body
    of up to 4x the limit is read and dropped before the 413, so that clients which send the whole body
    before reading (most do) see the 413 rather than a reset connection; past that the connection closes."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > 4 * limit:
        raise ApiError(413, f"the body of {declared} bytes is over the limit of {limit}", code="body_too_large")

    async def collect() -> bytes:
        buf, seen = bytearray(), 0
        try:
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > 4 * limit:
                    break
                if seen <= limit:
                    buf += chunk
        except ClientDisconnect:  # or a malformed body, which uvicorn has answered with a 400 already
            raise ApiError(400, "the body is incomplete or malformed") from None
        if seen > limit:
            raise ApiError(413, f"the body is over the limit of {limit} bytes", code="body_too_large")
        return bytes(buf)

    try:
        async with asyncio.timeout(timeout):  # no task per request, unlike wait_for on Python 3.11
            return await collect()
    except TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout:g} s", code="timeout") from None


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "the body is empty: send a JSON object")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"body is not valid JSON: {e}") from None


def parse_predict_request(req: Any) -> tuple[list[str], bool]:
    """Validates a /v1/predict body; raises InvalidInput with what is wrong."""
    if not isinstance(req, dict):
        raise InvalidInput('body must be a JSON object like {"inputs":["..."]}')
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('"inputs" must be a non-empty list of strings')
    if len(inputs) > MAX_INPUTS:
        raise InvalidInput(f'"inputs" holds {len(inputs)} items; at most {MAX_INPUTS} per request')
    for i, x in enumerate(inputs):
        if not isinstance(x, str):
            raise InvalidInput(f'"inputs"[{i}] is not a string')
    explain = req.get("explain", False)
    if not isinstance(explain, bool):
        raise InvalidInput('"explain" must be true or false')
    return inputs, explain


def check_input_lengths(inputs: list[str], limit: int, field: str) -> None:
    for i, x in enumerate(inputs):
        if len(x) > limit:
            raise ApiError(400, f"{field} input {i} has {len(x)} characters; at most {limit}", param=field,
                           code="input_too_long")


class Routes:
    """The HTTP handlers over one StudentServer."""

    def __init__(self, server: StudentServer):
        self.s = server
        self.cfg = server.cfg

    def _authorize(self, request: Any) -> None:
        if not self.cfg.api_key:
            return
        got = request.headers.get("authorization", "")
        want = f"Bearer {self.cfg.api_key}"
        if not hmac.compare_digest(got.encode(), want.encode()):
            raise ApiError(401, "a valid API key is required: Authorization: Bearer <key>", code="invalid_api_key",
                           kind="authentication_error")

    def _admit(self) -> Batcher:
        # While draining the server still answers: clients that have not yet seen the endpoint go must not
        # lose requests. The listener closes after drain_delay_s; new connections are then refused.
        if self.s.batcher is None:
            raise ApiError(503, "the model is not loaded yet", code="loading", kind="server_error")
        return self.s.batcher

    async def _run(self, inputs: list[str], explain: bool) -> list[Any]:
        batcher = self._admit()
        try:
            return await batcher.submit(inputs, explain)
        except QueueFull:
            raise ApiError(429, "the server is at capacity; retry shortly", code="overloaded",
                           kind="rate_limit_error") from None

    async def _request(self, request: Any) -> Any:
        self._authorize(request)
        self._admit()
        return parse_json(await read_body(request, self.cfg.max_body_bytes, self.cfg.read_timeout_s))

    async def chat(self, request: Any) -> dict[str, Any]:
        task = parse_chat(await self._request(request), self.cfg.served_name)
        check_input_lengths(task.inputs, self.cfg.max_input_chars, "messages")
        return chat_response(await self._run(task.inputs, task.explain), self.cfg.served_name)

    async def completions(self, request: Any) -> dict[str, Any]:
        task = parse_completion(await self._request(request), self.cfg.served_name)
        check_input_lengths(task.inputs, self.cfg.max_input_chars, "prompt")
        return completion_response(await self._run(task.inputs, task.explain), self.cfg.served_name)

    async def predict(self, request: Any) -> dict[str, Any]:
        req = await self._request(request)
        try:
            inputs, explain = parse_predict_request(req)
        except InvalidInput as e:
            raise ApiError(400, str(e)) from None
        check_input_lengths(inputs, self.cfg.max_input_chars, "inputs")
        return {"predictions": [p.as_dict() for p in await self._run(inputs, explain)]}

    async def models(self, request: Any) -> dict[str, Any]:
        self._authorize(request)
        return {"object": "list", "data": [model_card(self.cfg.served_name, self.s.created)]}

    async def model(self, request: Any) -> dict[str, Any]:
        self._authorize(request)
        name = request.path_params["name"]
        if name != self.cfg.served_name:
            raise ApiError(404, f"The model `{name}` does not exist", param="model", code="model_not_found")
        return model_card(name, self.s.created)


def _respond(route: str, server: StudentServer, handler: Callable[[Any], Awaitable[dict[str, Any]]],
             legacy_errors: bool = False) -> Callable[[Any], Awaitable[Any]]:
    """Wraps a handler: JSON out, ApiError to its status (OpenAI's shape, or {"error": "..."} for /v1/predict),
    Retry-After on 429/503, metrics."""
    from starlette.responses import JSONResponse

    async def endpoint(request: Any) -> Any:
        started = time.monotonic()
        try:
            resp = JSONResponse(await handler(request))
        except ApiError as e:
            headers = {"Retry-After": "1"} if e.status in (429, 503) else {}
            if e.status in (408, 413):
                headers["Connection"] = "close"  # the rest of the body may be unread
            if e.status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            resp = JSONResponse(_legacy_error(e) if legacy_errors else e.body(), e.status, headers=headers)
        except Exception:  # noqa: BLE001 - no internal text to the client; the log has the trace
            log.exception("request to %s failed", route)
            e = ApiError(500, "the prediction failed; the server log has the details", kind="server_error")
            resp = JSONResponse(_legacy_error(e) if legacy_errors else e.body(), 500)
        server.metrics.requests.labels(route, str(resp.status_code)).inc()
        if resp.status_code == 200:
            server.metrics.latency.labels(route).observe(time.monotonic() - started)
        return resp

    return endpoint


def build_app(server: StudentServer) -> Any:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    r = Routes(server)

    async def healthz(request: Any) -> Any:
        return JSONResponse({"status": "ok" if server.ready else server.status}, 200 if server.ready else 503)

    async def metrics(request: Any) -> Any:
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def not_found(request: Any, exc: HTTPException) -> Any:
        msg = f"no route {request.method} {request.url.path}; see /v1/models, /v1/chat/completions, /v1/predict"
        return JSONResponse(ApiError(exc.status_code, msg).body(), exc.status_code)

    routes = [
        Route("/v1/chat/completions", _respond("chat", server, r.chat), methods=["POST"]),
        Route("/v1/completions", _respond("completions", server, r.completions), methods=["POST"]),
        Route("/v1/predict", _respond("predict", server, r.predict, legacy_errors=True), methods=["POST"]),
        Route("/v1/models", _respond("models", server, r.models), methods=["GET"]),
        Route("/v1/models/{name:path}", _respond("models", server, r.model), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


# ---- the HTTP server ----


MAX_HEAD_BYTES = 64 * 1024  # a request line and headers longer than this get a 400


def http_implementation(choice: str = "auto") -> str:
    """"httptools" (uvicorn's C parser, llhttp) when it is installed or asked for, else "h11" (pure Python)."""
    if choice != "auto":
        return choice
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def _protocol(read_timeout: float, http: str = "auto") -> type:
    """uvicorn's HTTP protocol (httptools or h11), plus a deadline for each request head: uvicorn closes idle
    keep-alive connections but not a fresh one that sends nothing, or trickles its headers byte by byte. With
    httptools, also a cap on the head's size (h11 has its own: h11_max_incomplete_event_size)."""
    if http_implementation(http) == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class HeadLimits(Base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_deadline()

        def _arm_head_deadline(self) -> None:
            armed_for = self.cycle
            self._head_bytes, self._in_head = 0, True
            self._head_timer = self.loop.call_later(read_timeout, self._head_deadline, armed_for)

        def _head_deadline(self, armed_for: Any) -> None:
            if self.cycle is armed_for and not self.transport.is_closing():  # no new request has started
                self.transport.close()

        def on_headers_complete(self) -> None:  # httptools only: a head is complete
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if Base.__name__ == "HttpToolsProtocol" and self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self.send_400_response("Request head too large.")

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._head_timer.cancel()
            self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_timer.cancel()
            super().connection_lost(exc)

    return HeadLimits


def uvicorn_server(server: StudentServer, sock: Any = None) -> Any:
    """A uvicorn.Server whose SIGTERM drains: readiness false at once, the listener closes after
    drain_delay_s, in-flight requests then have graceful_timeout_s. A second signal skips the delay."""
    import uvicorn

    cfg = server.cfg
    config = uvicorn.Config(build_app(server), host=cfg.host, port=cfg.port, http=_protocol(cfg.read_timeout_s, cfg.http),
                            loop=cfg.loop, lifespan="off", access_log=False, log_config=None, backlog=2048,
                            timeout_keep_alive=max(1, int(cfg.idle_timeout_s)),
                            timeout_graceful_shutdown=max(1, int(cfg.graceful_timeout_s)),
                            limit_concurrency=cfg.max_connections, h11_max_incomplete_event_size=MAX_HEAD_BYTES)

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if server.status == "draining":
                self.should_exit = True
                return
            server.start_draining()
            timer = threading.Timer(cfg.drain_delay_s, lambda: setattr(self, "should_exit", True))
            timer.daemon = True
            timer.start()

    return DrainingServer(config)


def serve(cfg: ServerConfig) -> int:
    """Serves until SIGTERM/SIGINT (and the drain) end it; the model loads in a background thread."""
    if not cfg.api_key:
        cfg.api_key = os.environ.get(API_KEY_ENV, "")
    server = StudentServer(cfg)
    threading.Thread(target=server.load, name="load", daemon=True).start()
    log.info("listening on %s:%d; loading %s%s", cfg.host, cfg.port, cfg.model_dir,
             " (API key required)" if cfg.api_key else "")
    uvicorn_server(server).run()
    if server.batcher is not None:
        server.batcher.stop()
    return 0
