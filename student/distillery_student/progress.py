"""Progress reports: JSON merge patches of this pod's key in ConfigMap <job>-progress (docs/workloads.md).
ConfigMapPatcher is also what report.py patches <job>-report with.

Inside a cluster the pod's service account patches the ConfigMap through the API server; outside one the
report goes to the log. A failed report is logged and retried at the next interval; it never fails training.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable

from .contract import train_progress_key

log = logging.getLogger("distillery_student")

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConfigMapPatcher:
    """Sends merge patches of one ConfigMap's data with the in-cluster service account."""

    def __init__(self, configmap: str, api_base: str | None = None, sa_dir: str = SERVICE_ACCOUNT_DIR,
                 timeout: float = 5.0):
        if api_base is None:
            host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if ":" in host:
                host = f"[{host}]"
            api_base = f"https://{host}:{port}"
        self.api_base = api_base.rstrip("/")
        self.sa_dir = sa_dir
        self.configmap = configmap
        self.timeout = timeout
        with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as f:
            self.namespace = f.read().strip()
        ca = os.path.join(sa_dir, "ca.crt")
        self.ssl = ssl.create_default_context(cafile=ca) if os.path.exists(ca) else None

    def patch(self, key: str, value: dict[str, Any]) -> None:
        """Sets one key to the JSON of value."""
        self.patch_data({key: json.dumps(value, separators=(",", ":"))})

    def patch_data(self, data: dict[str, str]) -> None:
        """Sets these keys of the ConfigMap's data (a JSON merge patch; other keys are kept)."""
        with open(os.path.join(self.sa_dir, "token"), encoding="utf-8") as f:  # re-read: tokens rotate
            token = f.read().strip()
        body = json.dumps({"data": data}).encode()
        url = f"{self.api_base}/api/v1/namespaces/{self.namespace}/configmaps/{self.configmap}"
        req = urllib.request.Request(url, data=body, method="PATCH", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json",
            "Accept": "application/json",
        })
        with urllib.request.urlopen(req, timeout=self.timeout, context=self.ssl if url.startswith("https") else None):
            pass


def in_cluster(sa_dir: str = SERVICE_ACCOUNT_DIR) -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(os.path.join(sa_dir, "token"))


class ProgressReporter:
    """Reports at most every `interval` seconds, in a background thread so a slow API server never stalls a
    training step; only the newest report is sent."""

    def __init__(self, key: str, send: Callable[[str, dict[str, Any]], None] | None, interval: float = 10.0):
        self.key = key
        self.send = send
        self.interval = interval
        self._last = -float("inf")
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_job(cls, job: str, rank: int, interval: float = 10.0, point: int | None = None) -> "ProgressReporter":
        """The reporter of trainer rank `rank`, of sweep point `point` when the job is a sweep."""
        send = None
        if in_cluster():
            try:
                send = ConfigMapPatcher(f"{job}-progress").patch
            except OSError as e:
                log.warning("progress: cannot read the service account (%s); reporting to the log", e)
        return cls(train_progress_key(rank, point), send, interval)

    def report(self, value: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        value = {**value, "updatedAt": utc_now()}
        if self.send is None:
            self._last = now
            log.info("progress %s %s", self.key, json.dumps(value, separators=(",", ":")))
            return
        if not self._busy.acquire(blocking=False):
            return  # the previous report is still in flight; try again next time
        self._last = now
        self._thread = threading.Thread(target=self._send, args=(value,), daemon=True)
        self._thread.start()

    def _send(self, value: dict[str, Any]) -> None:
        try:
            assert self.send is not None
            self.send(self.key, value)
        except Exception as e:  # noqa: BLE001 - a failed report never fails training
            log.warning("progress report failed (will retry): %s", e)
            self._last = -float("inf")
        finally:
            self._busy.release()

    def flush(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
