"""One log line per shim request (method, path, status, latency, adapter, batch id),
and the webhook counter by adapter and answer.

A plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task per request on
the webhook hot path). The route says what only it knows, the adapter and the batch,
in `request.state`, which is this request's `scope["state"]`. The path is logged
without its query and no header is, so no secret reaches the log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warming.cms import ADAPTERS
from warming.ops import logs, metrics

# Probes and scrapes come every few seconds: their lines only at DEBUG.
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestLog:
    """Logs each HTTP request once it has been answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # an exception before the answer started

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path: str = scope["path"]
            state: dict[str, Any] = scope.get("state") or {}
            if path.startswith("/webhooks/"):
                adapter = state.get("adapter")
                metrics.webhook(adapter if adapter in ADAPTERS else "unknown", status)
            if path not in _QUIET or logs.requests.isEnabledFor(logging.DEBUG):
                logs.request(
                    scope["method"],
                    path,
                    status,
                    (time.perf_counter() - t0) * 1000,
                    adapter=state.get("adapter"),
                    batch_id=state.get("batch_id"),
                    quiet=path in _QUIET,
                )
