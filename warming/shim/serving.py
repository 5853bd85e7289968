"""`warming serve`: the shim's processes, each with its own listening socket.

One shim process is bound to one core by the GIL, so a host runs one per core.
uvicorn's own `--workers` shares one listening socket between them, and whichever
process is in accept() when a burst of keep-alive connections arrives keeps them:
measured here with 32 paced connections, one process ran at 81% of a core while the
other idled at 12%, and latency followed the busy one (bench/RESULTS_WEBHOOKS.md).
Instead each process binds its own socket with SO_REUSEPORT, and the kernel spreads
connections over the sockets by their address hash, as nginx's `reuseport` does.

The parent only supervises: it restarts a child that dies, and on SIGTERM or SIGINT
stops them all (each finishes its requests in flight: uvicorn's graceful shutdown).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

from warming import defaults
from warming.errors import WarmingError
from warming.ops import logs, metrics
from warming.rediskit import check_server
from warming.runtime import Runtime

log = logging.getLogger(__name__)

# A child that dies this soon after its start, this many times in a row, cannot start
# (port taken, configuration broken): stop instead of restarting it forever.
_EARLY_EXIT_S = 5.0
_EARLY_EXITS = 3
_STOP_GRACE_S = 30.0
_BACKLOG = 2048


_UVICORN: dict[str, Any] = {"log_level": "warning", "access_log": False}


def serve(rt: Runtime, host: str, port: int, workers: int = 1) -> int:
    """Run the shim until interrupted; 1 if its processes cannot start."""
    import uvicorn

    from warming.shim.app import create_app

    rt.broker_url  # noqa: B018 - fail now, with exit 2, if broker_url is missing
    # Fail now, in one line, if Redis is unreachable or too old for the accept script: a
    # shim answering 503 (or 500) to every webhook would only look alive.
    check_server(rt.redis)
    logs.configure(rt.settings.log, default=defaults.LOG_LEVEL)
    # Before the app (its metrics) and any child: they all count into this directory.
    metrics.fresh_dir()
    app = create_app(rt)  # a bad [[routes]] template fails here, before any fork
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, **_UVICORN)
        return 0
    try:
        _listener(host, port).close()  # "address in use" is said once, here, not per child
    except OSError as e:
        raise WarmingError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return Supervisor(host, port, workers).run()


def _listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT (not yet listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says IPPROTO_TCP (uvicorn #3149: Nagle then delays answers ~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:
    """Get SIGTERM when the supervisor dies, even by SIGKILL (Linux; elsewhere a no-op).

    An orphan would go on serving old code on the port, beside the processes of the
    next `warming serve`: SO_REUSEPORT lets both bind.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _child(host: str, port: int, parent: int) -> None:
    """One shim process: its own socket, the app built from the environment."""
    import uvicorn

    from warming.shim.app import app_from_environment

    _die_with_parent()
    if os.getppid() != parent:  # it died before we asked
        return
    sock = _listener(host, port)
    sock.listen(_BACKLOG)
    config = uvicorn.Config(app_from_environment, factory=True, **_UVICORN)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Keeps `workers` shim processes running until told to stop."""

    def __init__(self, host: str, port: int, workers: int) -> None:
        self.host, self.port, self.workers = host, port, workers
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = False

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        procs = [self._start() for _ in range(self.workers)]
        started = [time.monotonic()] * self.workers
        early = [0] * self.workers
        print(
            f"warming serve: {self.workers} processes on {self.host}:{self.port} "
            f"(pids {' '.join(str(p.pid) for p in procs)})",
            file=sys.stderr,
            flush=True,
        )
        code = 0
        while not self._stopping:
            time.sleep(0.2)
            for i, p in enumerate(procs):
                if p.is_alive() or self._stopping:
                    continue
                early[i] = early[i] + 1 if time.monotonic() - started[i] < _EARLY_EXIT_S else 0
                print(
                    f"warming serve: process {p.pid} exited with {p.exitcode}; restarting it",
                    file=sys.stderr,
                    flush=True,
                )
                if early[i] >= _EARLY_EXITS:
                    print("warming serve: it keeps failing at start; stopping", file=sys.stderr)
                    self._stopping, code = True, 1
                    break
                procs[i], started[i] = self._start(), time.monotonic()
        self._terminate(procs)
        return code

    def _start(self) -> SpawnProcess:
        p = self._ctx.Process(target=_child, args=(self.host, self.port, os.getpid()))
        p.start()
        return p

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _terminate(self, procs: list[SpawnProcess]) -> None:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        end = time.monotonic() + _STOP_GRACE_S
        for p in procs:
            p.join(max(0.1, end - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)
