"""Helpers for integration tests: config files, worker processes, CLI runs, probes."""

from __future__ import annotations

import atexit
import html
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from warming.sandbox import Origin, World, start_world, varnish_available

CI = os.environ.get("CI") == "true"


def _test_redis() -> str:
    """The Redis this test process uses (a base URL without a database number).

    WARMING_TEST_REDIS points the suite at another server (two suites on one machine must
    not flush each other's databases). Under pytest-xdist, the first worker takes it and
    every other worker starts a private redis-server, stopped when the worker exits: each
    worker numbers its modules' databases from 1, so two on one server would share them.
    """
    shared = os.environ.get("WARMING_TEST_REDIS", "redis://127.0.0.1:6379")
    # A test's child process (another limiter, a CLI) inherits the worker's server.
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0" or _INHERITED in os.environ:
        return shared
    from warming.cli.embedded import embedded_redis

    server = embedded_redis()
    try:
        url = server.__enter__()
    except Exception:  # no redis-server on this machine: conftest falls back as usual
        return shared
    atexit.register(server.__exit__, None, None, None)
    base = url.rsplit("/", 1)[0]
    os.environ["WARMING_TEST_REDIS"] = base
    os.environ[_INHERITED] = "1"
    return base


_INHERITED = "WARMING_TEST_REDIS_PRIVATE"


TEST_REDIS = _test_redis()
SITE = "http://www.example.com"
ROOT = Path(__file__).resolve().parents[1]


def need(ok: bool, why: str) -> None:
    """Skip a test whose service is missing on a laptop; fail it under CI=true."""
    if not ok:
        if CI:
            pytest.fail(f"required under CI: {why}")
        pytest.skip(why)


def _toml_value(v: Any) -> str:
    return json.dumps(v)  # JSON strings, numbers, booleans and arrays are valid TOML


def warmed(r: Any, batch_id: str) -> int:
    """How many warm answers a running batch has recorded (its chunks count them)."""
    return int(r.hget(f"warming:batch:{batch_id}", "warmed") or 0)


def write_config(
    path: Path,
    broker_url: str | None,
    pops: list[dict[str, str]],
    **sections: dict[str, Any],
) -> Path:
    """A warming.toml with `pops`, a site on SITE, and any extra sections."""
    site = {"base_url": SITE, **sections.pop("site", {})}
    lines = [f"broker_url = {_toml_value(broker_url)}"] if broker_url else []
    lines += ["[site]"] + [f"{k} = {_toml_value(v)}" for k, v in site.items() if k != "variants"]
    for v in site.get("variants", []):
        hdrs = ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v["headers"].items())
        lines += [
            "[[site.variants]]",
            f"name = {_toml_value(v['name'])}",
            f"headers = {{ {hdrs} }}",
        ]
    sections.setdefault("limits", {"prefetch": "200/s", "purge": "200/s"})
    for name, values in sections.items():
        lines += [f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    for p in pops:
        lines += ["[[pops]]"] + [f"{k} = {_toml_value(v)}" for k, v in p.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def env_for(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMING_")}
    env["WARMING_CONFIG"] = str(config)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Worker:
    """A real `celery -A warming worker` process."""

    def __init__(
        self,
        config: Path,
        logfile: Path,
        concurrency: int = 8,
        pool: str = "threads",
        queues: str | None = None,
    ):
        self.logfile = logfile
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "warming",
                "worker",
                "-P",
                pool,
                "-c",
                str(concurrency),
                "-l",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
                "--logfile",
                str(logfile),
                *(["-Q", queues] if queues else []),
            ],
            env=env_for(config),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"worker exited with {self.proc.returncode}: {err[-2000:]}")
            if self.logfile.exists() and " ready." in self.logfile.read_text(errors="replace"):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker not ready in {timeout_s} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole worker: no chance to ack, requeue or clean up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()


def run_cli(config: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warming", *args],
        env=env_for(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def warm_json(config: Path, *args: str, timeout: float = 120.0) -> tuple[int, dict[str, Any]]:
    """`warming warm ... --wait --json`: exit code and the report."""
    res = run_cli(config, "warm", *args, "--wait", "--json", timeout=timeout)
    try:
        return res.returncode, json.loads(res.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"no JSON report (rc={res.returncode}): {res.stdout}\n{res.stderr}"
        ) from None


def wait_final(config: Path, batch_id: str, timeout_s: float) -> tuple[dict[str, Any], float]:
    """Poll `warming report` until the batch is done or failed: (report, seconds waited)."""
    t0 = time.monotonic()
    while True:
        rep: dict[str, Any] = json.loads(run_cli(config, "report", batch_id, "--json").stdout)
        if rep["state"] in ("done", "failed") or time.monotonic() - t0 > timeout_s:
            return rep, time.monotonic() - t0
        time.sleep(1)


def final_with_fresh_worker(
    config: Path, logfile: Path, batch_id: str, timeout_s: float, since: float
) -> tuple[dict[str, Any], float]:
    """Start a worker, wait for the batch to end, stop the worker: the final report and the
    seconds from `since` (a kill, a restart) to the end."""
    fresh = Worker(config, logfile)
    try:
        rep, _ = wait_final(config, batch_id, timeout_s)
        return rep, time.monotonic() - since
    finally:
        fresh.stop()


def probe(pop_url: str, url: str) -> requests.Response:
    """GET `url` at a PoP exactly as a visitor would reach it: the site's Host header."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = pop_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return requests.get(target, headers={"Host": parts.netloc}, timeout=10)


@contextmanager
def varnish_world(**kwargs: Any) -> Iterator[World]:
    """A sandbox world with real Varnish PoPs (skips locally without varnishd, fails in CI)."""
    need(varnish_available(), "varnishd is not installed (apt-get install varnish varnish-modules)")
    with start_world(**kwargs) as w:
        yield w


def sitemap_xml(locs: list[str], index: bool = False) -> bytes:
    """A sitemap (or, with `index`, a sitemap index) listing `locs`."""
    tag, item = ("sitemapindex", "sitemap") if index else ("urlset", "url")
    entries = "".join(f"<{item}><loc>{html.escape(loc)}</loc></{item}>" for loc in locs)
    ns = "http://www.sitemaps.org/schemas/sitemap/0.9"
    return f'<?xml version="1.0" encoding="UTF-8"?><{tag} xmlns="{ns}">{entries}</{tag}>'.encode()


class SitemapOrigin(Origin):
    """The sandbox origin, serving `documents` (path -> body) where set, pages elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.documents: dict[str, bytes] = {}

    def body_for(self, path: str) -> bytes:
        return self.documents.get(path) or super().body_for(path)
