"""A pure-Python caching PoP, for machines without varnishd.

It mirrors the observable behaviour of ``edge.vcl`` (see ``edge.py``) for GET,
HEAD and PURGE; other methods answer 501. Only ``Accept-Encoding`` (normalized
to gzip or nothing, as Varnish does) splits the cache; other ``Vary`` headers
are not honoured.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Self

from warming.sandbox.edge import (
    DEFAULT_TTL_S,
    HEALTH_PATH,
    PURGED_HEADER,
    PURGER,
    RETRY_AFTER_S,
    XKEY_PURGE_HEADER,
    SandboxError,
    chain_x_cache,
)
from warming.sandbox.quiet import QuietServer

# A backend that does not answer within this is down; Varnish says 503 then too.
BACKEND_TIMEOUT_S = 30.0
# Varnish's default: statuses cacheable without explicit permission (RFC 9111).
_CACHEABLE = frozenset({200, 203, 300, 301, 302, 304, 307, 308, 404, 410, 414})
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Response headers this edge computes itself rather than copying from the backend.
_OWN_RESPONSE = frozenset({"age", "content-length", "x-cache", "date"})
# Request headers never forwarded: the edge fetches whole objects for its cache.
_NOT_FORWARDED = _HOP_BY_HOP | {
    "content-length",
    "if-none-match",
    "if-modified-since",
    "accept-encoding",
}

_Key = tuple[str, str, str]


@dataclass
class _Object:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    # When the object left the first cache or origin (monotonic), as Varnish's t_origin.
    born: float
    ttl: float
    xkeys: frozenset[str]
    hits: int = 0

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def fresh(self, now: float) -> bool:
        return now - self.born < self.ttl


@dataclass
class _Bucket:
    """Token bucket of ``rate`` tokens refilled per second, as vsthrottle."""

    rate: int
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.tokens = float(self.rate)

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(float(self.rate), self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class _Server(QuietServer):
    edge: PyEdge


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, every keep-alive request
    # after the first waits for a delayed ACK (measured: 44 ms instead of 1 ms).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self.server.edge._serve(self, head=False)

    def do_HEAD(self) -> None:
        self.server.edge._serve(self, head=True)

    def do_PURGE(self) -> None:
        self.server.edge._purge(self)

    def log_message(self, format: str, *args: object) -> None:
        """Silent, like the origin."""


class PyEdge:
    """A threaded caching reverse proxy with VarnishEdge's constructor and attributes."""

    def __init__(
        self,
        name: str,
        backend: tuple[str, int],
        throttle_rps: int | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        self.name = name
        self.backend = backend
        self.throttle_rps = throttle_rps
        # Accepted for interchangeability with VarnishEdge; nothing is written to disk.
        self.workdir = workdir
        self._bucket = _Bucket(throttle_rps) if throttle_rps else None
        self._cache: dict[_Key, _Object] = {}
        self._lock = threading.Lock()
        self._fetching: dict[_Key, threading.Lock] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.startup_s: float | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise SandboxError(self.name, "not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.port if self._server is not None else "stopped"
        return f"PyEdge({self.name!r}, {where}, backend={self.backend})"

    def start(self) -> Self:
        if self._server is not None:
            return self
        began = time.monotonic()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.edge = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"pyedge-{self.name}",
            daemon=True,
        )
        self._thread.start()
        self.startup_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._cache.clear()

    # -- GET / HEAD ---------------------------------------------------------------

    def _serve(self, handler: _Handler, *, head: bool) -> None:
        _drain(handler)
        if handler.path == HEALTH_PATH:
            _synth(handler, 200, "OK")
            return
        if not head and self._bucket is not None and not self._bucket.take():
            _synth(handler, 429, "Too Many Requests", {"Retry-After": str(RETRY_AFTER_S)})
            return
        ae = "gzip" if "gzip" in handler.headers.get("Accept-Encoding", "") else ""
        key = (handler.headers.get("Host", "").lower(), handler.path, ae)
        obj, hit = self._lookup(key), True
        if obj is None:
            # Coalesce concurrent misses like Varnish's waiting list: one fetch per object.
            with self._fetch_lock(key):
                obj = self._lookup(key)
                if obj is None:
                    hit = False
                    obj = self._fetch(handler, key)
        self._deliver(handler, obj, hit=hit, head=head)

    def _fetch_lock(self, key: _Key) -> threading.Lock:
        with self._lock:
            return self._fetching.setdefault(key, threading.Lock())

    def _lookup(self, key: _Key) -> _Object | None:
        with self._lock:
            obj = self._cache.get(key)
            if obj is None:
                return None
            if not obj.fresh(time.monotonic()):
                del self._cache[key]
                return None
            obj.hits += 1
            return obj

    def _fetch(self, handler: _Handler, key: _Key) -> _Object:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _NOT_FORWARDED}
        if key[2]:
            headers["Accept-Encoding"] = key[2]
        client = handler.client_address[0]
        forwarded = handler.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
        conn = http.client.HTTPConnection(*self.backend, timeout=BACKEND_TIMEOUT_S)
        try:
            conn.request("GET", handler.path, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            return _error_object()
        finally:
            conn.close()
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        upstream_age = _int(response.getheader("Age"))
        obj = _Object(
            status=response.status,
            reason=response.reason,
            headers=[(k, v) for k, v in kept if k.lower() not in _OWN_RESPONSE - {"x-cache"}],
            body=body,
            born=time.monotonic() - upstream_age,
            ttl=_ttl(response),
            xkeys=frozenset((response.getheader("xkey") or "").split()),
        )
        if obj.ttl > upstream_age and _storable(response):
            with self._lock:
                self._cache[key] = obj
        return obj

    def _deliver(self, handler: _Handler, obj: _Object, *, hit: bool, head: bool) -> None:
        etag = obj.header("ETag")
        not_modified = (
            obj.status == 200 and etag is not None and handler.headers.get("If-None-Match") == etag
        )
        handler.send_response(304 if not_modified else obj.status, obj.reason)
        for name, value in obj.headers:
            if name.lower() not in _OWN_RESPONSE:
                handler.send_header(name, value)
        handler.send_header("Age", str(max(0, int(time.monotonic() - obj.born))))
        handler.send_header("X-Cache", chain_x_cache(obj.header("X-Cache"), hit))
        if not not_modified:
            handler.send_header("Content-Length", str(len(obj.body)))
        handler.end_headers()
        if not head and not not_modified:
            handler.wfile.write(obj.body)

    # -- PURGE --------------------------------------------------------------------

    def _purge(self, handler: _Handler) -> None:
        _drain(handler)
        if handler.client_address[0] != PURGER:
            _synth(handler, 403, "Forbidden")
            return
        keys = set(handler.headers.get(XKEY_PURGE_HEADER, "").split())
        with self._lock:
            if keys:
                gone = [k for k, obj in self._cache.items() if obj.xkeys & keys]
            else:
                host = handler.headers.get("Host", "").lower()
                gone = [k for k in self._cache if k[:2] == (host, handler.path)]
            for key in gone:
                del self._cache[key]
        if keys or handler.headers.get(XKEY_PURGE_HEADER) is not None:
            count = str(len(gone))
            _synth(handler, 200, "Purged", {PURGED_HEADER: count}, body=f"Purged {count}")
        else:
            _synth(handler, 200, "Purged")


def _ttl(response: http.client.HTTPResponse) -> float:
    """Freshness lifetime in seconds from Cache-Control (s-maxage wins), 0 if forbidden."""
    directives: dict[str, str] = {}
    for part in (response.getheader("Cache-Control") or "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.lower()] = value.strip('"')
    if {"no-store", "no-cache", "private"} & directives.keys():
        return 0.0
    for name in ("s-maxage", "max-age"):
        if name in directives:
            return float(_int(directives[name]))
    return float(DEFAULT_TTL_S)


def _storable(response: http.client.HTTPResponse) -> bool:
    return (
        response.status in _CACHEABLE
        and response.getheader("Set-Cookie") is None
        and (response.getheader("Vary") or "").strip() != "*"
    )


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _error_object() -> _Object:
    reason = "Backend fetch failed"
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    return _Object(503, reason, headers, f"{reason}\n".encode(), time.monotonic(), 0, frozenset())


def _drain(handler: _Handler) -> None:
    """Read a request body nobody wants, so the keep-alive connection stays in sync."""
    length = _int(handler.headers.get("Content-Length"))
    if length:
        handler.rfile.read(length)


def _synth(
    handler: _Handler,
    status: int,
    reason: str,
    headers: dict[str, str] | None = None,
    *,
    body: str | None = None,
) -> None:
    data = f"{body if body is not None else reason}\n".encode()
    handler.send_response(status, reason)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)
