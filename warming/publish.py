"""Turn a request (URLs, paths, tags) into a stored plan and a published purge task.

The CLI and the webhook shim both end here, so a batch is built the same way
whatever triggered it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu.exceptions import OperationalError

from warming import constants as K
from warming.errors import BrokerUnavailable
from warming.plan import Plan
from warming.runtime import Runtime
from warming.sources import dedupe
from warming.tagindex import urls_for
from warming.urls import Dropped, URLFilter


@dataclass
class WarmRequest:
    """What to warm; `urls` absolute, `paths` relative to `site.base_url`."""

    urls: Sequence[str] = ()
    paths: Sequence[str] = ()
    tags: Sequence[str] = ()
    purge: bool = True
    trigger: dict[str, Any] = field(default_factory=lambda: {"source": "cli"})
    priority: str = "high"
    # URLs of this request that another batch covers (coalescing): url -> batch id.
    carried: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    urls: list[str]
    dropped: list[Dropped]
    tags: list[str]


def select(rt: Runtime, req: WarmRequest) -> Selection:
    """Filter and normalize everything a request names; tags expand to their URLs."""
    filt = URLFilter.from_site(rt.settings.site)
    ok_urls, dropped = filt.split(req.urls)
    ok_paths, dropped_paths = filt.split(req.paths, paths=True)
    tags = dedupe(t.strip() for t in req.tags if t.strip())
    ok_tags, dropped_tags = filt.split(urls_for(rt.redis, tags)) if tags else ([], [])
    return Selection(
        urls=dedupe([*ok_urls, *ok_paths, *ok_tags]),
        dropped=[*dropped, *dropped_paths, *dropped_tags],
        tags=tags,
    )


def new_batch_id() -> str:
    return uuid.uuid4().hex


def publish(
    rt: Runtime, req: WarmRequest, batch_id: str | None = None, selection: Selection | None = None
) -> Plan:
    """Store the batch and publish its first task; BrokerUnavailable leaves nothing behind.

    `selection` skips filtering when the caller already did it (the webhook shim).
    """
    try:
        sel = selection or select(rt, req)
        plan = Plan.build(
            batch_id or new_batch_id(), rt.settings, sel.urls, sel.tags, req.purge, req.priority
        )
        rt.store.create(plan, req.trigger, [d.as_dict() for d in sel.dropped], req.carried)
    except redis.RedisError as e:
        raise BrokerUnavailable(f"Redis is unreachable: {type(e).__name__}") from None
    if not plan.urls and not plan.tags:
        note = "nothing to warm: no URL passed the filter"
        if req.carried:
            note = "every URL is covered by another batch (coalesced)"
        rt.store.finish(plan.batch_id, "done", note=note)
        return plan
    from warming.tasks import purge  # the tasks module pulls in the Celery app

    try:
        purge.apply_async((plan.batch_id,))
    except (OperationalError, redis.RedisError, OSError) as e:
        _forget(rt, plan.batch_id)
        raise BrokerUnavailable(f"broker is unreachable: {type(e).__name__}") from None
    return plan


def _forget(rt: Runtime, batch_id: str) -> None:
    """Undo `create` after a failed publish, so a refused request leaves no trace."""
    try:
        with rt.redis.pipeline() as p:
            p.delete(K.BATCH.format(id=batch_id))
            p.zrem(K.ACTIVE, batch_id)
            p.zrem(K.RECENT, batch_id)
            p.execute()
    except redis.RedisError:
        pass  # Redis is down too; the keys expire on their own
