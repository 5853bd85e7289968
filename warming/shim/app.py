"""The webhook shim: signed CMS webhooks in, purge-then-warm batches out.

    POST /webhooks/{adapter}   202 {"batch_id", "status_url"}   (200 for a redelivery)
    GET  /batches              recent batches (?state=, ?limit=)
    GET  /batches/{id}         the report, 404 if unknown; a page for Accept: text/html
    GET  /metrics              Prometheus (every shim process, and the cluster's state)
    GET  /healthz              the process is up
    GET  /readyz               Redis (broker) is reachable

Order of checks: size (413) → adapter (404) → signature, under that adapter's own
secrets (401) → body (400/422) → URL filter → one Lua script that checks the
delivery's replay key (a webhook-id, or a body digest: 200), claims the URLs for
coalescing, records the batch and queues its purge (202), all or nothing (503 when
Redis is unreachable: nothing was written). Nothing touches Redis before the request
is fully authenticated and understood.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from redis.commands.core import AsyncScript
from starlette.concurrency import run_in_threadpool

from warming import __version__, defaults, lua
from warming import keys as K
from warming.batch import listing
from warming.batch.publish import Selection, WarmRequest, new_batch, new_batch_id, select
from warming.batch.report import KEEP_NOT_HIT, json_chunks
from warming.batch.report import build as build_report
from warming.batch.store import State
from warming.broker import tasknames as T
from warming.cms import ADAPTERS, Inbound, adapter_for
from warming.cms.routes import check_routes, expand, priority_of
from warming.errors import BrokerUnavailable, WebhookError
from warming.ops import logs, metrics, page
from warming.rediskit import async_client, text, unreachable
from warming.runtime import Runtime, install, use
from warming.settings import load_settings
from warming.shim.auth import authorized, wants_html
from warming.shim.auth import unauthorized as _unauthorized
from warming.shim.requestlog import RequestLog
from warming.sources.filter import Dropped
from warming.sources.tagindex import urls_for_async
from warming.stages import observe

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
        500: "Redis refused warming's script (a bug or an unsupported server): nothing enqueued",
        503: "broker unreachable: retry later, nothing was enqueued",
    }.items()
}


_SCRIPT_REFUSED = "Redis refused warming's accept script (see the shim's log); nothing was enqueued"


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@dataclass
class Webhook:
    """An authenticated, understood webhook: what it asks to warm, and who sent it."""

    adapter: str
    replay: str | None  # what a redelivery is recognised by (Adapter.replay_key)
    replay_ttl_s: int
    req: WarmRequest
    dropped: list[Dropped]  # route templates that rendered to nothing usable

    @property
    def idempotency_key(self) -> str | None:
        if not self.replay:
            return None
        return K.WEBHOOK_ID.format(id=f"{self.adapter}:{self.replay}")


class Shim:
    """The request handling, free of HTTP framework details.

    The common case costs one Redis round trip, on the event loop: the accept script
    checks the webhook-id, claims the URLs for coalescing, records the batch and queues
    its purge. Only a webhook that coalesces with a running batch takes a second step
    (in a thread: it may open a trailing batch).
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # Each adapter its own list: a Strapi token must not pass as a generic signature.
        self.secrets = {
            name: [s.get_secret_value() for s in rt.settings.webhook.secrets_for(name)]
            for name in ADAPTERS
        }
        self.coalescer = rt.coalescer
        self._record = rt.redis.register_script(lua.source("create", "record"))
        # Load Celery's app now: a configuration mistake fails at start, and the first
        # webhook does not pay ~60 ms of imports.
        rt.messages.build(T.PURGE.name, ("warm-up",))
        self._client: tuple[asyncio.AbstractEventLoop, aioredis.Redis, AsyncScript] | None = None

    def authenticate(
        self, adapter_name: str, path: str, headers: dict[str, str], body: bytes
    ) -> Webhook:
        """Verify and parse a request (WebhookError: 401, 400, 404, 422); no I/O."""
        settings = self.rt.settings
        adapter = adapter_for(adapter_name)
        inbound = Inbound(method="POST", path=path, headers=headers, body=body)
        tolerance_s = settings.webhook.tolerance_s
        adapter.verify(inbound, self.secrets[adapter.name], tolerance_s, time.time())
        change = adapter.parse(inbound)
        paths, tags, dropped_routes = expand(change, settings.routes)
        delivery = adapter.delivery_id(inbound)
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
            priority=priority_of(change, settings.routes),
        )
        dropped = [Dropped(d["url"], d["reason"]) for d in dropped_routes]
        replay_ttl_s = adapter.replay_ttl_s(tolerance_s)
        return Webhook(adapter_name, adapter.replay_key(inbound), replay_ttl_s, req, dropped)

    async def handle(
        self, adapter_name: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str]]:
        """Authenticate, then accept: (200 redelivery | 202 accepted, the answer's JSON)."""
        # Checking and filtering cost ~50 µs a URL: a big payload is handled in a thread,
        # so the event loop keeps answering everyone else meanwhile.
        big = len(body) > defaults.WEBHOOK_INLINE_BYTES
        auth = partial(self.authenticate, adapter_name, path, headers, body)
        hook = await run_in_threadpool(auth) if big else auth()
        r, accept = self._redis()
        batch_id = new_batch_id()
        try:
            tags = [t.strip() for t in hook.req.tags if t.strip()]
            tag_urls = await urls_for_async(r, tags) if tags else []
            prepare = partial(self._accept_args, hook, batch_id, tag_urls)
            sel, args = await run_in_threadpool(prepare) if big else prepare()
            got = await accept(args=args)
            if got[0] == 2:
                got = await run_in_threadpool(self._coalesced, hook, batch_id, sel, got[1], got[2])
        except redis.RedisError as e:
            if not unreachable(e):
                # Not the broker's absence but a script Redis refused: a bug, or a server
                # it does not run on. A retry would fail alike, so it is not a 503. Each
                # script checks its arguments before its first write: nothing was written.
                log.error("webhook refused with 500: Redis refused a script: %s", e)
                raise WebhookError(500, _SCRIPT_REFUSED) from None
            # Each script is atomic: failing, it did nothing (or all, if only its answer
            # was lost; the CMS's retry then gets the first batch's id).
            raise BrokerUnavailable(f"Redis is unreachable: {type(e).__name__}") from None
        if got[0] == 0:
            batch_id = text(got[1]) or batch_id
        answer = {"batch_id": batch_id, "status_url": f"/batches/{batch_id}"}
        return (200 if got[0] == 0 else 202), answer

    def _accept_args(
        self, hook: Webhook, batch_id: str, tag_urls: list[str]
    ) -> tuple[Selection, list[str | int]]:
        """The filtered selection, and accept.lua's arguments for it."""
        sel = select(self.rt.url_filter, None, hook.req, tag_urls)
        sel = Selection(sel.urls, sel.dropped + hook.dropped, sel.tags)
        args = [
            hook.idempotency_key or "",
            hook.replay_ttl_s,
            *self.coalescer.claim_args(batch_id, sel.urls),
            *self._record_args(hook, batch_id, sel, {}),
        ]
        return sel, args

    def _record_args(
        self, hook: Webhook, batch_id: str, sel: Selection, carried: dict[str, str]
    ) -> list[str | int]:
        """create.lua's arguments for this webhook's batch of `sel`'s URLs."""
        new = new_batch(
            self.rt.settings,
            self.rt.messages,
            hook.req,
            sel,
            batch_id,
            carried,
            discoverer=self.rt.discoverer,
        )
        return self.rt.store.create_args(new)

    def _coalesced(
        self, hook: Webhook, batch_id: str, sel: Selection, lead: list[Any], follow: list[Any]
    ) -> list[Any]:
        """Settle the URLs other batches lead (carried, or a trailing run), then record.

        The webhook-id is taken only with the record, in one script: if anything before
        fails, the CMS's retry starts afresh and finds these URLs claimed, which routes
        them to a trailing run, queued in the same step that creates it.
        """
        claim = self.coalescer.resolve(batch_id, lead, follow)
        mine = Selection(claim.lead, sel.dropped, sel.tags)
        args = [
            hook.idempotency_key or "",
            hook.replay_ttl_s,
            *self._record_args(hook, batch_id, mine, claim.carried),
        ]
        return list(self._record(args=args))

    def _redis(self) -> tuple[aioredis.Redis, AsyncScript]:
        """This event loop's asyncio client (a client must not outlive its loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            client = async_client(self.rt.broker_url, self.rt.settings.master_name)
            accept = client.register_script(lua.source("claim", "create", "accept"))
            self._client = (loop, client, accept)
        return self._client[1], self._client[2]

    async def close(self) -> None:
        if self._client is not None:
            await self._client[1].aclose()
            self._client = None


def create_app(rt: Runtime) -> FastAPI:
    """The ASGI app for `rt`'s settings (installed as this process's runtime)."""
    check_routes(rt.settings.routes)  # a bad template fails at start, not on a webhook
    install(rt)
    shim = Shim(rt)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await shim.close()

    app = FastAPI(
        lifespan=lifespan,
        title="warming webhook shim",
        version=__version__,
        description="Signed CMS webhooks become purge-then-warm batches.",
    )
    app.state.shim = shim
    app.add_middleware(RequestLog)
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
        request.state.adapter = adapter
        try:
            status, answer = await shim.handle(adapter, request.url.path, headers, bytes(body))
        except WebhookError as e:
            return _problem(e.status, e.message)
        except BrokerUnavailable:
            log.warning("webhook refused with 503: broker unreachable")
            return _problem(503, "broker unreachable; nothing was enqueued, retry later")
        request.state.batch_id = answer["batch_id"]
        return JSONResponse(answer, status_code=status)

    report_token = rt.settings.report.token

    @app.get("/batches", responses={401: {"model": Problem}})
    def batches(
        request: Request,
        state: State | None = None,
        limit: int = Query(defaults.BATCHES_LIST, ge=1, le=defaults.BATCHES_MAX),
    ) -> Response:
        """Recent batches, newest first, in `state` if given (HTML for a browser)."""
        if not authorized(request, report_token):
            return _unauthorized()
        try:
            items = listing.recent(rt.store, state, limit)
        except redis.RedisError:
            return _problem(503, "broker unreachable")
        if wants_html(request):
            return HTMLResponse(page.render_list(items))
        return JSONResponse({"batches": items})

    @app.get("/batches/{batch_id}", responses={401: {"model": Problem}, 404: {"model": Problem}})
    def batch(batch_id: str, request: Request) -> Response:
        """The batch's report (SPEC: 'The batch report'); a page for `Accept: text/html`."""
        if not authorized(request, report_token):
            return _unauthorized()
        try:
            if wants_html(request):
                # The page's matrix shows PAGE_MAX_ROWS rows: a big batch's summary (the
                # pairs not a HIT first) is what it can show, without reading every pair.
                big = rt.store.plan(batch_id).total > defaults.PAGE_MAX_ROWS
                report = build_report(rt.store, batch_id, keep=KEEP_NOT_HIT if big else None)
                if report is None:
                    raise KeyError(batch_id)
                return HTMLResponse(page.render(report))
            pieces = json_chunks(rt.store, batch_id)  # every result, streamed
        except KeyError:
            return _problem(404, "unknown batch (or its report expired)")
        except redis.RedisError:
            return _problem(503, "broker unreachable")
        if pieces is None:
            return _problem(404, "unknown batch (or its report expired)")
        return StreamingResponse(pieces, media_type="application/json")

    metrics_token = rt.settings.metrics.token
    scrape = metrics.registry(lambda: observe.live(rt))

    @app.get("/metrics", include_in_schema=False)
    def prometheus(request: Request) -> Response:
        """Every shim process's counters, and the cluster's state (Prometheus text)."""
        if not authorized(request, metrics_token):
            return _unauthorized()
        body, content_type = metrics.exposition(scrape)
        return Response(body, media_type=content_type)

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
    """The app factory each `warming serve --workers N` process calls (warming.shim.serving)."""
    settings = load_settings()
    logs.configure(settings.log, default=defaults.LOG_LEVEL)
    return create_app(use(settings))
