"""Hostile clients and graceful drain against the real server process (`python -m distillery_student serve`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, model_dir: str, *flags: str):
        self.port = _free_port()
        cmd = [sys.executable, "-m", "distillery_student", "serve", "--model", model_dir, "--host", "127.0.0.1",
               "--port", str(self.port), "--device", "cpu", "--served-model-name", "m", *flags]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.p.poll() is None:
            try:
                if _get(self.port, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not become ready: {self.stop()}")

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.kill()
        return self.p.communicate()[0]


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(port: int, body: Any, path: str = "/v1/predict", timeout: float = 60) -> tuple[int, Any, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def _raw(port: int, data: bytes, wait: float = 5) -> bytes:
    """Sends raw bytes, returns what comes back until the server closes or `wait` passes."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except socket.timeout:
            pass
        return out


@pytest.fixture(scope="module", params=["httptools", "h11"])
def proc(served_model_dir: str, request: pytest.FixtureRequest) -> Iterator[Proc]:
    """The server with each of uvicorn's HTTP parsers: the C one it uses by default, and the pure-Python one."""
    p = Proc(served_model_dir, "--read-timeout", "1", "--idle-timeout", "1", "--max-queue", "8",
             "--max-batch-size", "8", "--http", request.param)
    yield p
    p.stop()


def _still_serves(p: Proc) -> None:
    code, _, body = _post(p.port, {"inputs": ["1 2"]})
    assert code == 200 and body["predictions"][0]["label"] in ("first", "second")


HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("request_bytes", [
    HEAD + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n",
    HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    HEAD + b"Content-Length: abc\r\n\r\n{}",
    HEAD + b"Content-Length: -1\r\n\r\n{}",
    HEAD + b"Content-Length: 99999999999999999999999\r\n\r\n{}",
], ids=["negative-chunk", "invalid-chunk", "garbage-length", "negative-length", "huge-length"])
def test_malformed_framing_gets_4xx_and_a_closed_connection(proc: Proc, request_bytes: bytes) -> None:
    out = _raw(proc.port, request_bytes)
    status = int(out.split(b" ", 2)[1])
    assert status in (400, 413), out
    _still_serves(proc)


def test_a_request_head_growing_past_64_kib_gets_400_at_once(proc: Proc) -> None:
    t = time.monotonic()  # a head that never ends is cut at 64 KiB, long before the read timeout
    out = _raw(proc.port, HEAD + b"X-Filler: " + b"a" * 70_000, wait=10)
    assert out.startswith(b"HTTP/1.1 400") and time.monotonic() - t < 0.9, out[:200]
    _still_serves(proc)


def test_missing_body_gets_400(proc: Proc) -> None:
    out = _raw(proc.port, HEAD + b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"the body is empty" in out


def test_a_body_that_never_comes_gets_408_after_the_read_timeout(proc: Proc) -> None:
    t = time.monotonic()
    out = _raw(proc.port, HEAD + b"Content-Length: 100\r\n\r\n{", wait=10)
    assert out.startswith(b"HTTP/1.1 408") and 0.9 < time.monotonic() - t < 5


def test_a_1mb_input_is_refused_with_the_field_named(proc: Proc) -> None:
    code, _, body = _post(proc.port, {"inputs": ["x" * 1_000_000]})
    assert code == 400 and "at most 16384" in body["error"]
    _still_serves(proc)


def test_200_idle_connections_neither_block_nor_stay(proc: Proc) -> None:
    socks = [socket.create_connection(("127.0.0.1", proc.port)) for _ in range(200)]
    try:
        socks[0].sendall(b"POST /v1/pre")  # one trickles half a request head
        t = time.monotonic()
        _still_serves(proc)
        assert time.monotonic() - t < 5
        time.sleep(2.5)  # past --read-timeout 1: the server closes them
        closed = 0
        for s in socks:
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except (socket.timeout, ConnectionResetError):
                closed += isinstance(sys.exc_info()[1], ConnectionResetError)
        assert closed == 200
    finally:
        for s in socks:
            s.close()


def test_a_burst_beyond_the_queue_gets_429_with_retry_after(proc: Proc) -> None:
    body = {"inputs": [f"{i} {i + 3}" for i in range(8)], "explain": True}
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: _post(proc.port, body), range(32)))
    codes = sorted(c for c, _, _ in results)
    assert set(codes) == {200, 429}, codes
    for code, headers, payload in results:
        if code == 429:
            assert headers.get("Retry-After") == "1" and "capacity" in payload["error"]
    _still_serves(proc)


def test_sigterm_drains_without_losing_a_request(served_model_dir: str) -> None:
    """What a rolling update needs. On SIGTERM readiness turns false at once while requests are still
    answered; clients stop sending new ones when the endpoint is removed (here: 1 s later, as a Service's
    endpoints follow readiness), and every request sent is answered with a 200, in flight or not. Then the
    listener closes (new connections are refused) and the process exits 0. (A client that ignores readiness
    and dials the pod after its listener closed is refused, or reset if it raced the close; that is not a
    rolling update's path.)"""
    p = Proc(served_model_dir, "--drain-delay", "3", "--max-batch-size", "4")
    outcomes: list[str] = []
    routed = threading.Event()  # the pod is an endpoint of the Service
    routed.set()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            if not routed.is_set():
                time.sleep(0.05)
                continue
            try:
                code, _, _ = _post(p.port, {"inputs": ["3 4", "9 2", "5 5", "1 8"]})
                outcomes.append(str(code))
            except Exception as e:  # noqa: BLE001 - a refused, reset or failed request is what this test catches
                outcomes.append(repr(e))

    def grows(seconds: float) -> bool:
        n, deadline = len(outcomes), time.monotonic() + seconds
        while len(outcomes) == n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(outcomes) > n

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        assert grows(30)
        p.p.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert _get(p.port, "/healthz") == (503, b'{"status":"draining"}')
        assert grows(2)  # still answering while the endpoint is being removed
        time.sleep(0.8)
        routed.clear()
        refused = False
        for _ in range(100):  # the listener closes after the drain delay
            try:
                socket.create_connection(("127.0.0.1", p.port), timeout=1).close()
            except OSError:
                refused = True
                break
            time.sleep(0.1)
        assert refused, "the listener never closed"
        assert p.p.wait(30) == 0
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        log = p.stop()
    assert outcomes.count("200") > 8
    assert set(outcomes) == {"200"}, (set(outcomes), log[-2000:])
