"""A real Prometheus (Debian's `prometheus`) scraping given targets, and its query API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import need

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    r = requests.get(url, headers=headers or {}, timeout=5)
    r.raise_for_status()
    return samples(r.text)


class Prometheus:
    def __init__(self, port: int) -> None:
        self.api = f"http://127.0.0.1:{port}/api/v1"

    def query(self, q: str) -> list[dict[str, Any]]:
        try:
            r = requests.get(f"{self.api}/query", params={"query": q}, timeout=5).json()
        except requests.ConnectionError:
            return []
        return r["data"]["result"] if r.get("status") == "success" else []

    def answer(self, q: str) -> dict[str, Any]:
        """The API's whole answer: {"status": "success", ...} or an error saying why."""
        r = requests.get(f"{self.api}/query", params={"query": q}, timeout=5)
        return dict(r.json())

    def wait_for(self, q: str, timeout_s: float = 30) -> list[dict[str, Any]]:
        """The query's result once it is not empty (Prometheus scraped), else []."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            got = self.query(q)
            if got:
                return got
            time.sleep(0.5)
        return []


@contextmanager
def prometheus(tmp: Path, jobs: dict[str, str], token: str | None = None) -> Iterator[Prometheus]:
    """Prometheus scraping each job's host:port every second (with `token` as a bearer)."""
    binary = shutil.which("prometheus")
    need(binary is not None, "prometheus is not installed (apt-get install prometheus)")
    assert binary
    job: dict[str, Any] = {}
    if token:
        (tmp / "token").write_text(token)
        job["authorization"] = {"credentials_file": str(tmp / "token")}
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [target]}], **job}
            for name, target in jobs.items()
        ],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield Prometheus(port)
    finally:
        proc.terminate()
        proc.wait(20)
