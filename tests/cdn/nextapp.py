"""A Python stand-in for a Next.js app with an on-demand revalidation route.

Pages render from a "CMS" and are kept in the app's Data Cache: after the CMS publishes,
the app keeps serving its cached render (as Next.js does) until the revalidate route is
called for the page's path or one of its tags. The route behaves like the Route Handler
README "Next.js" shows: a secret in a header or the query, a JSON body of `tags` and
`paths`, each tag at most 256 characters (revalidateTag's limit); 401 for a wrong secret,
400 for a body of another shape, 200 `{"revalidated": true, "now": ...}` otherwise.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROUTE = "/api/revalidate"


class NextApp:
    def __init__(
        self, secret: str, secret_in: str = "header", name: str = "x-revalidate-secret"
    ) -> None:
        self.secret, self.secret_in, self.secret_name = secret, secret_in, name
        self.cms: dict[str, int] = {}  # path -> the version the CMS has published
        self.tags: dict[str, list[str]] = {}
        self.data_cache: dict[str, int] = {}  # path -> the version the app renders
        self.revalidations: list[tuple[float, dict[str, Any]]] = []
        self.renders: list[tuple[float, str, int]] = []  # (when, path, version) per GET
        self.refused: list[str] = []
        self._lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with app._lock:
                    version = app.data_cache.setdefault(path, app.cms.get(path, 1))
                    app.renders.append((time.monotonic(), path, version))
                body = f"<h1>{path}</h1><p>version {version}</p>\n".encode()
                self._send(
                    200,
                    body,
                    {
                        "Content-Type": "text/html; charset=utf-8",
                        "Cache-Control": "public, max-age=3600",
                        "ETag": f'"{hashlib.sha256(body).hexdigest()[:16]}"',
                        "xkey": " ".join(app.tags.get(path, [])),
                    },
                )

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                status, answer = app.revalidate(self.path, dict(self.headers.items()), raw)
                self._send(
                    status, json.dumps(answer).encode(), {"Content-Type": "application/json"}
                )

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, path: str, tags: list[str] | None = None) -> int:
        """The CMS changes a page: its next version, which the app does not show yet."""
        with self._lock:
            self.cms[path] = self.cms.get(path, 1) + 1
            if tags is not None:
                self.tags[path] = tags
            return self.cms[path]

    def revalidate(
        self, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        if parts.path != ROUTE:
            return self._refuse(404, "no such route")
        lower = {k.lower(): v for k, v in headers.items()}
        if self.secret_in == "header":
            given = lower.get(self.secret_name.lower())
        else:
            given = (parse_qs(parts.query).get(self.secret_name) or [None])[0]
        if given != self.secret:
            return self._refuse(401, "Invalid secret")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._refuse(400, "not JSON")
        if not isinstance(body, dict) or set(body) - {"tags", "paths"}:
            return self._refuse(400, "expected {tags, paths}")
        tags, paths = body.get("tags", []), body.get("paths", [])
        if not all(
            isinstance(x, list) and all(isinstance(i, str) for i in x) for x in (tags, paths)
        ):
            return self._refuse(400, "tags and paths: lists of strings")
        if not tags and not paths:
            return self._refuse(400, "Missing path or tags")
        if any(len(t) > 256 for t in tags) or any(not p.startswith("/") for p in paths):
            return self._refuse(400, "a tag over 256 characters, or a path not starting with /")
        with self._lock:
            self.revalidations.append((time.monotonic(), body))
            for path in list(self.data_cache):
                if path in paths or set(tags) & set(self.tags.get(path, [])):
                    del self.data_cache[path]
        return 200, {"revalidated": True, "now": int(time.time() * 1000)}

    def _refuse(self, status: int, why: str) -> tuple[int, dict[str, Any]]:
        self.refused.append(f"{status} {why}")
        return status, {"message": why}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
