"""The student server: POST /v1/predict, GET /healthz, GET /metrics (docs/workloads.md).

Standard library HTTP (one thread per connection) in front of one batching thread that owns the model:
concurrent requests wait in a queue and are answered from one generate pass of up to max_batch_size inputs,
so throughput grows with load while a lone request waits at most max_wait_ms.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from .contract import InvalidInput, ModelInfo

log = logging.getLogger("distillery_student")

MAX_BODY_BYTES = 1 << 20
MAX_INPUTS = 256
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.sum += v
        self.count += 1

    def render(self, name: str) -> list[str]:
        out, acc = [], 0
        for le, c in zip(self.buckets, self.counts):
            acc += c
            out.append(f'{name}_bucket{{le="{le:g}"}} {acc}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out += [f"{name}_sum {self.sum:.6f}", f"{name}_count {self.count}"]
        return out


class Metrics:
    """Prometheus text for requests, latency and batch sizes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch = Histogram(BATCH_BUCKETS)
        self.inputs = 0

    def request(self, code: int, seconds: float | None) -> None:
        with self.lock:
            self.requests[str(code)] = self.requests.get(str(code), 0) + 1
            if seconds is not None:
                self.latency.observe(seconds)

    def batched(self, size: int) -> None:
        with self.lock:
            self.batch.observe(size)
            self.inputs += size

    def render(self) -> str:
        with self.lock:
            lines = ["# HELP distillery_student_requests_total Prediction requests by HTTP status code.",
                     "# TYPE distillery_student_requests_total counter"]
            lines += [f'distillery_student_requests_total{{code="{c}"}} {n}' for c, n in sorted(self.requests.items())]
            lines += ["# HELP distillery_student_request_duration_seconds Latency of successful predictions.",
                      "# TYPE distillery_student_request_duration_seconds histogram"]
            lines += self.latency.render("distillery_student_request_duration_seconds")
            lines += ["# HELP distillery_student_batch_size Inputs per generate pass.",
                      "# TYPE distillery_student_batch_size histogram"]
            lines += self.batch.render("distillery_student_batch_size")
            lines += ["# HELP distillery_student_inputs_total Inputs predicted.",
                      "# TYPE distillery_student_inputs_total counter", f"distillery_student_inputs_total {self.inputs}"]
        return "\n".join(lines) + "\n"


@dataclass
class Pending:
    inputs: list[str]
    explain: bool
    done: threading.Event = field(default_factory=threading.Event)
    result: list[dict[str, str]] | None = None
    error: str | None = None


class Batcher:
    """Groups queued requests into generate passes of at most max_batch_size inputs."""

    def __init__(self, predict: Callable[[list[str], list[bool]], list[dict[str, str]]], max_batch_size: int,
                 max_wait_ms: float, metrics: Metrics):
        self.predict = predict
        self.max_batch = max(1, max_batch_size)
        self.max_wait = max_wait_ms / 1000.0
        self.metrics = metrics
        self.queue: queue.Queue[Pending] = queue.Queue()
        self._carry: Pending | None = None
        threading.Thread(target=self._loop, name="batcher", daemon=True).start()

    def submit(self, inputs: list[str], explain: bool, timeout: float = 300.0) -> list[dict[str, str]]:
        p = Pending(inputs, explain)
        self.queue.put(p)
        if not p.done.wait(timeout):
            raise TimeoutError("prediction timed out")
        if p.error is not None:
            raise RuntimeError(p.error)
        assert p.result is not None
        return p.result

    def _collect(self) -> list[Pending]:
        first = self._carry or self.queue.get()
        self._carry = None
        group, n = [first], len(first.inputs)
        deadline = time.monotonic() + self.max_wait
        while n < self.max_batch:
            left = deadline - time.monotonic()
            try:
                p = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if n + len(p.inputs) > self.max_batch:
                self._carry = p  # starts the next batch
                break
            group.append(p)
            n += len(p.inputs)
        return group

    def _loop(self) -> None:
        while True:
            group = self._collect()
            inputs = [x for p in group for x in p.inputs]
            flags = [p.explain for p in group for _ in p.inputs]
            try:
                preds: list[dict[str, str]] = []
                for i in range(0, len(inputs), self.max_batch):  # one request may exceed the batch size
                    chunk = inputs[i : i + self.max_batch]
                    preds += self.predict(chunk, flags[i : i + self.max_batch])
                    self.metrics.batched(len(chunk))
                at = 0
                for p in group:
                    p.result = preds[at : at + len(p.inputs)]
                    at += len(p.inputs)
            except Exception as e:  # noqa: BLE001 - answered as a 500 to each request of the batch
                log.exception("prediction failed")
                for p in group:
                    p.error = f"{type(e).__name__}: {e}"
            for p in group:
                p.done.set()


def parse_predict_request(body: bytes) -> tuple[list[str], bool]:
    """Validates a /v1/predict body; raises InvalidInput with what is wrong."""
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"body is not valid JSON: {e}") from None
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


class StudentServer:
    """The HTTP server; the model loads in the background and /healthz says 503 until it has."""

    def __init__(self, model_dir: str, host: str = "0.0.0.0", port: int = 8080, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, device: str = "", loader: Callable[[], Any] | None = None):
        self.model_dir = model_dir
        self.metrics = Metrics()
        self.batcher: Batcher | None = None
        self.load_error: str | None = None
        self.max_batch_size, self.max_wait_ms, self.device = max_batch_size, max_wait_ms, device
        self.loader = loader or self._load_predictor
        ThreadingHTTPServer.request_queue_size = 1024  # listen backlog: bursts of clients must not be reset
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def _load_predictor(self) -> Any:
        from .modeling import Predictor

        with open(os.path.join(self.model_dir, "distillery.json"), encoding="utf-8") as f:
            info = ModelInfo.from_dict(json.load(f))
        return Predictor.from_dir(self.model_dir, info, self.device or None)

    def load(self) -> None:
        try:
            predictor = self.loader()
            self.batcher = Batcher(predictor.predict, self.max_batch_size, self.max_wait_ms, self.metrics)
            log.info("model %s loaded; serving on port %d", self.model_dir, self.port)
        except Exception as e:  # noqa: BLE001 - stays unready; the log and /healthz say why
            log.exception("loading the model failed")
            self.load_error = f"{type(e).__name__}: {e}"

    def start(self) -> "StudentServer":
        """Serves and loads in background threads (tests); serve_forever() is the blocking form."""
        threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True).start()
        threading.Thread(target=self.load, name="load", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: StudentServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # access logs off; /metrics counts requests
            pass

        def _send(self, code: int, body: dict[str, Any] | str, ctype: str = "application/json") -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                if server.batcher is not None:
                    self._send(200, {"status": "ok"})
                else:
                    self._send(503, {"status": "loading" if server.load_error is None else "failed",
                                     **({"error": server.load_error} if server.load_error else {})})
            elif self.path == "/metrics":
                self._send(200, server.metrics.render(), "text/plain; version=0.0.4")
            else:
                self._send(404, {"error": f"no route GET {self.path}; try POST /v1/predict"})

        def do_POST(self) -> None:
            started = time.monotonic()
            if self.path != "/v1/predict":
                self._send(404, {"error": f"no route POST {self.path}; try POST /v1/predict"})
                return
            code, body = self._predict()
            server.metrics.request(code, time.monotonic() - started if code == 200 else None)
            self._send(code, body)

        def _read_body(self) -> tuple[int, bytes | dict[str, Any]]:
            """The request body, sized by Content-Length or sent chunked (as proxies such as the
            apiserver's service proxy do); an error status and message otherwise."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                body = read_chunked(self.rfile, MAX_BODY_BYTES)
                if body is None:
                    self.close_connection = True
                    return 413, {"error": f"body is malformed or over the limit of {MAX_BODY_BYTES} bytes"}
                return 200, body
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                return 411, {"error": "Content-Length (or Transfer-Encoding: chunked) is required"}
            if int(length) > MAX_BODY_BYTES:
                self.close_connection = True
                return 413, {"error": f"body of {length} bytes is over the limit of {MAX_BODY_BYTES}"}
            return 200, self.rfile.read(int(length))

        def _predict(self) -> tuple[int, dict[str, Any]]:
            code, body = self._read_body()
            if isinstance(body, dict):
                return code, body
            try:
                inputs, explain = parse_predict_request(body)
            except InvalidInput as e:
                return 400, {"error": str(e)}
            if server.batcher is None:
                return 503, {"error": "the model is not loaded yet"}
            try:
                return 200, {"predictions": server.batcher.submit(inputs, explain)}
            except Exception as e:  # noqa: BLE001
                return 500, {"error": str(e)}

    return Handler


def read_chunked(rfile: Any, limit: int) -> bytes | None:
    """Reads an HTTP/1.1 chunked body; None when it is malformed or longer than limit."""
    out = bytearray()
    while True:
        size_line = rfile.readline(1024)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            return None
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        if len(out) + size > limit:
            return None
        out += rfile.read(size)
        rfile.readline(1024)  # the CRLF after each chunk


def serve(model_dir: str, host: str = "0.0.0.0", port: int = 8080, max_batch_size: int = 32,
          max_wait_ms: float = 5.0, device: str = "") -> int:
    server = StudentServer(model_dir, host, port, max_batch_size, max_wait_ms, device)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.httpd.shutdown, daemon=True).start())
    threading.Thread(target=server.load, name="load", daemon=True).start()
    log.info("listening on %s:%d; loading %s", host, server.port, model_dir)
    server.httpd.serve_forever()
    return 0
