"""The webhook shim: signed CMS webhooks in, purge-then-warm batches out.

    POST /webhooks/{adapter}   202 {"batch_id", "status_url"}   (200 for a redelivery)
    GET  /batches/{id}         the report, 404 if unknown
    GET  /healthz              the process is up
    GET  /readyz               Redis (broker) is reachable

Order of checks: size (413) → adapter (404) → signature (401) → body (400/422) →
idempotency (200) → filter, coalesce, publish (202, or 503 with nothing enqueued).
Nothing is published before the request is fully authenticated and understood.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from warming import __version__, defaults
from warming import constants as K
from warming.cms import Inbound, adapter_for
from warming.coalesce import Coalescer
from warming.errors import BrokerUnavailable, WebhookError
from warming.publish import Selection, WarmRequest, new_batch_id, publish, select
from warming.routes import check_routes, expand, priority_of
from warming.runtime import Runtime, install, use
from warming.settings import load_settings
from warming.urls import Dropped

log = logging.getLogger(__name__)


class Accepted(BaseModel):
    batch_id: str
    status_url: str


class Problem(BaseModel):
    error: str


class GenericPayload(BaseModel):
    """The `generic` adapter's body; CMS adapters take their vendor's payload."""

    urls: list[str] = []
    paths: list[str] = []
    tags: list[str] = []


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": what}
    for code, what in {
        200: "a redelivery: the first delivery's batch, nothing enqueued",
        400: "body is not JSON",
        401: "bad or missing signature, or timestamp outside the tolerance",
        404: "unknown adapter",
        413: "body over webhook.max_body_bytes",
        422: "body has the wrong shape",
        503: "broker unreachable: retry later, nothing was enqueued",
    }.items()
}


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Shim:
    """The request handling, free of HTTP framework details."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.secrets = [s.get_secret_value() for s in rt.settings.webhook.secrets]
        self.coalescer = Coalescer(rt.redis, rt.settings.webhook.coalesce_window_s)

    def handle(
        self, adapter_name: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str]]:
        settings = self.rt.settings
        adapter = adapter_for(adapter_name)
        inbound = Inbound(method="POST", path=path, headers=headers, body=body)
        adapter.verify(inbound, self.secrets, settings.webhook.tolerance_s, time.time())
        change = adapter.parse(inbound)
        paths, tags, dropped_routes = expand(change, settings.routes)
        delivery = adapter.delivery_id(inbound)
        batch_id = new_batch_id()
        idem_key = K.WEBHOOK_ID.format(id=f"{adapter_name}:{delivery}") if delivery else None
        try:
            if idem_key:
                first = self.rt.redis.set(
                    idem_key, batch_id, nx=True, get=True, ex=defaults.WEBHOOK_ID_TTL_S
                )
                if first is not None:
                    bid = first.decode() if isinstance(first, bytes) else str(first)
                    return 200, {"batch_id": bid, "status_url": f"/batches/{bid}"}
            req = WarmRequest(
                urls=change.urls,
                paths=paths,
                tags=tags,
                trigger={
                    "source": f"webhook:{adapter_name}",
                    "webhook_id": delivery,
                    "event": change.event,
                    "content_type": change.content_type,
                },
                priority="bulk" if priority_of(change, settings.routes) == "bulk" else "high",
            )
            sel = select(self.rt, req)
            claim = self.coalescer.claim(batch_id, sel.urls)
            req.carried = claim.carried
            dropped = sel.dropped + [Dropped(d["url"], d["reason"]) for d in dropped_routes]
            publish(self.rt, req, batch_id, Selection(claim.lead, dropped, sel.tags))
            if claim.new_trailing:
                from warming.tasks import flush_trailing

                for trailing, (leader, in_s) in claim.new_trailing.items():
                    flush_trailing.apply_async((trailing, leader), countdown=in_s)
        except (BrokerUnavailable, redis.RedisError) as e:
            if idem_key:
                self._release(idem_key, batch_id)
            raise BrokerUnavailable(str(e)) from None
        return 202, {"batch_id": batch_id, "status_url": f"/batches/{batch_id}"}

    def _release(self, key: str, batch_id: str) -> None:
        """Forget a webhook-id we failed to act on, so the CMS's retry is not a 'duplicate'."""
        try:
            if self.rt.redis.get(key) in (batch_id, batch_id.encode()):
                self.rt.redis.delete(key)
        except redis.RedisError:
            pass  # the key expires; until then a retry would be answered 200 wrongly


def create_app(rt: Runtime) -> FastAPI:
    """The ASGI app for `rt`'s settings (installed as this process's runtime)."""
    check_routes(rt.settings.routes)  # a bad template fails at start, not on a webhook
    install(rt)
    app = FastAPI(
        title="warming webhook shim",
        version=__version__,
        description="Signed CMS webhooks become purge-then-warm batches.",
    )
    shim = Shim(rt)
    max_body = rt.settings.webhook.max_body_bytes

    @app.post(
        "/webhooks/{adapter}",
        status_code=202,
        response_model=Accepted,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": GenericPayload.model_json_schema()}},
            }
        },
    )
    async def webhook(adapter: str, request: Request) -> JSONResponse:
        """Authenticate, parse, filter and publish one CMS webhook."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            return _problem(413, f"body over {max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return _problem(413, f"body over {max_body} bytes")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            status, answer = await run_in_threadpool(
                shim.handle, adapter, request.url.path, headers, bytes(body)
            )
        except WebhookError as e:
            return _problem(e.status, e.message)
        except BrokerUnavailable:
            log.warning("webhook refused with 503: broker unreachable")
            return _problem(503, "broker unreachable; nothing was enqueued, retry later")
        return JSONResponse(answer, status_code=status)

    @app.get("/batches/{batch_id}", responses={404: {"model": Problem}})
    def batch(batch_id: str) -> JSONResponse:
        """The batch's report (SPEC: 'The batch report')."""
        try:
            report = rt.store.report(batch_id)
        except redis.RedisError:
            return _problem(503, "broker unreachable")
        if report is None:
            return _problem(404, "unknown batch (or its report expired)")
        return JSONResponse(report)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": Problem}})
    def readyz() -> JSONResponse:
        try:
            rt.redis.ping()
        except redis.RedisError:
            return _problem(503, "broker unreachable")
        return JSONResponse({"status": "ready"})

    return app


def app_from_environment() -> FastAPI:
    """The app factory uvicorn's worker processes call (`--workers` > 1)."""
    return create_app(use(load_settings()))


def serve(rt: Runtime, host: str, port: int, workers: int = 1) -> int:
    """`warming serve`: run the shim under uvicorn until interrupted.

    One process is bound to one core by the GIL (about 300 webhooks/s here); several
    processes share the port. uvloop + httptools (uvicorn[standard]) cut the HTTP cost
    and keep TCP_NODELAY in multi-process mode (uvicorn #3149).
    """
    import uvicorn

    rt.broker_url  # noqa: B018 - fail now, with exit 2, if broker_url is missing
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
    }
    if workers > 1:
        uvicorn.run("warming.shim:app_from_environment", factory=True, workers=workers, **common)
    else:
        uvicorn.run(create_app(rt), **common)
    return 0
