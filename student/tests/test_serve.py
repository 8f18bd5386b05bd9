"""The server: batching returns what one-by-one calls return; explain; bad requests; readiness; metrics."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import CONTRACT, comparison_records

from distillery_student.serve import StudentServer
from distillery_student.train import train


def _call(port: int, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if r.headers.get_content_type() == "application/json" else text)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, t5_dir: str) -> str:
    from conftest import write_records

    from distillery_student.contract import parse_train_config

    tmp = tmp_path_factory.mktemp("serve")
    raw = json.loads((CONTRACT / "train.json").read_text())
    raw["student"]["baseModel"] = t5_dir
    raw["data"] = {"annotationsDir": write_records(tmp / "ann", comparison_records(64)), "evalFraction": 0.1}
    raw["task"] = {"type": "classification", "labels": ["first", "second"], "labelPrefix": "[label] ",
                   "rationalePrefix": "[rationale] "}
    raw["training"].pop("lora")  # full fine-tuning, as before the vector had LoRA
    raw["training"].update(maxSteps=40, batchSize=16, learningRate=3e-3, maxInputLength=32, maxTargetLength=24,
                           checkpointEverySteps=0)
    raw["output"] = {"checkpointDir": str(tmp / "ck"), "modelDir": str(tmp / "model"), "metricsPath": str(tmp / "m.json")}
    train(parse_train_config(raw))
    return str(tmp / "model")


@pytest.fixture(scope="module")
def server(model_dir: str):
    s = StudentServer(model_dir, "127.0.0.1", 0, max_batch_size=16, max_wait_ms=50).start()
    for _ in range(600):
        if s.batcher is not None:
            break
        threading.Event().wait(0.05)
    yield s
    s.stop()


INPUTS = ["3 7", "9 1", "12 5", "0 4", "6 2", "8 88", "5 3", "1 2 3 4 5"]


def test_batched_predictions_equal_one_by_one(server: StudentServer) -> None:
    one_by_one = []
    for x in INPUTS:
        code, body = _call(server.port, "POST", "/v1/predict", {"inputs": [x]})
        assert code == 200
        one_by_one += body["predictions"]
    code, body = _call(server.port, "POST", "/v1/predict", {"inputs": INPUTS})
    assert code == 200 and body["predictions"] == one_by_one
    # concurrent single-input requests are grouped into shared generate passes
    before = server.metrics.batch.count
    with ThreadPoolExecutor(len(INPUTS)) as pool:
        results = list(pool.map(lambda x: _call(server.port, "POST", "/v1/predict", {"inputs": [x]}), INPUTS))
    assert [b["predictions"][0] for _, b in results] == one_by_one
    assert server.metrics.batch.count - before < len(INPUTS)
    assert all(set(p) == {"label"} for p in one_by_one)


def test_explain_returns_a_rationale(server: StudentServer) -> None:
    req = json.loads((CONTRACT / "predict-request.json").read_text())
    code, body = _call(server.port, "POST", "/v1/predict", req)
    assert code == 200 and len(body["predictions"]) == len(req["inputs"])
    want_keys = set(json.loads((CONTRACT / "predict-response.json").read_text())["predictions"][0])
    for p in body["predictions"]:
        assert set(p) == want_keys and isinstance(p["rationale"], str) and p["rationale"]
    _, plain = _call(server.port, "POST", "/v1/predict", {"inputs": req["inputs"]})
    assert [p["label"] for p in plain["predictions"]] == [p["label"] for p in body["predictions"]]


@pytest.mark.parametrize("raw, status, says", [
    (b"not json", 400, "not valid JSON"),
    (b"[1,2]", 400, "JSON object"),
    (b'{"inputs":[]}', 400, "non-empty list"),
    (b'{"inputs":"x"}', 400, "non-empty list"),
    (b'{"inputs":[1]}', 400, "not a string"),
    (b'{"inputs":["a"],"explain":"yes"}', 400, "explain"),
    (json.dumps({"inputs": ["x"] * 257}).encode(), 400, "at most 256"),
])
def test_bad_requests_get_4xx_and_the_server_keeps_serving(server: StudentServer, raw: bytes, status: int,
                                                           says: str) -> None:
    code, body = _call(server.port, "POST", "/v1/predict", raw=raw)
    assert code == status and says in body["error"]
    assert _call(server.port, "POST", "/v1/predict", {"inputs": ["1 2"]})[0] == 200
    assert _call(server.port, "GET", "/nope")[0] == 404


def test_metrics(server: StudentServer) -> None:
    _call(server.port, "POST", "/v1/predict", {"inputs": ["1 2"]})
    code, text = _call(server.port, "GET", "/metrics")
    assert code == 200
    assert 'distillery_student_requests_total{code="200"}' in text
    assert "distillery_student_request_duration_seconds_bucket" in text
    assert "distillery_student_batch_size_count" in text


def test_healthz_is_503_until_loaded(model_dir: str) -> None:
    release = threading.Event()

    def slow_loader():
        from distillery_student.contract import ModelInfo
        from distillery_student.modeling import Predictor

        release.wait(30)
        info = ModelInfo.from_dict(json.load(open(f"{model_dir}/distillery.json")))
        return Predictor.from_dir(model_dir, info, "cpu")

    s = StudentServer(model_dir, "127.0.0.1", 0, loader=slow_loader).start()
    try:
        assert _call(s.port, "GET", "/healthz")[0] == 503
        assert _call(s.port, "POST", "/v1/predict", {"inputs": ["1 2"]})[0] == 503
        release.set()
        for _ in range(600):
            if _call(s.port, "GET", "/healthz")[0] == 200:
                break
            threading.Event().wait(0.05)
        assert _call(s.port, "GET", "/healthz")[0] == 200
        assert _call(s.port, "POST", "/v1/predict", {"inputs": ["1 2"]})[0] == 200
    finally:
        release.set()
        s.stop()


def test_chunked_request_body(server: StudentServer) -> None:
    """Proxies (the apiserver's service proxy among them) forward bodies chunked, without a length."""
    import http.client

    body = json.dumps({"inputs": ["3 5"], "explain": False}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
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
    assert payload == _call(server.port, "POST", "/v1/predict", {"inputs": ["3 5"], "explain": False})[1]
