"""Test doubles of the vendors' purge APIs: small HTTP servers in threads.

Each double enforces its vendor's documented contract (auth header, method, path, JSON
body shape, per-request limits, a rate limit answered with 429 + Retry-After) and
answers a violation the way the vendor would (401/403/400/413/429). It also records
every violation, so a test can assert there was none: a purger that sends a wrong
header, a wrong body or too much at once fails its test either way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# What a vendor answers a request that breaks its contract (a 429 or a "not cached" 412
# is an answer, not a breach).
REFUSALS = {400, 401, 403, 404, 405, 413, 415}


@dataclass
class Seen:
    """One request the double received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    target: str = ""  # the request target as sent: path and query

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Bucket:
    """A token bucket like the vendors' purge limits: `size` at once, `rate` per second."""

    def __init__(self, size: float, rate: float) -> None:
        self.size, self.rate = size, rate
        self.tokens, self.t = size, time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: float = 1.0) -> float:
        """0 when `n` tokens were taken, else the seconds until they would be there."""
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.size, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= n:
                self.tokens -= n
                return 0.0
            return (n - self.tokens) / self.rate


class Double:
    """A threaded HTTP server; `handle` says what the vendor would answer."""

    def __init__(self, handle: Callable[[Seen], Answer]) -> None:
        self.handle = handle
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    self.path,
                )
                with double._lock:
                    double.seen.append(seen)
                try:
                    ans = double.handle(seen)
                except Exception as e:  # a bug in the double must show, not hang
                    ans = Answer(500, {"error": repr(e)})
                if ans.status in REFUSALS:
                    double.violate(f"{ans.status} for {seen.method} {seen.path}: {ans.body}")
                data = b"" if ans.body is None else json.dumps(ans.body).encode()
                self.send_response(ans.status)
                for k, v in ans.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PURGE = _any

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def violate(self, what: str) -> None:
        with self._lock:
            self.violations.append(what)

    def start(self) -> Double:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Double:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def json_body(seen: Seen) -> Any:
    """The request's JSON body, or None when it is missing, not JSON or not so labelled."""
    if not seen.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        return seen.json()
    except ValueError:
        return None
