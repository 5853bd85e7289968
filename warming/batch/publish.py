"""Turn a request (URLs, paths, tags) into a stored plan and a queued purge task.

The CLI, the webhook shim and (later) schedules all build a batch with `new_batch`,
so a batch is the same whatever triggered it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis

from warming.batch.plan import Plan
from warming.batch.store import BatchStore, NewBatch
from warming.broker import tasknames as T
from warming.broker.messages import Message, Messages
from warming.errors import BrokerUnavailable
from warming.pop.discover import Discoverer
from warming.settings import Settings
from warming.sources.filter import Dropped, URLFilter
from warming.sources.lists import dedupe
from warming.sources.tagindex import urls_for


@dataclass
class WarmRequest:
    """What to warm; `urls` absolute, `paths` relative to `site.base_url`."""

    urls: Sequence[str] = ()
    paths: Sequence[str] = ()
    tags: Sequence[str] = ()
    purge: bool = True
    trigger: dict[str, Any] = field(default_factory=lambda: {"source": "cli"})
    priority: T.Priority = "high"
    # URLs of this request that another batch covers (coalescing): url -> batch id.
    carried: dict[str, str] = field(default_factory=dict)
    # Refused before this request was built (a sitemap index's foreign children): reported.
    dropped: Sequence[Dropped] = ()
    # Globs a URL must not match (`--exclude`): "/..." against its path and query, else
    # against the whole URL.
    exclude: Sequence[str] = ()
    # At most this many URLs, the first ones (`--limit`); the rest are dropped.
    limit: int | None = None
    # Seconds until these URLs are warmed again (a schedule's interval): the report warns
    # about objects whose max-age + stale-while-revalidate end before that.
    refresh_s: float | None = None


@dataclass(frozen=True)
class Selection:
    """What passed the filter (URLs as they will be requested), what did not, the tags."""

    urls: list[str]
    dropped: list[Dropped]
    tags: list[str]


def select(
    filt: URLFilter, r: redis.Redis | None, req: WarmRequest, tag_urls: list[str] | None = None
) -> Selection:
    """Filter and normalize everything a request names; tags expand to their URLs.

    `tag_urls`: the tags' URLs when the caller already looked them up (the shim does,
    without blocking its event loop); else they are read from `r`.
    """
    ok_urls, dropped = filt.split(req.urls)
    ok_paths, dropped_paths = filt.split(req.paths, paths=True)
    tags = dedupe(t.strip() for t in req.tags if t.strip())
    if tag_urls is None:
        tag_urls = urls_for(r, tags) if tags and r is not None else []
    ok_tags, dropped_tags = filt.split(tag_urls) if tag_urls else ([], [])
    urls, left_out = _exclude_and_limit(dedupe([*ok_urls, *ok_paths, *ok_tags]), req)
    return Selection(
        urls=urls,
        dropped=[*req.dropped, *dropped, *dropped_paths, *dropped_tags, *left_out],
        tags=tags,
    )


def _exclude_and_limit(urls: list[str], req: WarmRequest) -> tuple[list[str], list[Dropped]]:
    kept: list[str] = []
    out: list[Dropped] = []
    for url in urls:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        hit = next(
            (p for p in req.exclude if fnmatchcase(target if p.startswith("/") else url, p)),
            None,
        )
        if hit is not None:
            out.append(Dropped(url, f"excluded by --exclude {hit}"))
        elif req.limit is not None and len(kept) >= req.limit:
            out.append(Dropped(url, f"over --limit {req.limit}"))
        else:
            kept.append(url)
    return kept, out


def new_batch_id() -> str:
    return uuid.uuid4().hex


def new_batch(
    settings: Settings,
    messages: Messages,
    req: WarmRequest,
    sel: Selection,
    batch_id: str,
    carried: dict[str, str] | None = None,
    also: Sequence[Message] = (),
    discoverer: Discoverer | None = None,
) -> NewBatch:
    """The one way a batch is built: its plan, trigger, dropped URLs and first messages.

    A batch with nothing to warm is built finished, saying why; `also` are more
    messages queued in the same step (coalescing's trailing runs).
    """
    carried = req.carried if carried is None else carried
    finder = discoverer or Discoverer(settings.site, settings.discover)
    pops, found = finder.addressed(settings.pops)
    addresses = {name: {**f.as_dict(), "how": f.how()} for name, f in found.items()}
    for pop in pops:
        if pop.name in addresses:
            addresses[pop.name]["url"] = None if addresses[pop.name]["error"] else pop.url
    plan = Plan.build(
        batch_id, settings, sel.urls, sel.tags, req.purge, req.priority, pops, addresses
    )
    if req.refresh_s:
        plan = replace(plan, refresh_s=req.refresh_s)
    note = nothing_to_warm(plan, carried)
    push = [*([] if note else [messages.build(T.PURGE.name, (batch_id,))]), *also]
    return NewBatch(plan, req.trigger, sel.dropped, carried, push, note)


def publish(
    rt: _Publisher,
    req: WarmRequest,
    batch_id: str | None = None,
    selection: Selection | None = None,
    also: Sequence[Message] = (),
) -> Plan:
    """Store the batch and queue its purge in one step; BrokerUnavailable leaves nothing behind.

    `selection` skips filtering when the caller already did it.
    """
    try:
        sel = selection or select(rt.url_filter, rt.redis, req)
        new = new_batch(
            rt.settings,
            rt.messages,
            req,
            sel,
            batch_id or new_batch_id(),
            also=also,
            discoverer=rt.discoverer,
        )
        rt.store.create(new)
    except redis.RedisError as e:
        raise BrokerUnavailable(f"Redis is unreachable: {type(e).__name__}") from None
    return new.plan


def nothing_to_warm(plan: Plan, carried: dict[str, str]) -> str | None:
    """Why a batch has no work (it is then recorded finished), or None."""
    if plan.urls or plan.tags:
        return None
    if carried:
        return "every URL is covered by another batch (coalesced)"
    return "nothing to warm: no URL passed the filter"


class _Publisher(Protocol):
    """What `publish` needs (a `warming.runtime.Runtime` has it all)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def messages(self) -> Messages: ...
    @property
    def url_filter(self) -> URLFilter: ...
    @property
    def redis(self) -> redis.Redis: ...
    @property
    def store(self) -> BatchStore: ...
    @property
    def discoverer(self) -> Discoverer: ...
