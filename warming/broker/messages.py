"""Celery task messages that our own Lua scripts push, next to the writes they belong with.

Recording a batch and queueing its first task must be one step: a webhook that was
answered 202 must have its purge queued, and one answered 503 must leave nothing
behind. `apply_async` cannot be part of a Redis transaction, so for those messages
the message is built here and pushed by the script that records the batch.

Nothing of the wire format is ours: Celery builds the task message (protocol 2,
`app.amqp.as_task_v2`: headers, body) and kombu serializes it; what is added is
kombu's Redis envelope, the JSON object kombu's Redis transport LPUSHes onto the
queue's list and its consumers BRPOP. A contract test compares every field with what
`apply_async` pushes, so an upgrade that changes the format fails a test, not a
production webhook. The bonus is speed: one round trip instead of a kombu publish
(0.7-1.0 ms of CPU per message, measured in bench/RESULTS_WEBHOOKS.md).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu.serialization import dumps

from warming.broker.app import app
from warming.broker.tasknames import TASKS


@dataclass(frozen=True)
class Message:
    """One task message, ready to LPUSH."""

    queue: str  # the Redis list kombu's workers BRPOP (global_keyprefix included)
    payload: str
    task_id: str


@dataclass(frozen=True)
class _Route:
    """What `apply_async` looks up in the app's configuration, per task, looked up once."""

    queue: str
    time_limit: float | None
    soft_time_limit: float | None
    ignore_result: bool


class Messages:
    """Builds task messages for one Celery app, routed as `apply_async` would route them."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.serializer = app.conf.task_serializer
        self.repr_max = app.amqp.argsrepr_maxsize
        self.origin = anon_nodename()
        self._routes: dict[str, _Route] = {}

    def build(
        self,
        name: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
    ) -> Message:
        route = self._route(name)
        task_id = str(uuid.uuid4())
        kwargs = kwargs or {}
        argsrepr, kwargsrepr = repr(args), repr(kwargs)
        msg = self.app.amqp.as_task_v2(
            task_id,
            name,
            args=args,
            kwargs=kwargs,
            countdown=countdown,
            time_limit=route.time_limit,
            soft_time_limit=route.soft_time_limit,
            ignore_result=route.ignore_result,
            reply_to=self.app.thread_oid,
            origin=self.origin,
            # Celery's saferepr gives the same for our short arguments, 30 times slower.
            argsrepr=argsrepr if len(argsrepr) <= self.repr_max else None,
            kwargsrepr=kwargsrepr if len(kwargsrepr) <= self.repr_max else None,
        )
        ctype, encoding, body = dumps(msg.body, serializer=self.serializer)  # type: ignore[no-untyped-call]
        raw = body if isinstance(body, bytes) else body.encode(encoding or "utf-8")
        envelope = {
            "body": base64.b64encode(raw).decode("ascii"),
            "content-encoding": encoding,
            "content-type": ctype,
            "headers": msg.headers,
            "properties": {
                **msg.properties,
                "delivery_mode": 2,  # persistent
                "delivery_info": {"exchange": "", "routing_key": route.queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        return Message(self.list_name(route.queue), json.dumps(envelope), task_id)

    def _route(self, name: str) -> _Route:
        route = self._routes.get(name)
        if route is None:
            spec = TASKS[name]
            conf = self.app.conf
            route = self._routes[name] = _Route(
                queue=spec.queue,
                time_limit=conf.task_time_limit,
                soft_time_limit=conf.task_soft_time_limit,
                ignore_result=spec.ignore_result,
            )
        return route

    def list_name(self, queue: str) -> str:
        """The Redis list behind `queue`: kombu's `global_keyprefix` applies to it too."""
        return self.prefix + queue

    @property
    def prefix(self) -> str:
        opts = self.app.conf.broker_transport_options or {}
        return str(opts.get("global_keyprefix") or "")


@cache
def messages() -> Messages:
    """The builder for warming's Celery app (one per process)."""
    return Messages(app)
