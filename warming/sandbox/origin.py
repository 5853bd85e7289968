"""A demo origin: any path is an HTML page carrying its path and content version."""

from __future__ import annotations

import hashlib
import html
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Self
from urllib.parse import urlsplit

from warming.sandbox.quiet import QuietServer

# Long enough that nothing expires during a demo or a test run.
CACHE_CONTROL = "public, max-age=3600"
# Failures must not be cached by the edges, or one injected 500 would stick.
FAILURE_CACHE_CONTROL = "no-store"
# Carried by every page, so one purge by this key empties a whole site.
ALL_KEY = "all"


def path_key(path: str) -> str:
    """The surrogate key of one path: ``/blog/x`` -> ``path-blog-x``, ``/`` -> ``path-index``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", urlsplit(path).path).strip("-").lower()
    return f"path-{slug or 'index'}"


@dataclass
class _Failure:
    prefix: str
    status: int
    remaining: int | None
    retry_after: int | None
    cacheable: bool = False


class _Server(QuietServer):
    origin: Origin


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, every keep-alive request
    # after the first waits for a delayed ACK (measured: 44 ms instead of 1 ms).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self.server.origin._answer(self, body_wanted=True)

    def do_HEAD(self) -> None:
        self.server.origin._answer(self, body_wanted=False)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: tests and the demo read counters, not access logs."""


class Origin:
    """A threaded HTTP/1.1 origin on 127.0.0.1 with a random port.

    Pages send ``Cache-Control: public, max-age=3600``, an ``ETag`` of the body,
    ``Vary: Accept-Encoding`` and their surrogate keys (``all``, ``path-<slug>``
    and any set with :meth:`set_keys`) in both ``Surrogate-Key`` and ``xkey``.
    Request counts are kept per request target (path and query string).
    """

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.hosts_seen: set[str] = set()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._version = 1
        self._bumps: Counter[str] = Counter()
        self._keys: dict[str, list[str]] = {}
        self._cache_control: dict[str, str] = {}
        self._failures: list[_Failure] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.origin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"origin-{self.port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("origin is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- content ------------------------------------------------------------------

    def set_version(self, n: int) -> None:
        """Set the content version of every page (per-path bumps are forgotten)."""
        with self._lock:
            self._version = n
            self._bumps.clear()

    def bump(self, path: str | None = None) -> None:
        """Change the content of every page, or of one request target."""
        with self._lock:
            if path is None:
                self._version += 1
            else:
                self._bumps[path] += 1

    def version(self, path: str | None = None) -> int:
        with self._lock:
            return self._version + (self._bumps[path] if path is not None else 0)

    def set_keys(self, path: str, keys: list[str]) -> None:
        """Extra surrogate keys for one request target, on top of the default ones."""
        with self._lock:
            self._keys[path] = list(keys)

    def set_cache_control(self, path: str, value: str) -> None:
        """The Cache-Control one request target's page is sent with (default CACHE_CONTROL)."""
        with self._lock:
            self._cache_control[path] = value

    def keys_for(self, path: str) -> list[str]:
        with self._lock:
            extra = self._keys.get(path, [])
        return [ALL_KEY, path_key(path), *(k for k in extra if k not in (ALL_KEY, path_key(path)))]

    def body_for(self, path: str) -> bytes:
        """The page the origin serves for this request target right now."""
        page = html.escape(path)
        return (
            f"<!doctype html><html><head><title>{page}</title></head>"
            f"<body><h1>{page}</h1><p>version {self.version(path)}</p></body></html>\n"
        ).encode()

    # -- failures -----------------------------------------------------------------

    def fail(
        self,
        path_or_prefix: str,
        status: int,
        times: int | None = None,
        *,
        retry_after: int | None = None,
        cacheable: bool = False,
    ) -> None:
        """Answer ``status`` for targets starting with the prefix (the next ``times`` only).

        With ``cacheable`` the answer says the edges may cache it (a cached error page).
        """
        with self._lock:
            self._failures.append(_Failure(path_or_prefix, status, times, retry_after, cacheable))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if path.startswith(failure.prefix) and failure.remaining != 0:
                    if failure.remaining is not None:
                        failure.remaining -= 1
                    return failure
        return None

    # -- counters -----------------------------------------------------------------

    def requests(self, path: str | None = None) -> int:
        """Requests received in total, or for one request target."""
        with self._lock:
            return self._counts.total() if path is None else self._counts[path]

    @property
    def counts(self) -> dict[str, int]:
        """A snapshot of the per-target request counters."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self.hosts_seen.clear()

    # -- serving ------------------------------------------------------------------

    def _answer(self, handler: _Handler, *, body_wanted: bool) -> None:
        path = handler.path
        with self._lock:
            self._counts[path] += 1
            self.hosts_seen.add(handler.headers.get("Host", ""))
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        failure = self._take_failure(path)
        if failure is not None:
            body = f"injected failure {failure.status}\n".encode()
            cc = CACHE_CONTROL if failure.cacheable else FAILURE_CACHE_CONTROL
            headers = {"Content-Type": "text/plain", "Cache-Control": cc}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            _send(handler, failure.status, headers, body if body_wanted else b"", len(body))
            return
        body = self.body_for(path)
        etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
        keys = " ".join(self.keys_for(path))
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": self._cache_control.get(path, CACHE_CONTROL),
            "ETag": etag,
            "Vary": "Accept-Encoding",
            "Surrogate-Key": keys,
            "xkey": keys,
        }
        if handler.headers.get("If-None-Match") == etag:
            _send(handler, 304, headers, b"", None)
            return
        _send(handler, 200, headers, body if body_wanted else b"", len(body))


def _send(
    handler: _Handler, status: int, headers: dict[str, str], body: bytes, length: int | None
) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()
    if body:
        handler.wfile.write(body)
