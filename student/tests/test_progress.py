"""Progress: merge patches of train-<rank> in ConfigMap <job>-progress with the service account; failures
never fail training."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import CONTRACT

from distillery_student.progress import ConfigMapPatcher, ProgressReporter


def _fake_api(status: int = 200):
    seen: list[dict] = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_PATCH(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"path": self.path, "auth": self.headers["Authorization"],
                         "ctype": self.headers["Content-Type"], "body": json.loads(body)})
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, seen


def _sa(tmp_path: Path) -> str:
    (tmp_path / "token").write_text("tok-1\n")
    (tmp_path / "namespace").write_text("team-a\n")
    return str(tmp_path)


def test_reporter_patches_its_key_at_most_every_interval(tmp_path: Path) -> None:
    httpd, seen = _fake_api()
    try:
        patcher = ConfigMapPatcher("anli-t5-progress", api_base=f"http://127.0.0.1:{httpd.server_address[1]}",
                                   sa_dir=_sa(tmp_path))
        rep = ProgressReporter("train-0", patcher.patch, interval=3600)
        vector = json.loads((CONTRACT / "progress-train.json").read_text())
        value = {k: v for k, v in vector.items() if k != "updatedAt"}
        rep.report(value)
        rep.flush()
        rep.report({**value, "step": 301})  # within the interval: not sent
        rep.flush()
        assert len(seen) == 1
        req = seen[0]
        assert req["path"] == "/api/v1/namespaces/team-a/configmaps/anli-t5-progress"
        assert req["auth"] == "Bearer tok-1" and req["ctype"] == "application/merge-patch+json"
        sent = json.loads(req["body"]["data"]["train-0"])
        assert set(sent) == set(vector) and sent["step"] == 300
    finally:
        httpd.shutdown()


def test_failed_report_is_retried_and_never_raises(tmp_path: Path) -> None:
    httpd, seen = _fake_api(status=403)
    try:
        patcher = ConfigMapPatcher("j-progress", api_base=f"http://127.0.0.1:{httpd.server_address[1]}",
                                   sa_dir=_sa(tmp_path))
        rep = ProgressReporter("train-1", patcher.patch, interval=3600)
        rep.report({"step": 1})
        rep.flush()
        rep.report({"step": 2})  # the failure reset the interval: retried at once
        rep.flush()
        assert [json.loads(s["body"]["data"]["train-1"])["step"] for s in seen] == [1, 2]
    finally:
        httpd.shutdown()
    dead = ConfigMapPatcher("j-progress", api_base="http://127.0.0.1:9", sa_dir=_sa(tmp_path), timeout=1)
    rep = ProgressReporter("train-0", dead.patch, interval=0)
    rep.report({"step": 3})
    rep.flush()  # connection refused: logged, nothing raised
