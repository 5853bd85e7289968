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

from warming.errors import BrokerUnavailable
from warming.messages import Message, messages
from warming.plan import Plan
from warming.runtime import Runtime
from warming.sources import dedupe
from warming.store import NewBatch
from warming.tagindex import urls_for
from warming.urls import Dropped


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


def select(rt: Runtime, req: WarmRequest, tag_urls: list[str] | None = None) -> Selection:
    """Filter and normalize everything a request names; tags expand to their URLs.

    `tag_urls`: the tags' URLs when the caller already looked them up (the shim does,
    without blocking its event loop).
    """
    filt = rt.url_filter
    ok_urls, dropped = filt.split(req.urls)
    ok_paths, dropped_paths = filt.split(req.paths, paths=True)
    tags = dedupe(t.strip() for t in req.tags if t.strip())
    if tag_urls is None:
        tag_urls = urls_for(rt.redis, tags) if tags else []
    ok_tags, dropped_tags = filt.split(tag_urls) if tag_urls else ([], [])
    return Selection(
        urls=dedupe([*ok_urls, *ok_paths, *ok_tags]),
        dropped=[*dropped, *dropped_paths, *dropped_tags],
        tags=tags,
    )


def new_batch_id() -> str:
    return uuid.uuid4().hex


def publish(
    rt: Runtime,
    req: WarmRequest,
    batch_id: str | None = None,
    selection: Selection | None = None,
    also: Sequence[Message] = (),
) -> Plan:
    """Store the batch and queue its purge in one step; BrokerUnavailable leaves nothing behind.

    `selection` skips filtering when the caller already did it (the webhook shim);
    `also` are more messages queued in the same step (coalescing's trailing runs).
    """
    try:
        sel = selection or select(rt, req)
        plan = Plan.build(
            batch_id or new_batch_id(), rt.settings, sel.urls, sel.tags, req.purge, req.priority
        )
        note = nothing_to_warm(plan, req.carried)
        push = [*([] if note else [purge_message(plan.batch_id)]), *also]
        dropped = [d.as_dict() for d in sel.dropped]
        rt.store.create(NewBatch(plan, req.trigger, dropped, req.carried, push, note))
    except redis.RedisError as e:
        raise BrokerUnavailable(f"Redis is unreachable: {type(e).__name__}") from None
    return plan


def nothing_to_warm(plan: Plan, carried: dict[str, str]) -> str | None:
    """Why a batch has no work (it is then recorded finished), or None."""
    if plan.urls or plan.tags:
        return None
    if carried:
        return "every URL is covered by another batch (coalesced)"
    return "nothing to warm: no URL passed the filter"


def purge_message(batch_id: str) -> Message:
    """A batch's first task: purge, then warm (warming.tasks.purge)."""
    return messages().build("warming.purge", (batch_id,))
